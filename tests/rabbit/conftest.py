"""Fixtures of the RabbitMQ tests that several modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.private.rabbit import PrivateRabbit
from tests.private.rabbit_cluster import PrivateRabbitCluster, private_rabbit_cluster
from tests.rabbit.workers import Workers


@pytest.fixture
async def private_workers(
    tmp_path: Path, unique_name: Callable[[str], str], private_rabbit: PrivateRabbit
) -> AsyncIterator[Workers]:
    """Worker processes on the session's private RabbitMQ node, which tests may restart."""
    running = Workers(
        private_rabbit.url, unique_name("wx"), unique_name("wq"), tmp_path / "ran.txt"
    )
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[PrivateRabbitCluster]:
    """A 3-node RabbitMQ cluster of this session's own (tests may stop its nodes' apps, and
    start them again); started by the first test that asks for it, stopped at the session end.
    """
    with private_rabbit_cluster() as cluster:
        yield cluster
