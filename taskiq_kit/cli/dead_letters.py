"""``dead-letters list|replay|delete|purge``: read, send back or drop what the workers gave up on."""

from __future__ import annotations

import click

from taskiq_kit.cli.app import cli, confirm, json_option, output, run, target, yes_option
from taskiq_kit.cli.render import Output, instant
from taskiq_kit.cli.target import started
from taskiq_kit.inspect.api import (
    delete_dead_letters,
    list_dead_letters,
    purge_dead_letters,
    replay_all_dead_letters,
    replay_dead_letters,
)


@cli.group("dead-letters")
def dead_letters() -> None:
    """Dead letters: messages that failed for good or could not be read."""


@dead_letters.command("list")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Per page."
)
@click.option("--cursor", help="The next_cursor of the page before.")
@json_option
def list_command(limit: int, cursor: str | None, as_json: bool) -> None:
    """List dead letters, oldest first, with why each was dead-lettered."""
    broker = target().broker()

    async def work(out: Output) -> None:
        async with started(broker):
            page = await list_dead_letters(broker, limit=limit, cursor=cursor)
        if out.as_json:
            out.data(page)
            return
        rows = [
            [
                letter.id,
                letter.task_id or "-",
                letter.task_name or "-",
                letter.queue or "-",
                letter.reason,
                str(letter.attempts),
                instant(letter.dead_lettered_at),
            ]
            for letter in page.dead_letters
        ]
        columns = ["ID", "TASK ID", "TASK", "QUEUE", "REASON", "TRIES", "AT"]
        out.table(f"{page.total} dead letters", columns, rows)
        if page.next_cursor is not None:
            out.note(f"more: --cursor {page.next_cursor}")

    run(output(as_json), work)


@dead_letters.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Replay every dead letter (asks first).")
@yes_option
@json_option
def replay(ids: tuple[str, ...], everything: bool, yes: bool, as_json: bool) -> None:
    """Send the dead letters IDS (or --all) back to their queue as fresh deliveries."""
    if bool(ids) == everything:
        raise click.UsageError("give dead-letter IDS, or --all (not both)")
    broker = target().broker()

    async def work(out: Output) -> None:
        async with started(broker):
            if everything:
                total = (await list_dead_letters(broker, limit=1)).total
                if total:
                    confirm(out, f"Replay all {total} dead letters?", yes=yes)
                with out.progress("Replaying") as progress:
                    report = await replay_all_dead_letters(broker, progress=progress)
            else:
                with out.progress("Replaying") as progress:
                    report = await replay_dead_letters(broker, list(ids), progress=progress)
        if out.as_json:
            out.data(report)
        else:
            out.line(f"replayed {report.replayed} dead letters")

    run(output(as_json), work)


@dead_letters.command()
@click.argument("ids", nargs=-1, required=True)
@yes_option
@json_option
def delete(ids: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Delete the dead letters IDS (asks first)."""
    broker = target().broker()

    async def work(out: Output) -> None:
        confirm(out, f"Delete {len(ids)} dead letters for good?", yes=yes)
        async with started(broker):
            with out.progress("Deleting") as progress:
                report = await delete_dead_letters(broker, list(ids), progress=progress)
        if out.as_json:
            out.data({"deleted": report.replayed, "missing": report.missing})
        else:
            out.line(f"deleted {report.replayed} dead letters")

    run(output(as_json), work)


@dead_letters.command()
@yes_option
@json_option
def purge(yes: bool, as_json: bool) -> None:
    """Delete every dead letter (asks first)."""
    broker = target().broker()

    async def work(out: Output) -> None:
        async with started(broker):
            total = (await list_dead_letters(broker, limit=1)).total
            if total:
                confirm(out, f"Delete all {total} dead letters for good?", yes=yes)
                with out.progress("Purging") as progress:
                    deleted = await purge_dead_letters(broker, progress=progress)
            else:
                deleted = 0
        if out.as_json:
            out.data({"deleted": deleted})
        else:
            out.line(f"deleted {deleted} dead letters")

    run(output(as_json), work)
