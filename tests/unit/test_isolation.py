"""Suspects run alone (taskiq_kit.isolation): the others end first, and nothing starts beside."""

from __future__ import annotations

import asyncio
import logging

import pytest

from taskiq_kit.isolation import RunIsolation


async def _run(
    isolation: RunIsolation, name: str, *, suspect: bool, log: list[str], release: asyncio.Event
) -> None:
    if suspect or not isolation.try_enter():
        await isolation.enter(suspect=suspect)
    log.append(f"start {name} ({isolation.running} running)")
    await release.wait()
    log.append(f"end {name}")
    isolation.leave()


async def test_a_suspect_waits_for_the_others_then_runs_alone() -> None:
    isolation = RunIsolation()
    log: list[str] = []
    first, suspect_done, later = asyncio.Event(), asyncio.Event(), asyncio.Event()
    ordinary = asyncio.create_task(_run(isolation, "a", suspect=False, log=log, release=first))
    await asyncio.sleep(0)
    suspect = asyncio.create_task(_run(isolation, "s", suspect=True, log=log, release=suspect_done))
    await asyncio.sleep(0.01)
    newcomer = asyncio.create_task(_run(isolation, "b", suspect=False, log=log, release=later))
    await asyncio.sleep(0.01)
    assert log == ["start a (1 running)"], "the suspect started beside a running task"
    first.set()
    await asyncio.sleep(0.01)
    assert log[-1] == "start s (1 running)", "the suspect does not run alone"
    suspect_done.set()
    await asyncio.sleep(0.01)
    assert log[-1] == "start b (1 running)"
    later.set()
    await asyncio.gather(ordinary, suspect, newcomer)
    assert isolation.running == 0


async def test_ordinary_runs_share_the_process() -> None:
    isolation = RunIsolation()
    assert isolation.try_enter()
    assert isolation.try_enter()
    assert isolation.running == 2


async def test_waiting_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    isolation = RunIsolation(max_wait=0.05)
    log: list[str] = []
    hold, done = asyncio.Event(), asyncio.Event()
    busy = asyncio.create_task(_run(isolation, "a", suspect=False, log=log, release=hold))
    await asyncio.sleep(0)
    done.set()
    # The task it waits for may itself wait for something the suspect would block: past
    # max_wait the suspect runs beside it rather than dead-lock the worker.
    await asyncio.wait_for(_run(isolation, "s", suspect=True, log=log, release=done), 1)
    assert log == ["start a (1 running)", "start s (2 running)", "end s"]
    hold.set()
    await busy
    assert isolation.running == 0


async def test_a_run_that_never_reaches_post_execute_still_ends() -> None:
    isolation = RunIsolation()

    async def broken() -> None:
        assert isolation.try_enter()
        raise RuntimeError("failed between pre_execute and post_execute")

    with pytest.raises(RuntimeError):
        await asyncio.create_task(broken())
    await asyncio.sleep(0)
    assert isolation.running == 0


async def test_suspects_take_turns_past_the_wait_bound() -> None:
    isolation = RunIsolation(max_wait=0.05)
    log: list[str] = []
    first, second = asyncio.Event(), asyncio.Event()
    one = asyncio.create_task(_run(isolation, "s1", suspect=True, log=log, release=first))
    await asyncio.sleep(0)
    two = asyncio.create_task(_run(isolation, "s2", suspect=True, log=log, release=second))
    await asyncio.sleep(0.2)  # four times max_wait: s2 still waits for s1 to end
    assert log == ["start s1 (1 running)"]
    first.set()
    second.set()
    await asyncio.gather(one, two)
    assert log == ["start s1 (1 running)", "end s1", "start s2 (1 running)", "end s2"]
