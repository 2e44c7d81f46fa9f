"""One exception tree for the kit.

Every error the kit raises derives from :class:`TaskiqKitError`, itself a
``taskiq.exceptions.TaskiqError``. Where a builtin or taskiq error has the same
meaning, the subclass inherits it too, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskiq.exceptions import ResultBackendError, SendTaskError, TaskiqError

if TYPE_CHECKING:
    from taskiq_kit.results.record import ErrorInfo


class TaskiqKitError(TaskiqError):
    """Root of every error raised by taskiq-kit."""

    __template__ = "taskiq-kit error"


class InvalidURLError(TaskiqKitError, ValueError):
    """A broker or result URL is malformed or has an unsupported scheme."""

    __template__ = "{reason} (got {url!r}); accepted schemes: {accepted}"
    url: str
    reason: str
    accepted: str


class InvalidDelayError(TaskiqKitError, ValueError):
    """A ``delay``, ``eta`` or ``expires`` label has a value that cannot be honoured."""

    __template__ = "invalid {label!r} label {value!r}: {reason}"
    label: str
    value: object
    reason: str


class MissingExtraError(TaskiqKitError, ImportError):
    """An optional dependency of the kit is not installed."""

    __template__ = (
        "{feature} needs the {package!r} package: install it with `pip install taskiq-kit[{extra}]`"
    )
    feature: str
    package: str
    extra: str


class TaskNotFoundError(TaskiqKitError, LookupError):
    """No record of this task id exists (never kicked, or its record expired)."""

    __template__ = "no task with id {task_id!r} is known (never kicked, or its record expired)"
    task_id: str


class InvalidTaskIdError(TaskiqKitError, ValueError):
    """A task id is empty, too long or has characters no broker accepts."""

    __template__ = "invalid task id {task_id!r}: {reason}"
    task_id: object
    reason: str


class BrokerNotAvailableError(TaskiqKitError, SendTaskError):
    """The message broker could not be reached in time."""

    __template__ = "cannot reach {target} within {timeout:g} s: {reason}"
    target: str
    timeout: float
    reason: str


class TopologyConflictError(TaskiqKitError, SendTaskError):
    """RabbitMQ already has an exchange or queue of this name, declared with other arguments.

    Retrying does not help: either the existing object goes (drain and delete it) or the kit uses
    other names (``exchange=...``, ``queue_name=...``).
    """

    __template__ = (
        "RabbitMQ refused to declare the kit's topology: {reason}. An exchange or queue of that "
        "name already exists with other settings (often left by another broker, such as "
        "taskiq-aio-pika, on the same virtual host). Give the kit names of its own "
        "(make_broker(..., exchange='...', queue_name='...')), or move the old object's messages "
        "elsewhere and delete it (`rabbitmqctl delete_queue NAME` / `delete_exchange NAME`)"
    )
    reason: str


class AccessRefusedError(BrokerNotAvailableError):
    """The server answered but refused the connection: credentials, virtual host or database.

    Retrying does not help: the URL (or the server's configuration) must change.
    """

    __template__ = "{target} refused the connection: {reason}"
    timeout: float = 0.0


class ResultStoreNotAvailableError(BrokerNotAvailableError, ResultBackendError):
    """The result store (Redis, PostgreSQL) could not be reached in time.

    A kick records the task's status before it sends the task, so a store that is down fails
    the kick too: this error is a :class:`BrokerNotAvailableError`.
    """


class UnroutableTaskError(TaskiqKitError, SendTaskError):
    """The broker accepted no queue for a kicked task (nothing is bound to its routing key)."""

    __template__ = "task {task_name!r} was not routed to any queue: {reason}"
    task_name: str
    reason: str


class NotImplementedYetError(TaskiqKitError, NotImplementedError):
    """A capability that is planned but not built in this version."""

    __template__ = "{feature} is not implemented yet in this version of taskiq-kit"
    feature: str


class NotAKitBrokerError(TaskiqKitError, TypeError):
    """A kit function was given a broker that was not built by the kit."""

    __template__ = (
        "{broker} keeps no task status or abort state: build it with taskiq_kit.make_broker()"
    )
    broker: str


class NotAKitResultBackendError(TaskiqKitError, TypeError):
    """A kit broker was given a result backend that keeps no task status or abort state."""

    __template__ = (
        "{backend} is not a taskiq-kit result backend: a kit broker keeps task status, progress "
        "and abort tombstones in its result store. Pass result_url= (redis://, postgresql://) "
        "and result_options= to make_broker(), or give with_result_backend() a backend made by "
        "taskiq_kit.make_result_backend(url)"
    )
    backend: str


class TaskAbortedError(TaskiqKitError):
    """The task was aborted (``abort_task``) before or while it ran.

    It is the error stored as the result of an aborted task, and what
    :meth:`~taskiq_kit.abort.AbortToken.raise_if_aborted` raises inside one.
    """

    __template__ = "task {task_id!r} was aborted"
    task_id: str


class TaskExpiredError(TaskiqKitError):
    """The task's ``expires`` passed before it ran: it was dropped unrun.

    It is the error stored as the result of an expired task, so ``wait_result()`` returns at once.
    """

    __template__ = "task {task_id!r} expired before it ran (expires_at={expires_at:.3f})"
    task_id: str
    expires_at: float


# Result backends and progress.


class ProcessLocalStoreError(TaskiqKitError, RuntimeError):
    """Status or results were asked of a store that lives only in another process's memory."""

    __template__ = (
        "{broker} keeps results, status and progress in the memory of the worker process that "
        "runs the tasks, so this process (which does not consume) can never see them: pass "
        "result_url='redis://...' or result_url='postgresql://...' to make_broker() (or a shared "
        "result_backend= to the broker class) in both the worker and this process"
    )
    broker: str


class TaskFailedError(TaskiqKitError):
    """A task raised (or its result could not be stored): the worker's exception, as data.

    The reading side never imports or unpickles the worker's exception class: it gets this
    error, carrying the original type name, message and traceback text.

    Attributes:
        error_type: qualified name of the worker's exception type, e.g. ``"KeyError"``.
        error_message: ``str()`` of the worker's exception.
        remote_traceback: the worker's traceback text, if recorded.

    """

    __template__ = "task failed with {error_type}: {error_message}"
    error_type: str
    error_message: str
    remote_traceback: str | None = None

    @classmethod
    def from_info(cls, info: ErrorInfo) -> TaskFailedError:
        """Build the error from its stored description."""
        return cls(
            error_type=info.type, error_message=info.message, remote_traceback=info.traceback
        )

    @property
    def info(self) -> ErrorInfo:
        """The error as :class:`ErrorInfo` (for JSON APIs)."""
        # A leaf module, imported late only because importing it runs taskiq_kit.results' __init__.
        from taskiq_kit.results.record import ErrorInfo  # noqa: PLC0415

        return ErrorInfo(
            type=self.error_type, message=self.error_message, traceback=self.remote_traceback
        )


class ResultNotSerializableError(TaskiqKitError, TypeError):
    """A task's return value cannot be encoded by the backend's serializer.

    The worker stores a failure carrying this error instead of the value, so the outcome is
    never lost.
    """

    __template__ = (
        "return value of type {type_name} is not {serializer}-serialisable ({reason}); "
        "return JSON-compatible data (dict, list, str, numbers, pydantic models, dataclasses, "
        "datetimes)"
    )
    type_name: str
    serializer: str
    reason: str


class ResultDecodeError(TaskiqKitError, ResultBackendError, ValueError):
    """A stored result or progress entry is not valid data for this backend's serializer.

    Raised instead of executing anything: the JSON serializer never unpickles, so a payload
    planted by someone else (or written by a pickle-configured backend) is refused.
    """

    __template__ = (
        "stored {what} of task {task_id!r} cannot be decoded as {serializer}: {reason}; "
        "was it written by another serializer or another program?"
    )
    what: str
    task_id: str
    serializer: str
    reason: str


class ResultBackendNotStartedError(TaskiqKitError, ResultBackendError, RuntimeError):
    """A result backend was used before ``await broker.startup()`` (or after shutdown)."""

    __template__ = "{backend} is not started: call `await broker.startup()` before using it"
    backend: str


class InvalidProgressError(TaskiqKitError, ValueError):
    """A progress report has a value that cannot be stored."""

    __template__ = "invalid progress {field} {value!r}: {reason}"
    field: str
    value: object
    reason: str


# The FastAPI integration.


class AnonymousRouterError(TaskiqKitError, ValueError):
    """A tasks router or dashboard was built with no dependency guarding it, without ``allow_anonymous``."""

    __template__ = (
        "tasks_router() / dashboard_router() got no dependencies, so anyone could read results and "
        "abort tasks: pass your auth dependency, e.g. "
        "`tasks_router(broker, dependencies=[Depends(verify_token)])`, "
        "or `allow_anonymous=True` when the routes are protected elsewhere (app or include_router "
        "dependencies, a gateway) or need no protection"
    )


class BrokerNotConfiguredError(TaskiqKitError, RuntimeError):
    """A kit dependency was resolved in an app whose lifespan is not the kit's."""

    __template__ = (
        "no taskiq-kit broker on this app: build it with "
        "`FastAPI(lifespan=kit_lifespan(broker))`, or use `broker_provider(broker)` / "
        "`task_client_provider(broker)` as the dependency"
    )


# The Redis broker.


class RedisSettingError(TaskiqKitError, ValueError):
    """A setting of the Redis broker has a value it cannot work with."""

    __template__ = "invalid Redis broker setting {setting}={value!r}: {reason}"
    setting: str
    value: object
    reason: str


# Options of make_broker.


class UnknownOptionError(TaskiqKitError, TypeError):
    """``make_broker`` got a keyword option the broker or result store does not take."""

    __template__ = "{target} has no option {option!r}; valid options: {valid}"
    target: str
    option: str
    valid: str


class InvalidOptionError(TaskiqKitError, ValueError, TypeError):
    """An option of ``make_broker`` (or a ``TASKIQ_KIT_*`` setting) has a wrong type or value.

    It is both a ``ValueError`` and a ``TypeError``, so either ``except`` clause catches it.
    """

    __template__ = "invalid option {option}: {reason}"
    option: str
    reason: str


# The inspect API.


class InvalidQueryError(TaskiqKitError, ValueError):
    """A filter or a page size given to the inspect API cannot be used."""

    __template__ = "invalid {parameter}={value!r}: {reason}"
    parameter: str
    value: object
    reason: str


class InvalidCursorError(TaskiqKitError, ValueError):
    """A page cursor was not made by this listing (malformed, or made for other filters)."""

    __template__ = (
        "invalid cursor {cursor!r}: {reason}; pass the next_cursor of the page before, "
        "with the same filters"
    )
    cursor: str
    reason: str


class UnknownQueueError(TaskiqKitError, LookupError):
    """The broker has no queue of this name."""

    __template__ = "the broker has no queue {queue!r}; its queues: {known}"
    queue: str
    known: str


class DeadLetterNotFoundError(TaskiqKitError, LookupError):
    """Dead letters asked for are no longer there (replayed, deleted, or never were)."""

    __template__ = (
        "{count} dead letter(s) no longer there (replayed, deleted, or never were): {ids}; "
        "{done} other(s) done"
    )
    count: int
    ids: str
    done: int


class InspectNotSupportedError(TaskiqKitError, TypeError):
    """The broker or its store does not offer this part of the inspect API."""

    __template__ = "{target} does not support {feature}"
    target: str
    feature: str


class InvalidFlowOptionError(TaskiqKitError, ValueError):
    """A flow-control option (``rate_limit``, ``concurrency``, ``unique_for``, ``debounce``) is invalid."""

    __template__ = "invalid {option}={value!r} on task {task!r}: {reason}"
    option: str
    value: object
    task: str
    reason: str


class FlowOptionTypeError(InvalidFlowOptionError, TypeError):
    """A flow-control option has a value of the wrong type."""


class FlowKeyError(TaskiqKitError, ValueError):
    """A flow-control key function raised, or returned no usable key, when a task was kicked."""

    __template__ = (
        "the {option} key function of task {task!r} failed: {reason}; it is called with the "
        "task's arguments and must return a str, int or float"
    )
    option: str
    task: str
    reason: str


class FlowStoreError(TaskiqKitError, RuntimeError):
    """Flow control needs a store every worker shares, and the broker has none."""

    __template__ = (
        "task {task!r} uses flow control ({option}), which needs a store shared by every "
        "process, but {store} lives in one process only; pass result_url='redis://...' or "
        "result_url='postgresql://...' to make_broker()"
    )
    task: str
    option: str
    store: str


class TaskDeadLetteredError(TaskiqKitError):
    """The task's message was moved to the dead-letter queue instead of running.

    Stored as the task's result (status ``failure``, the record's ``reason`` saying why), so a
    caller waiting for the result learns it. A replay of the dead letter makes the record
    ``pending`` again.
    """

    __template__ = "task {task_id} was dead-lettered: {reason}"
    task_id: str
    reason: str
