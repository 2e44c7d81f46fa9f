"""What a command works on: the broker and the scheduler, started for the command.

The broker is ``--broker module:broker`` or, without it, ``make_broker()`` from the
``TASKIQ_KIT_*`` environment; the scheduler is ``--scheduler module:scheduler``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from taskiq.abc.broker import AsyncBroker
from taskiq.cli.utils import import_object

from taskiq_kit.exceptions import TaskiqKitError
from taskiq_kit.factory import make_broker

if TYPE_CHECKING:
    from taskiq_kit.scheduler.scheduler import KitScheduler

#: The variable ``make_broker`` reads the broker URL from.
BROKER_URL_VARIABLE = "TASKIQ_KIT_BROKER_URL"


def _import(spec: str, option: str) -> Any:
    try:
        return import_object(spec)
    except (ImportError, AttributeError, ValueError) as exc:
        raise click.BadParameter(
            f"cannot import {spec!r} ({type(exc).__name__}: {exc}); use module:variable, the "
            "form `taskiq worker` takes, run from the directory `taskiq worker` runs in",
            param_hint=option,
        ) from exc


@dataclass
class Target:
    """The ``--broker`` / ``--scheduler`` given to the command group (``None``: not given)."""

    broker_spec: str | None = None
    scheduler_spec: str | None = None

    def broker(self) -> AsyncBroker:
        """The app's broker (``--broker``), else one built by ``make_broker()`` from the environment.

        Raises:
            click.UsageError: when neither names a broker.

        """
        if self.broker_spec is not None:
            broker = _import(self.broker_spec, "--broker")
            if not isinstance(broker, AsyncBroker):
                raise click.BadParameter(
                    f"{self.broker_spec!r} is a {type(broker).__name__}, not a taskiq broker",
                    param_hint="--broker",
                )
            return broker
        if not os.environ.get(BROKER_URL_VARIABLE):
            raise click.UsageError(
                f"no broker: pass --broker module:broker, or set {BROKER_URL_VARIABLE} "
                "(and TASKIQ_KIT_RESULT_URL when results live elsewhere)"
            )
        try:
            return make_broker()
        except (TaskiqKitError, ImportError) as exc:  # a bad TASKIQ_KIT_* value, a missing extra
            raise click.UsageError(str(exc)) from exc

    def scheduler(self) -> KitScheduler:
        """The app's scheduler (``--scheduler``).

        Raises:
            click.UsageError: when ``--scheduler`` was not given.

        """
        from taskiq_kit.scheduler.scheduler import KitScheduler  # noqa: PLC0415 - optional extra

        if self.scheduler_spec is None:
            raise click.UsageError("schedules commands need --scheduler module:scheduler")
        scheduler = _import(self.scheduler_spec, "--scheduler")
        if not isinstance(scheduler, KitScheduler):
            raise click.BadParameter(
                f"{self.scheduler_spec!r} is a {type(scheduler).__name__}, not a KitScheduler",
                param_hint="--scheduler",
            )
        return scheduler


@asynccontextmanager
async def started(broker: AsyncBroker) -> AsyncIterator[AsyncBroker]:
    """``broker`` started for the block (as a client: it consumes nothing), then shut down."""
    try:
        await broker.startup()
        yield broker
    finally:
        await broker.shutdown()
