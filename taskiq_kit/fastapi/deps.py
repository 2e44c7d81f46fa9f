"""``Depends`` providers: the broker and a :class:`TaskClient`, without module globals in endpoints.

Two ways to get them:

* From the app: :func:`~taskiq_kit.fastapi.kit_lifespan` puts the broker on ``app.state``, and
  :data:`BrokerDep` / :data:`TaskClientDep` read it::

      @app.post("/reports")
      async def make_report(tasks: TaskClientDep) -> dict[str, str]:
          handle = await tasks.kick(build_report, delay=10)
          return {"task_id": handle.task_id}

* Bound explicitly (several brokers, or a router used without the kit's lifespan)::

      client: TaskClient = Depends(task_client_provider(broker))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from taskiq.abc.broker import AsyncBroker

from taskiq_kit.exceptions import BrokerNotConfiguredError
from taskiq_kit.fastapi.client import TaskClient

#: Attribute of ``app.state`` holding the broker of :func:`~taskiq_kit.fastapi.kit_lifespan`.
STATE_BROKER = "taskiq_kit_broker"


def get_broker(request: Request) -> AsyncBroker:
    """The broker of the app's :func:`~taskiq_kit.fastapi.kit_lifespan`.

    Raises:
        BrokerNotConfiguredError: when the app's lifespan is not the kit's.

    """
    broker = getattr(request.app.state, STATE_BROKER, None)
    if not isinstance(broker, AsyncBroker):
        raise BrokerNotConfiguredError
    return broker


def get_task_client(broker: Annotated[AsyncBroker, Depends(get_broker)]) -> TaskClient:
    """A :class:`TaskClient` over the app's broker."""
    return TaskClient(broker)


#: The app's broker, as an endpoint parameter type: ``async def f(broker: BrokerDep)``.
BrokerDep = Annotated[AsyncBroker, Depends(get_broker)]
#: A :class:`TaskClient` over the app's broker: ``async def f(tasks: TaskClientDep)``.
TaskClientDep = Annotated[TaskClient, Depends(get_task_client)]


def broker_provider(broker: AsyncBroker) -> Callable[[], AsyncBroker]:
    """A dependency returning ``broker``: ``Depends(broker_provider(broker))``."""

    def provide_broker() -> AsyncBroker:
        return broker

    return provide_broker


def task_client_provider(
    broker: AsyncBroker, *, abort_wait: float = 5.0
) -> Callable[[], TaskClient]:
    """A dependency returning a :class:`TaskClient` over ``broker``.

    Example:
        ``client: TaskClient = Depends(task_client_provider(broker))``

    """
    client = TaskClient(broker, abort_wait=abort_wait)

    def provide_task_client() -> TaskClient:
        return client

    return provide_task_client
