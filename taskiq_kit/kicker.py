"""The kit's kicker: ``kiq()`` raises the kit's typed send errors as themselves."""

from __future__ import annotations

from copy import copy
from typing import Any, ParamSpec, TypeVar

from taskiq.decor import AsyncTaskiqDecoratedTask
from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker

from taskiq_kit.exceptions import BrokerNotAvailableError, UnroutableTaskError

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: Send errors of the kit that ``kiq()`` raises as themselves (each is a ``SendTaskError``).
TYPED_SEND_ERRORS = (BrokerNotAvailableError, UnroutableTaskError)


class KitKicker(AsyncKicker[_P, _R]):
    """taskiq's kicker, except that a typed send error of the kit is raised as itself.

    taskiq's ``kiq()`` wraps whatever the broker raises in a bare ``SendTaskError``. The kit's
    :class:`~taskiq_kit.exceptions.UnroutableTaskError` and
    :class:`~taskiq_kit.exceptions.BrokerNotAvailableError` are ``SendTaskError`` subclasses, so
    raising them unwrapped keeps ``except SendTaskError`` working and lets callers catch the
    precise case.
    """

    async def kiq(self, *args: _P.args, **kwargs: _P.kwargs) -> Any:
        """Send the task; see taskiq's ``AsyncKicker.kiq``."""
        try:
            return await super().kiq(*args, **kwargs)
        except SendTaskError as exc:
            cause = exc.__cause__
            if isinstance(cause, TYPED_SEND_ERRORS):
                raise cause from cause.__cause__
            raise


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
