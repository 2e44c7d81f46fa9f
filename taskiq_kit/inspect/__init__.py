"""Inspect and operate: list and count tasks, queue figures, dead letters, live workers.

Every function takes a kit broker::

    page = await list_tasks(broker, status=["failure", "aborted"], since=time.time() - 3600)
    for queue in await queue_figures(broker):
        print(queue.name, queue.ready, queue.dead_lettered)
    await replay_all_dead_letters(broker)
"""

from taskiq_kit.inspect.api import (
    MAX_LIMIT,
    count_tasks,
    delete_dead_letters,
    get_queue,
    list_dead_letters,
    list_tasks,
    list_workers,
    make_query,
    purge_dead_letters,
    queue_figures,
    replay_all_dead_letters,
    replay_dead_letters,
)
from taskiq_kit.inspect.models import (
    DeadLetter,
    DeadLetterPage,
    QueueFigures,
    ReplayReport,
    ScheduleInfo,
    TaskPage,
    TaskQuery,
    WorkerInfo,
)
from taskiq_kit.inspect.protocols import (
    DeadLetterBox,
    ProgressCallback,
    QueueInspector,
    TaskIndex,
    WorkerRegistry,
)

__all__ = [
    "MAX_LIMIT",
    "DeadLetter",
    "DeadLetterBox",
    "DeadLetterPage",
    "ProgressCallback",
    "QueueFigures",
    "QueueInspector",
    "ReplayReport",
    "ScheduleInfo",
    "TaskIndex",
    "TaskPage",
    "TaskQuery",
    "WorkerInfo",
    "WorkerRegistry",
    "count_tasks",
    "delete_dead_letters",
    "get_queue",
    "list_dead_letters",
    "list_tasks",
    "list_workers",
    "make_query",
    "purge_dead_letters",
    "queue_figures",
    "replay_all_dead_letters",
    "replay_dead_letters",
]
