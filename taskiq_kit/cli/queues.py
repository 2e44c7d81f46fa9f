"""``queues`` and ``workers``: what the transport holds, and who consumes it."""

from __future__ import annotations

import time

import click

from taskiq_kit.cli.app import cli, json_option, output, run, target
from taskiq_kit.cli.render import Output, ago, instant
from taskiq_kit.cli.target import started
from taskiq_kit.inspect.api import get_queue, list_workers, queue_figures


@cli.command()
@click.argument("name", required=False)
@json_option
def queues(name: str | None, as_json: bool) -> None:
    """Show each queue's ready, in-flight, delayed and dead-lettered messages (or NAME's)."""
    broker = target().broker()

    async def work(out: Output) -> None:
        async with started(broker):
            figures = [await get_queue(broker, name)] if name else await queue_figures(broker)
        if out.as_json:
            out.data(figures)
            return
        rows = [
            [
                queue.name,
                str(queue.ready),
                str(queue.in_flight),
                str(queue.delayed),
                str(queue.dead_lettered),
                "-" if queue.consumers is None else str(queue.consumers),
            ]
            for queue in figures
        ]
        columns = ["QUEUE", "READY", "IN FLIGHT", "DELAYED", "DEAD", "CONSUMERS"]
        out.table(None, columns, rows)

    run(output(as_json), work)


@cli.command()
@json_option
def workers(as_json: bool) -> None:
    """List the live worker processes (from their heartbeats)."""
    broker = target().broker()

    async def work(out: Output) -> None:
        async with started(broker):
            found = await list_workers(broker)
        if out.as_json:
            out.data(found)
            return
        now = time.time()
        rows = [
            [
                worker.id,
                ", ".join(worker.queues) or "-",
                instant(worker.started_at),
                f"{len(worker.running)}/{worker.concurrency or '-'}",
                str(worker.processed),
                str(worker.failed),
                ago(worker.last_heartbeat, now),
            ]
            for worker in found
        ]
        columns = ["WORKER", "QUEUES", "STARTED", "RUNNING", "DONE", "FAILED", "HEARTBEAT"]
        out.table(None, columns, rows)
        if not rows:
            out.note("no live worker")

    run(output(as_json), work)
