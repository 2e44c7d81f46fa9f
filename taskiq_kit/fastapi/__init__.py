"""FastAPI integration: lifespan, ``Depends`` providers and a ready tasks router.

Install with ``pip install taskiq-kit[fastapi]``::

    from fastapi import Depends, FastAPI
    from taskiq_kit.fastapi import TaskClientDep, kit_lifespan, tasks_router

    app = FastAPI(lifespan=kit_lifespan(broker))
    app.include_router(tasks_router(broker, dependencies=[Depends(verify_token)]))
"""

from taskiq_kit._compat import require

require("fastapi", extra="fastapi", feature="the FastAPI integration")
require("taskiq_fastapi", extra="fastapi", feature="the FastAPI integration")

from taskiq_kit.exceptions import AnonymousRouterError, BrokerNotConfiguredError  # noqa: E402
from taskiq_kit.fastapi.client import TaskClient, TaskRef  # noqa: E402
from taskiq_kit.fastapi.deps import (  # noqa: E402
    BrokerDep,
    TaskClientDep,
    broker_provider,
    get_broker,
    get_task_client,
    task_client_provider,
)
from taskiq_kit.fastapi.lifespan import init_worker, kit_lifespan  # noqa: E402
from taskiq_kit.fastapi.models import (  # noqa: E402
    AbortOut,
    ErrorOut,
    Problem,
    ProgressOut,
    TaskInfo,
    TaskResultOut,
)
from taskiq_kit.fastapi.router import tasks_router  # noqa: E402
from taskiq_kit.fastapi.stream import StreamSettings  # noqa: E402

__all__ = [
    "AbortOut",
    "AnonymousRouterError",
    "BrokerDep",
    "BrokerNotConfiguredError",
    "ErrorOut",
    "Problem",
    "ProgressOut",
    "StreamSettings",
    "TaskClient",
    "TaskClientDep",
    "TaskInfo",
    "TaskRef",
    "TaskResultOut",
    "broker_provider",
    "get_broker",
    "get_task_client",
    "init_worker",
    "kit_lifespan",
    "task_client_provider",
    "tasks_router",
]
