"""Errors of the FastAPI integration (part of the kit's :class:`~taskiq_kit.TaskiqKitError` tree)."""

from __future__ import annotations

from taskiq_kit.exceptions import TaskiqKitError


class AnonymousRouterError(TaskiqKitError, ValueError):
    """A tasks router was built with no dependency guarding it and without ``allow_anonymous``."""

    __template__ = (
        "tasks_router() got no dependencies, so anyone could read results and abort tasks: "
        "pass your auth dependency, e.g. `tasks_router(broker, dependencies=[Depends(verify_token)])`, "
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
