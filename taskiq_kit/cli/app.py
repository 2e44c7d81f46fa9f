"""The ``taskiq-kit`` command group: the options every command shares, and how a command runs."""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click

from taskiq_kit.cli.exit_codes import ExitCode, exit_code_for
from taskiq_kit.cli.render import Output
from taskiq_kit.cli.target import Target

_F = TypeVar("_F", bound=Callable[..., Any])

Work = Callable[[Output], Coroutine[Any, Any, "ExitCode | None"]]


class Refused(Exception):  # noqa: N818 - a command outcome, not a fault
    """The command will not do what was asked (not confirmed, nothing to do it on)."""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 not found, 4 refused or bad "
    "input, 5 server unreachable, 6 task did not succeed, 7 task not finished (see docs/cli.md).",
)
@click.option(
    "--broker",
    "-b",
    "broker_spec",
    metavar="MODULE:BROKER",
    help="The app's broker, as `taskiq worker` takes it. Default: make_broker() from the "
    "TASKIQ_KIT_BROKER_URL / TASKIQ_KIT_RESULT_URL environment.",
)
@click.option(
    "--scheduler",
    "-s",
    "scheduler_spec",
    metavar="MODULE:SCHEDULER",
    help="The app's KitScheduler (the `schedules` commands need it).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout (same as each command's).")
@click.version_option(package_name="taskiq-kit")
@click.pass_context
def cli(
    ctx: click.Context, broker_spec: str | None, scheduler_spec: str | None, as_json: bool
) -> None:
    """Inspect and operate a taskiq-kit app: tasks, queues, workers, dead letters, schedules."""
    ctx.obj = Target(broker_spec=broker_spec, scheduler_spec=scheduler_spec)
    ctx.meta["taskiq_kit.json"] = as_json


def json_option(func: _F) -> _F:
    """The ``--json`` flag of a command."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")(func)


def yes_option(func: _F) -> _F:
    """The ``--yes`` flag of a destructive command."""
    return click.option(
        "--yes", "-y", is_flag=True, help="Do it without asking (needed without a terminal)."
    )(func)


def target() -> Target:
    """The ``--broker`` / ``--scheduler`` of the running command."""
    return click.get_current_context().find_object(Target) or Target()


def output(as_json: bool) -> Output:
    """The output of the running command (``--json`` given to it or to the group)."""
    root = click.get_current_context().find_root()
    return Output(as_json=as_json or bool(root.meta.get("taskiq_kit.json")))


def confirm(out: Output, question: str, *, yes: bool) -> None:
    """Go on only if ``--yes`` was given or a person at the terminal says yes.

    Raises:
        Refused: otherwise (without a terminal, nobody can be asked: pass ``--yes``).

    """
    if yes:
        return
    if out.as_json or not sys.stdin.isatty():
        raise Refused(f"{question} Not confirmed: pass --yes to do it without a terminal.")
    if not click.confirm(question, default=False, err=True):
        raise Refused("not confirmed; nothing was changed")


def run(out: Output, work: Work) -> NoReturn:
    """Run ``work`` in a fresh event loop, then exit with the status its outcome means."""
    try:
        code = asyncio.run(work(out)) or ExitCode.OK
    except click.ClickException:
        raise
    except KeyboardInterrupt:
        out.error("Interrupted", "interrupted", ExitCode.INTERRUPTED)
        code = ExitCode.INTERRUPTED
    except Refused as exc:
        out.error("Refused", str(exc), ExitCode.REFUSED)
        code = ExitCode.REFUSED
    except Exception as exc:  # noqa: BLE001 - every failure becomes an exit status
        code = exit_code_for(exc)
        if code is ExitCode.ERROR:
            traceback.print_exc()
        out.error(type(exc).__name__, str(exc), code)
    sys.exit(int(code))


def main() -> None:
    """The ``taskiq-kit`` console script."""
    cli(prog_name="taskiq-kit")
