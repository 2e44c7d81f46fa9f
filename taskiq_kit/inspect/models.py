"""What the inspect API returns: plain pydantic models, ready for JSON (CLI, dashboard, metrics)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskiq_kit.results.record import TaskRecord, TaskStatus


class TaskQuery(BaseModel):
    """Which tasks to list or count. Every filter set narrows the result; times are unix seconds.

    Attributes:
        statuses: any of these statuses (empty: every status).
        task_name: the task's registered name, exactly.
        queue: the queue the task was sent to, exactly.
        since: kicked at or after this instant.
        until: kicked before this instant.
        search: a piece of the task id or of the task name (case-insensitive).

    """

    model_config = ConfigDict(frozen=True)

    statuses: frozenset[TaskStatus] = frozenset()
    task_name: str | None = None
    queue: str | None = None
    since: float | None = None
    until: float | None = None
    search: str | None = None


class TaskPage(BaseModel):
    """One page of tasks, newest kick first.

    Attributes:
        tasks: the records of this page.
        next_cursor: pass it as ``cursor=`` for the next page (``None``: this was the last).

    """

    tasks: list[TaskRecord]
    next_cursor: str | None = None


class QueueFigures(BaseModel):
    """How many messages one queue holds, as the transport counts them.

    Attributes:
        name: the queue's name.
        ready: waiting for a worker.
        in_flight: delivered to a worker, not settled yet (``None`` where the transport cannot
            tell: RabbitMQ over AMQP).
        delayed: waiting for their due time (the delay ladder or set).
        dead_lettered: in the dead-letter queue.
        consumers: workers consuming the queue now (``None`` where the transport cannot tell).

    """

    name: str
    ready: int
    in_flight: int | None
    delayed: int
    dead_lettered: int
    consumers: int | None = None


class DeadLetter(BaseModel):
    """One message in a dead-letter queue.

    Attributes:
        id: the transport's id of the dead letter (what replay and delete take).
        task_id: the task's id, when the body could be read.
        task_name: the task's name, when the body could be read.
        queue: the queue it was taken from.
        reason: why it was dead-lettered.
        attempts: runs it had started before.
        dead_lettered_at: when (unix seconds), where known.
        preview: the start of its body (at most ``preview_chars`` characters).

    """

    id: str
    task_id: str | None = None
    task_name: str | None = None
    queue: str | None = None
    reason: str
    attempts: int = 0
    dead_lettered_at: float | None = None
    preview: str = ""


class DeadLetterPage(BaseModel):
    """One page of dead letters, oldest first, and how many there are in all."""

    dead_letters: list[DeadLetter]
    total: int
    next_cursor: str | None = None


class ReplayReport(BaseModel):
    """What a replay (or a delete) did.

    Attributes:
        replayed: dead letters sent back to their queue (or deleted).
        missing: ids asked for that were no longer there.

    """

    replayed: int = 0
    missing: list[str] = Field(default_factory=list)


class WorkerInfo(BaseModel):
    """One live worker process, as its last heartbeat described it.

    Attributes:
        id: the worker's id (``host:pid`` and a start-time suffix).
        host: its host name.
        pid: its process id.
        queues: the queues it consumes.
        started_at: when it started (unix seconds).
        concurrency: how many tasks it runs at once at most (``None``: unbounded).
        running: ids of the tasks it runs now.
        processed: tasks it finished (any final status).
        failed: tasks it finished as ``failure``.
        last_heartbeat: when its last heartbeat was written (unix seconds).

    """

    id: str
    host: str
    pid: int
    queues: list[str] = Field(default_factory=list)
    started_at: float
    concurrency: int | None = None
    running: list[str] = Field(default_factory=list)
    processed: int = 0
    failed: int = 0
    last_heartbeat: float


class ScheduleInfo(BaseModel):
    """One schedule, its state and its firings.

    Attributes:
        id: the schedule's id.
        task: the task it sends.
        describe: the schedule in words (``every 30s``, ``cron 0 * * * * (UTC)``).
        paused: whether its firings are paused.
        dynamic: whether it lives in the schedule store (added at run time) rather than in code
            or configuration.
        next_fire: when it fires next (unix seconds; ``None``: never again or paused).
        last_fire: when it last fired (unix seconds), where known.
        extra: anything else the source knows of it.

    """

    id: str
    task: str
    describe: str
    paused: bool = False
    dynamic: bool = False
    next_fire: float | None = None
    last_fire: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
