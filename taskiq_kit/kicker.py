"""The kit's kicker and task handle.

``kiq()`` raises the kit's typed send errors as themselves, and returns a :class:`KitTask`,
which reads a failed or aborted result without trying to parse its (absent) return value, and
raises the kit's read errors (a process-local store) as themselves.
"""

from __future__ import annotations

import logging
from copy import copy
from typing import Any, ParamSpec, TypeVar

from taskiq.compat import parse_obj_as
from taskiq.decor import AsyncTaskiqDecoratedTask
from taskiq.exceptions import ResultGetError, ResultIsReadyError, SendTaskError
from taskiq.kicker import AsyncKicker
from taskiq.result import TaskiqResult
from taskiq.task import AsyncTaskiqTask

from taskiq_kit.exceptions import (
    BrokerNotAvailableError,
    ProcessLocalStoreError,
    UnroutableTaskError,
)
from taskiq_kit.flow.control import FlowControl

logger = logging.getLogger("taskiq_kit")

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: Send errors of the kit that ``kiq()`` raises as themselves (each is a ``SendTaskError``).
TYPED_SEND_ERRORS = (BrokerNotAvailableError, UnroutableTaskError)


class KitTask(AsyncTaskiqTask[_R]):
    """taskiq's task handle: it parses only a successful result, and names an unreadable store.

    taskiq parses every result's return value into the task's return type; a failed or
    aborted task has none, so taskiq warns "Cannot parse return type" on each of them. taskiq
    wraps whatever the result backend raises in ``ResultIsReadyError`` / ``ResultGetError``; a
    :class:`~taskiq_kit.exceptions.ProcessLocalStoreError` is raised as itself, so
    ``wait_result()`` fails at once with a message naming ``result_url``.
    """

    async def is_ready(self) -> bool:
        """Whether the task's result is stored; see taskiq's ``AsyncTaskiqTask.is_ready``."""
        try:
            return await super().is_ready()
        except ResultIsReadyError as exc:
            if isinstance(exc.__cause__, ProcessLocalStoreError):
                raise exc.__cause__ from None
            raise

    async def get_result(self, with_logs: bool = False) -> TaskiqResult[_R]:
        """The task's result; see taskiq's ``AsyncTaskiqTask.get_result``.

        Raises:
            ResultGetError: when the result cannot be read from the result backend.
            ProcessLocalStoreError: when the store lives only in the workers' memory.

        """
        try:
            result = await self.result_backend.get_result(self.task_id, with_logs=with_logs)
        except ProcessLocalStoreError:
            raise
        except Exception as exc:
            raise ResultGetError from exc
        if self.return_type is not None and not result.is_err:
            try:
                result.return_value = parse_obj_as(self.return_type, result.return_value)
            except ValueError:
                logger.warning(
                    "Cannot parse the result of task %s into %s.", self.task_id, self.return_type
                )
        return result


class KitKicker(AsyncKicker[_P, _R]):
    """taskiq's kicker, except that a typed send error of the kit is raised as itself.

    taskiq's ``kiq()`` wraps whatever the broker raises in a bare ``SendTaskError``. The kit's
    :class:`~taskiq_kit.exceptions.UnroutableTaskError` and
    :class:`~taskiq_kit.exceptions.BrokerNotAvailableError` are ``SendTaskError`` subclasses, so
    raising them unwrapped keeps ``except SendTaskError`` working and lets callers catch the
    precise case. A task id that breaks the kit's rule (see ``with_task_id``) raises
    :class:`~taskiq_kit.exceptions.InvalidTaskIdError` before anything is sent.
    """

    async def kiq(self, *args: _P.args, **kwargs: _P.kwargs) -> Any:
        """Send the task; see taskiq's ``AsyncKicker.kiq``.

        A task with flow-control options (see :mod:`taskiq_kit.flow`) gets its keys computed
        here, from these arguments; a ``unique_for`` task whose key is held returns the handle
        of the task holding it.

        Returns:
            A :class:`KitTask` to wait for the result.

        Raises:
            InvalidTaskIdError: when the id given to ``with_task_id`` breaks the kit's rule.
            InvalidFlowOptionError: when a flow option given at kick time is invalid.
            FlowKeyError: when a flow key function raises or returns no usable key.
            SendTaskError: when the task could not be sent (the kit's subclasses as themselves).

        """
        flow = getattr(self.broker, "flow", None)
        if isinstance(flow, FlowControl):
            plan = flow.plan(self.task_name, self.labels, args, kwargs)
            if plan is not None:
                return await flow.kick(
                    self, plan, lambda: self._send(*args, **kwargs), self._handle
                )
        return await self._send(*args, **kwargs)

    def _handle(self, task_id: str) -> KitTask[Any]:
        return KitTask(task_id, self.broker.result_backend, self.return_type)

    async def _send(self, *args: Any, **kwargs: Any) -> Any:
        try:
            task = await super().kiq(*args, **kwargs)
        except SendTaskError as exc:
            cause = exc.__cause__
            if isinstance(cause, TYPED_SEND_ERRORS):
                raise cause from cause.__cause__
            raise
        return KitTask(task.task_id, task.result_backend, task.return_type)


class KitDecoratedTask(AsyncTaskiqDecoratedTask[_P, _R]):
    """taskiq's decorated task, kicked through :class:`KitKicker`."""

    def kicker(self) -> AsyncKicker[_P, _R]:
        """A kicker for this task (``with_labels``, ``with_task_id``, ``kiq``...)."""
        return KitKicker(
            task_name=self.task_name,
            broker=self.broker,
            labels=copy(self.labels),
            return_type=self.return_type,
        )
