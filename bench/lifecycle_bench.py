"""Task lifecycle benchmark, run by hand: the kit storing its full status record vs the peers.

As a user runs it: a separate ``taskiq worker bench.lifecycle_app:broker --workers 1
--max-async-tasks 100`` process per run, this process kicking ``--tasks`` no-op tasks
``--batch`` at a time (``asyncio.gather`` of ``kiq()``) and waiting until every result is stored
(``is_ready()`` of each task, in kick order). Both sides store their results in the same server;
the kit also keeps each task's record (pending, started, success, times, worker). Rows:

* ``make_broker("redis://")`` vs taskiq-redis ``RedisStreamBroker`` + ``RedisAsyncResultBackend``
* ``make_broker("amqp://", result_url="redis://")`` vs taskiq-aio-pika + ``RedisAsyncResultBackend``
* ``make_broker("amqp://", result_url="postgresql://")`` (the kit only)

Rounds are interleaved (every configuration once per round); medians and ratios are printed.

How to run (RabbitMQ, Redis and PostgreSQL on loopback; the peers from the ``bench`` group)::

    .venv/bin/python -m pip install taskiq-aio-pika taskiq-redis
    .venv/bin/python bench/lifecycle_bench.py [--tasks 3000] [--batch 200] [--rounds 5]

``--profile CONFIG`` runs that configuration's worker under py-spy and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lifecycle_app import AMQP_URL, CONFIGS, POSTGRES_URL, REDIS_URL  # noqa: E402

PAIRS = [("kit-redis", "peer-redis"), ("kit-rabbit-redis", "peer-rabbit-redis")]


def group_cpu(pgid: int) -> float:
    """CPU seconds used so far by the processes of session ``pgid`` (the worker and its parent)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # the process group, fields[2] after the name is pgrp
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


