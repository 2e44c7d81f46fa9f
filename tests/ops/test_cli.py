"""The ``taskiq-kit`` command run as a subprocess against the real servers and a real worker."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import pytest

from taskiq_kit import KitBroker, TaskStatus
from taskiq_kit.cli import ExitCode
from taskiq_kit.inspect import DeadLetter, list_dead_letters, list_workers
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.redis import RedisBroker
from tests.delivery.harness import send_raw
from tests.ops.app import AMQP_URL, build
from tests.ops.helpers import forget, wait_final, wait_status
from tests.private.redis import free_port
from tests.processes import BIN, ROOT, taskiq_worker
from tests.redis.harness import delete_keys

APP = "tests.ops.app:broker"
SCHEDULER = "tests.ops.app:scheduler"


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def error(self) -> dict[str, Any]:
        """The JSON error a ``--json`` command printed on stderr."""
        found: dict[str, Any] = json.loads(self.err.strip().splitlines()[-1])["error"]
        return found


def kit(*args: str, name: str = "kit-test-ops-none", env: dict[str, str] | None = None) -> Ran:
    """Run ``taskiq-kit *args`` (no terminal: stdin is empty) and wait for it."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TASKIQ_KIT_")},
        "PYTHONPATH": str(ROOT),
        "KIT_TEST_NAME": name,
        **(env or {}),
    }
    done = subprocess.run(  # noqa: PLW1510 - the exit status is what the tests check
        [str(BIN / "taskiq-kit"), *args],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def kit_at_terminal(*args: str, answer: str, name: str) -> tuple[int, str]:
    """Run ``taskiq-kit -b APP *args`` on a pseudo-terminal; type ``answer`` when it asks."""
    master, slave = pty.openpty()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TASKIQ_KIT_")},
        "PYTHONPATH": str(ROOT),
        "KIT_TEST_NAME": name,
        "TERM": "xterm",
        "COLUMNS": "120",
    }
    process = subprocess.Popen(
        [str(BIN / "taskiq-kit"), "-b", APP, *args],
        cwd=ROOT,
        env=environment,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    shown, answered = b"", False
    try:
        while select.select([master], [], [], 60)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if not answered and b"[y/N]" in shown:
                os.write(master, f"{answer}\n".encode())
                answered = True
        return process.wait(30), shown.decode(errors="replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()


# --- without a worker: what the command refuses, and why -----------------------------------


@pytest.mark.slow
@pytest.mark.redis
def test_exit_codes_say_not_found_refused_unreachable_and_usage(redis_url: str) -> None:
    env = {"TASKIQ_KIT_BROKER_URL": redis_url}
    missing = kit("status", "no-such-task", "--json", env=env)
    assert missing.code == ExitCode.NOT_FOUND == 3
    assert missing.error()["type"] == "TaskNotFoundError"
    assert missing.out == ""

    malformed = kit("--json", "status", "bad id", env=env)
    assert malformed.code == ExitCode.REFUSED == 4
    assert malformed.error()["type"] == "InvalidTaskIdError"

    closed = f"redis://127.0.0.1:{free_port()}/0"
    down = kit(
        "status",
        "some-task",
        env={"TASKIQ_KIT_BROKER_URL": closed, "TASKIQ_KIT_CONNECT_TIMEOUT": "1"},
    )
    assert down.code == ExitCode.UNREACHABLE == 5
    assert "cannot reach" in down.err

    nothing = kit("status", "some-task")
    assert nothing.code == ExitCode.USAGE == 2
    assert "--broker" in nothing.err

    wrong = kit("-b", "tests.ops.no_such_module:broker", "status", "some-task")
    assert wrong.code == ExitCode.USAGE
    assert "cannot import" in wrong.err

    unscheduled = kit("-b", APP, "schedules", "list")
    assert unscheduled.code == ExitCode.USAGE
    assert "--scheduler" in unscheduled.err


def test_a_destructive_command_refuses_without_yes_and_without_a_terminal() -> None:
    refused = kit("-b", APP, "dead-letters", "delete", "1-0", "--json")
    assert refused.code == ExitCode.REFUSED
    assert "--yes" in refused.error()["message"]


# --- with a real worker --------------------------------------------------------------------


@pytest.fixture
def name(unique_name: Callable[[str], str]) -> str:
    return unique_name("cli")


@pytest.fixture
def worker(name: str, client: KitBroker) -> Iterator[None]:
    """A real worker process on the test's queue (stopped before ``client`` cleans up)."""
    with taskiq_worker(APP, "--workers", "1", env={"KIT_TEST_NAME": name}):
        yield


@pytest.fixture
async def client(name: str, redis_url: str) -> AsyncIterator[KitBroker]:
    broker = build(name)
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.shutdown()
        assert isinstance(broker, RedisBroker)
        await delete_keys(broker.keys)
        await forget(name)


async def _kick(broker: KitBroker, task_name: str, *args: Any, **labels: Any) -> str:
    task = broker.find_task(task_name)
    assert task is not None
    kicked = await task.kicker().with_labels(**labels).kiq(*args)
    return kicked.task_id


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(120)
async def test_status_result_and_abort_of_real_tasks(
    name: str, worker: None, client: KitBroker
) -> None:
    done = await _kick(client, "ok", {"a": [1, 2]})
    failed = await _kick(client, "boom")
    later = await _kick(client, "ok", "later", delay=300)
    running = await _kick(client, "sleepy", 60)
    assert await wait_final(client, done) is TaskStatus.SUCCESS
    assert await wait_final(client, failed) is TaskStatus.FAILURE
    await wait_status(client, running, {TaskStatus.STARTED})

    status = kit("-b", APP, "status", done, "--json", name=name)
    assert status.code == ExitCode.OK
    assert status.json()["status"] == "success"
    assert status.json()["task_name"] == "ok"
    assert status.json()["queue"] == name
    assert [step[0] for step in status.json()["timeline"]] == ["pending", "started", "success"]
    table = kit("-b", APP, "status", done, name=name)
    assert table.code == ExitCode.OK
    assert "success" in table.out
    assert done in table.out
    assert "timeline" in table.out

    value = kit("-b", APP, "result", done, "--json", name=name)
    assert value.code == ExitCode.OK
    assert value.json()["return_value"] == {"a": [1, 2]}
    assert json.loads(kit("-b", APP, "result", done, name=name).out) == {"a": [1, 2]}

    error = kit("-b", APP, "result", failed, "--json", name=name)
    assert error.code == ExitCode.TASK_UNSUCCESSFUL == 6
    assert error.json()["status"] == "failure"
    assert error.json()["error"]["type"].endswith("BoomError")

    waiting = kit("-b", APP, "result", later, "--json", name=name)
    assert waiting.code == ExitCode.NOT_READY == 7
    assert waiting.json() == {"task_id": later, "status": "scheduled", "ready": False}

    aborted = kit("-b", APP, "abort", later, "--json", name=name)
    assert aborted.code == ExitCode.OK
    assert aborted.json() == {"task_id": later, "outcome": "aborted_before_start"}
    assert kit("-b", APP, "status", later, "--json", name=name).json()["status"] == "aborted"
    assert kit("-b", APP, "result", later, name=name).code == ExitCode.TASK_UNSUCCESSFUL

    stopped = kit("-b", APP, "abort", running, "--json", name=name)
    assert stopped.json()["outcome"] == "aborted_while_running"
    assert await wait_final(client, running) is TaskStatus.ABORTED
    again = kit("-b", APP, "abort", running, "--json", name=name)
    assert again.json()["outcome"] == "already_aborted"


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(120)
async def test_tasks_lists_filters_pages_and_counts(
    name: str, worker: None, client: KitBroker
) -> None:
    oks = [await _kick(client, "ok", n) for n in range(5)]
    booms = [await _kick(client, "boom") for _ in range(2)]
    for task_id in oks + booms:
        await wait_final(client, task_id)

    listed = kit("-b", APP, "tasks", "--json", "--since", "10m", name=name)
    assert listed.code == ExitCode.OK
    assert {record["task_id"] for record in listed.json()["tasks"]} == set(oks + booms)

    failed = kit("-b", APP, "tasks", "--status", "failure", "--json", name=name)
    assert {record["task_id"] for record in failed.json()["tasks"]} == set(booms)
    named = kit(
        "-b", APP, "tasks", "--name", "ok", "--status", "success,failure", "--json", name=name
    )
    assert {record["task_id"] for record in named.json()["tasks"]} == set(oks)

    first = kit("-b", APP, "tasks", "--limit", "4", "--json", name=name).json()
    assert len(first["tasks"]) == 4
    assert first["next_cursor"]
    rest = kit(
        "-b", APP, "tasks", "--limit", "4", "--cursor", first["next_cursor"], "--json", name=name
    )
    assert {r["task_id"] for r in first["tasks"] + rest.json()["tasks"]} == set(oks + booms)

    counts = kit("-b", APP, "tasks", "--count", "--json", name=name).json()
    assert counts["counts"]["success"] == 5
    assert counts["counts"]["failure"] == 2
    assert counts["total"] == 7

    bad = kit("-b", APP, "tasks", "--status", "nonsense", "--json", name=name)
    assert bad.code == ExitCode.REFUSED
    assert bad.error()["type"] == "InvalidQueryError"
    table = kit("-b", APP, "tasks", "--name", "boom", name=name)
    assert table.code == ExitCode.OK
    assert all(task_id in table.out for task_id in booms)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(120)
async def test_queues_and_workers(name: str, worker: None, client: KitBroker) -> None:
    done = await _kick(client, "ok", 1)
    await wait_final(client, done)
    await _kick(client, "ok", "later", delay=300)

    queues = kit("-b", APP, "queues", "--json", name=name)
    assert queues.code == ExitCode.OK
    (mine,) = [queue for queue in queues.json() if queue["name"] == name]
    assert mine["delayed"] == 1
    assert mine["dead_lettered"] == 0
    one = kit("-b", APP, "queues", name, "--json", name=name)
    assert [queue["name"] for queue in one.json()] == [name]
    unknown = kit("-b", APP, "queues", "no-such-queue", name=name)
    assert unknown.code == ExitCode.NOT_FOUND

    deadline = time.monotonic() + 15
    while not any(worker.processed for worker in await list_workers(client)):
        assert time.monotonic() < deadline, "no heartbeat counted the task"
        await asyncio.sleep(0.1)
    workers = kit("-b", APP, "workers", "--json", name=name)
    assert workers.code == ExitCode.OK
    found = workers.json()
    assert len(found) == 1
    assert found[0]["processed"] == 1
    assert name in found[0]["queues"]
    table = kit("-b", APP, "workers", name=name)
    assert found[0]["id"] in table.out


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(120)
async def test_schedules_list_pause_resume_and_run(
    name: str, worker: None, client: KitBroker
) -> None:
    def schedules(*args: str) -> Ran:
        return kit("-b", APP, "-s", SCHEDULER, "schedules", *args, "--json", name=name)

    listed = schedules("list")
    assert listed.code == ExitCode.OK
    (hourly,) = listed.json()
    assert hourly["id"] == "hourly-ok"
    assert hourly["task"] == "ok"
    assert hourly["paused"] is False
    assert hourly["next_fire"] is not None

    paused = schedules("pause", "hourly-ok")
    assert paused.code == ExitCode.OK
    assert paused.json()["paused"] is True
    assert schedules("list").json()[0]["paused"] is True
    assert schedules("resume", "hourly-ok").json()["paused"] is False

    ran = schedules("run", "hourly-ok")
    assert ran.code == ExitCode.OK
    task_id = ran.json()["task_id"]
    assert await wait_final(client, task_id) is TaskStatus.SUCCESS
    assert kit("-b", APP, "result", task_id, "--json", name=name).json()["return_value"] == "tick"

    missing = schedules("pause", "no-such-schedule")
    assert missing.code == ExitCode.NOT_FOUND
    assert missing.error()["type"] == "ScheduleNotFoundError"


async def _dead_total(broker: KitBroker, count: int) -> list[DeadLetter]:
    """Wait until ``broker`` has ``count`` dead letters; return them."""
    deadline = time.monotonic() + 15
    while True:
        page = await list_dead_letters(broker, limit=100)
        if page.total == count:
            return page.dead_letters
        assert time.monotonic() < deadline, f"{page.total} dead letters, not {count}"
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(150)
async def test_dead_letters_list_delete_replay_and_purge(name: str, client: KitBroker) -> None:
    async def unknown() -> None:
        raise AssertionError("no worker knows this task")

    late = client.register_task(unknown, task_name="late")
    stray = client.register_task(unknown, task_name=f"stray-{name}")
    with taskiq_worker(APP, "--workers", "1", env={"KIT_TEST_NAME": name}):
        ids = [(await late.kiq(n)).task_id for n in range(3)]
        await send_raw(client, [b"not a task at all"])
        await _dead_total(client, 4)

        listed = kit("-b", APP, "dead-letters", "list", "--json", name=name)
        assert listed.code == ExitCode.OK
        page = listed.json()
        assert page["total"] == 4
        by_task = {letter["task_id"]: letter for letter in page["dead_letters"]}
        assert set(ids) < set(by_task)
        assert all("unknown task" in by_task[task_id]["reason"] for task_id in ids)
        (garbage,) = [letter for letter in page["dead_letters"] if letter["task_id"] is None]

        refused = kit("-b", APP, "dead-letters", "purge", name=name)
        assert refused.code == ExitCode.REFUSED
        assert "--yes" in refused.err
        assert kit("-b", APP, "dead-letters", "replay", "--all", name=name).code == 4
        assert (await list_dead_letters(client)).total == 4  # nothing was changed

        deleted = kit(
            "-b", APP, "dead-letters", "delete", garbage["id"], "--yes", "--json", name=name
        )
        assert deleted.code == ExitCode.OK
        assert deleted.json() == {"deleted": 1, "missing": []}
        gone = kit("-b", APP, "dead-letters", "delete", garbage["id"], "--yes", name=name)
        assert gone.code == ExitCode.NOT_FOUND

    # The fix is deployed: a worker that knows `late`. Replaying runs the three.
    with taskiq_worker(APP, "--workers", "1", env={"KIT_TEST_NAME": name, "KIT_TEST_LATE": "1"}):
        replayed = kit("-b", APP, "dead-letters", "replay", "--all", "--yes", "--json", name=name)
        assert replayed.code == ExitCode.OK
        assert replayed.json() == {"replayed": 3, "missing": []}
        for number, task_id in enumerate(ids):
            assert await wait_final(client, task_id) is TaskStatus.SUCCESS
            value = kit("-b", APP, "result", task_id, "--json", name=name).json()
            assert value["return_value"] == {"late": number}

        await stray.kiq()
        await stray.kiq()
        await _dead_total(client, 2)
        # At a terminal the command asks; "n" changes nothing, "y" purges with a progress bar.
        code, shown = kit_at_terminal("dead-letters", "purge", answer="n", name=name)
        assert code == ExitCode.REFUSED
        assert "Delete all 2 dead letters for good? [y/N]" in shown
        assert (await list_dead_letters(client)).total == 2
        code, shown = kit_at_terminal("dead-letters", "purge", answer="y", name=name)
        assert code == ExitCode.OK
        assert "Purging" in shown
        assert "2/2" in shown
        assert "deleted 2 dead letters" in shown
        assert (await list_dead_letters(client)).total == 0

        await stray.kiq()
        await _dead_total(client, 1)
        purged = kit("-b", APP, "dead-letters", "purge", "--yes", "--json", name=name)
        assert purged.code == ExitCode.OK
        assert purged.json() == {"deleted": 1}
        assert (await list_dead_letters(client)).total == 0


@pytest.mark.slow
@pytest.mark.rabbit
@pytest.mark.redis
@pytest.mark.timeout(120)
async def test_a_rabbitmq_app_queues_tasks_and_abort(
    name: str, amqp_url: str, redis_url: str
) -> None:
    broker = build(name, rabbit=True)
    assert isinstance(broker, RabbitBroker)
    await broker.startup()
    try:
        now = await _kick(broker, "ok", 1)
        later = [await _kick(broker, "ok", n, delay=300) for n in range(2)]

        def rabbit(*args: str) -> Ran:
            return kit("-b", "tests.ops.app:rabbit_broker", *args, "--json", name=name)

        queue = rabbit("queues", name)
        assert queue.code == ExitCode.OK
        (figures,) = queue.json()
        assert (figures["ready"], figures["delayed"], figures["dead_lettered"]) == (1, 2, 0)

        listed = rabbit("tasks")
        statuses = {record["task_id"]: record["status"] for record in listed.json()["tasks"]}
        assert statuses == {now: "pending", later[0]: "scheduled", later[1]: "scheduled"}
        counts = rabbit("tasks", "--count").json()["counts"]
        assert (counts["pending"], counts["scheduled"]) == (1, 2)

        assert rabbit("abort", later[0]).json()["outcome"] == "aborted_before_start"
        assert rabbit("status", later[0]).json()["status"] == "aborted"
        assert rabbit("workers").json() == []
    finally:
        await broker.shutdown()
        async with await aio_pika.connect(AMQP_URL) as connection:
            await broker.topology.delete(await connection.channel())
        await forget(name)
