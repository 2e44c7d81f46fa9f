"""Print a sample `taskiq-kit` session (the one in docs/cli.md) against the local Redis.

Runs the test app of tests/ops/app.py with one `taskiq worker` process on keys of its own,
kicks a few tasks, prints what the command shows, then deletes the keys.

How to run (from the repository root, Redis on 127.0.0.1:6379)::

    .venv/bin/python scripts/cli_session.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["KIT_TEST_NAME"] = NAME = "kit-demo-ops"

import tests.brokers  # noqa: E402, F401 - imported first: it loads the transport harnesses
from tests.ops.app import build  # noqa: E402
from tests.ops.helpers import forget, wait_final  # noqa: E402
from tests.processes import BIN, taskiq_worker  # noqa: E402
from tests.redis.harness import delete_keys  # noqa: E402

APP = "tests.ops.app:broker"


def kit(*args: str) -> None:
    done = subprocess.run(  # noqa: PLW1510, S603 - our own command; the exit status is printed
        [str(BIN / "taskiq-kit"), "-b", APP, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    print(f"$ taskiq-kit -b app:broker {' '.join(args)}   # exit {done.returncode}")
    print(done.stdout + done.stderr)


async def main() -> None:
    client = build(NAME)
    await client.startup()

    async def nobody() -> None:
        """A task no worker knows."""

    stray = client.register_task(nobody, task_name="report.rebuild")
    ok, boom = client.find_task("ok"), client.find_task("boom")
    assert ok is not None
    assert boom is not None
    try:
        with taskiq_worker(APP, "--workers", "1", env={"KIT_TEST_NAME": NAME}):
            ids = [(await ok.kiq({"n": n})).task_id for n in range(3)]
            ids.append((await boom.kiq()).task_id)
            later = (await ok.kicker().with_labels(delay=600).kiq("later")).task_id
            for task_id in ids:
                await wait_final(client, task_id)
            await stray.kiq()
            await stray.kiq()
            await asyncio.sleep(1.5)  # the dead letters and a heartbeat
            kit("status", ids[0])
            kit("result", ids[0], "--json")
            kit("result", ids[3])
            kit("tasks", "--limit", "5")
            kit("tasks", "--count")
            kit("queues")
            kit("workers")
            kit("dead-letters", "list")
            kit("dead-letters", "purge")
            kit("abort", later)
    finally:
        await client.shutdown()
        await delete_keys(client.keys)  # a RedisBroker
        await forget(NAME)


if __name__ == "__main__":
    asyncio.run(main())