@contextlib.contextmanager
def worker(config: str, name: str, profile: Path | None = None) -> Iterator[tuple[Path, int]]:
    """A ``taskiq worker`` process for ``config``; yields its log's path and process group."""
    env = {**os.environ, "BENCH_CONFIG": config, "BENCH_NAME": name, "PYTHONPATH": str(ROOT)}
    taskiq = [
        "-m",
        "taskiq",
        "worker",
        "bench.lifecycle_app:broker",
        "--workers",
        "1",
        "--max-async-tasks",
        "100",
    ]
    prefix = [sys.executable]
    if profile is not None:
        # taskiq runs the worker in a child process: py-spy follows it.
        spy = str(Path(sys.executable).with_name("py-spy"))
        prefix = [spy, "record", "--subprocesses", "--format", "raw", "-r", "250"]
        prefix += ["-o", str(profile), "--", sys.executable]
    log = Path(tempfile.mkstemp(prefix=f"{config}-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*prefix, *taskiq],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield log, process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)  # taskiq's process manager stops its worker
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(20)
        # Whatever of the group is left (a worker its manager did not wait for) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


async def _wait_all(tasks: list[Any], total: int, deadline: float) -> None:
    """Wait until every task (kicked so far, up to ``total``) has a stored result, in kick order."""
    done = 0
    while done < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done}/{total} results after the deadline")
        if done < len(tasks) and await tasks[done].is_ready():
            done += 1
            continue
        await asyncio.sleep(0.002)


class Run(NamedTuple):
    """One run: tasks/s (first kick to last stored result), CPU us per task of both processes."""

    rate: float
    client_us: float
    worker_us: float


async def one_run(config: str, count: int, batch: int, *, profile: Path | None = None) -> Run:
    """One run of ``config``."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    os.environ["BENCH_CONFIG"], os.environ["BENCH_NAME"] = config, name
    from bench import lifecycle_app

    broker = lifecycle_app.build(config, name)
    noop = broker.register_task(lifecycle_app.noop.original_func, task_name="noop")
    await broker.startup()
    try:
        with worker(config, name, profile) as (log, pgid):
            # The worker is ready once a first task comes back.
            first = await noop.kiq(-1)
            try:
                await asyncio.wait_for(first.wait_result(check_interval=0.05), 60)
            except asyncio.TimeoutError:
                raise RuntimeError(f"worker did not start:\n{log.read_text()[-3000:]}") from None
            tasks: list[Any] = []
            worker_cpu, client_cpu = group_cpu(pgid), time.process_time()
            started = time.perf_counter()
            waiter = asyncio.create_task(_wait_all(tasks, count, time.monotonic() + 300))
            for start in range(0, count, batch):
                kicks = [noop.kiq(n) for n in range(start, min(count, start + batch))]
                tasks.extend(await asyncio.gather(*kicks))
            await waiter
            elapsed = time.perf_counter() - started
            client_cpu = time.process_time() - client_cpu
            worker_cpu = group_cpu(pgid) - worker_cpu
            last = await tasks[-1].get_result()
            assert last.return_value == count - 1, last
            logged = log
    finally:
        await broker.shutdown()
        await cleanup(config, name, broker)
    if os.environ.get("BENCH_STATS"):
        stats = [line for line in logged.read_text().splitlines() if "BENCH_STATS" in line]
        if stats:
            print(f"  worker {config}: {stats[-1].split('BENCH_STATS ')[1]}")
    return Run(count / elapsed, client_cpu / count * 1e6, worker_cpu / count * 1e6)


async def cleanup(config: str, name: str, broker: Any) -> None:
    """Remove this run's queues, streams, keys and table."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{name}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()
    if "rabbit" in config:
        import aio_pika

        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            if config.startswith("kit"):
                levels = broker.topology.levels
                queues = broker.names.all_queues(levels)
                exchanges = broker.names.all_exchanges(levels)
            else:
                queues, exchanges = [name, f"{name}.delay", f"{name}.dlq"], [name]
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in exchanges:
                await channel.exchange_delete(exchange)
    if config == "kit-rabbit-pg":
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
        finally:
            await conn.close()


def print_profile(path: Path, limit: int = 40) -> None:
    """Self and inclusive sample shares per function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [
            frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].rstrip(")")
            for frame in stack.split(";")
        ]
        if not any("run_forever" in frame for frame in frames):
            continue  # start-up, and the parent process manager
        samples = int(count)
        total += samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    print(f"{total} samples of the worker")
    for title, table in (("self", own), ("inclusive", inclusive)):
        print(f"-- {title} --")
        for frame, samples in sorted(table.items(), key=lambda item: -item[1])[:limit]:
            print(f"  {samples / total * 100:5.1f}%  {frame}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=200, help="kicks gathered at a time")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=list(CONFIGS), help="configurations to run")
    parser.add_argument("--profile", choices=list(CONFIGS), help="profile this one's worker")
    args = parser.parse_args()

    if args.profile:
        path = Path(tempfile.mkstemp(suffix=".txt")[1])
        run = await one_run(args.profile, args.tasks, args.batch, profile=path)
        await asyncio.sleep(1)  # py-spy writes its file after the worker exits
        print(f"{CONFIGS[args.profile]}: {run.rate:.0f} tasks/s (under py-spy)")
        print_profile(path)
        return

    configs = args.only or list(CONFIGS)
    print(
        f"{args.tasks} no-op tasks, kicked {args.batch} at a time; a separate `taskiq worker "
        "--workers 1 --max-async-tasks 100` process; wait until every result is stored; "
        f"median of {args.rounds} interleaved rounds"
    )
    runs: dict[str, list[Run]] = {config: [] for config in configs}
    for round_number in range(args.rounds):
        for config in configs:
            run = await one_run(config, args.tasks, args.batch)
            runs[config].append(run)
            print(
                f"  round {round_number + 1}: {config:<18} {run.rate:7.0f} tasks/s, CPU/task "
                f"client {run.client_us:4.0f} us, worker {run.worker_us:4.0f} us",
                flush=True,
            )
    median = {config: statistics.median(r.rate for r in values) for config, values in runs.items()}
    print()
    for config in configs:
        rounds = ", ".join(f"{r.rate:.0f}" for r in runs[config])
        client = statistics.median(r.client_us for r in runs[config])
        work = statistics.median(r.worker_us for r in runs[config])
        print(
            f"  {CONFIGS[config]:<62} {median[config]:7.0f} tasks/s  (rounds: {rounds}); "
            f"CPU/task: client {client:.0f} us, worker {work:.0f} us"
        )
    for kit, peer in PAIRS:
        if kit in median and peer in median:
            print(f"  ratio {kit} / {peer}: {median[kit] / median[peer]:.2f}x")
    if "kit-rabbit-pg" in median and "kit-rabbit-redis" in median:
        ratio = median["kit-rabbit-pg"] / median["kit-rabbit-redis"]
        print(f"  ratio kit-rabbit-pg / kit-rabbit-redis: {ratio:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
