"""The connection to RabbitMQ: one robust (self-healing) connection, errors mapped to the kit's.

A URL may list several hosts of a cluster (``amqp://user:pass@h1:5672,h2:5672,h3:5672/vhost``):
the connection opens to the first host that answers and, when it is lost, reconnects to the
next host of the list, round robin, every ``reconnect_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit, urlunsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

from taskiq_kit.exceptions import AccessRefusedError, BrokerNotAvailableError
from taskiq_kit.urls import redact, scrub, split_hosts

logger = logging.getLogger("taskiq_kit.rabbit")

#: Errors that mean "the server is not reachable right now", worth a retry.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    aio_pika.exceptions.AMQPConnectionError,
    aio_pika.exceptions.ChannelInvalidStateError,
    aio_pika.exceptions.ChannelClosed,
)
#: Errors opening a connection: unreachable, or refused by the server (login, virtual host).
_OPEN_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, aiormq.exceptions.AMQPError)


class FailoverConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, dialing the next host of a list at each connection attempt.

    aio-pika reads ``url`` once per connection attempt (and nowhere else once built, as
    ``__str__`` is overridden here), so handing out the next host on each read moves every
    reconnection on to the next host, round robin; with one host it is aio-pika's connection.

    Args:
        urls: one URL per host, with the same credentials, virtual host and query.
        first: index of the host the first attempt dials.
        **kwargs: passed on to :class:`aio_pika.RobustConnection`.

    """

    def __init__(self, urls: Sequence[str], *, first: int = 0, **kwargs: Any) -> None:
        self._hosts = tuple(URL(url) for url in urls)
        self._next = first % len(self._hosts)
        self._current = self._hosts[self._next]
        super().__init__(self._current, **kwargs)
        self._next = first % len(self._hosts)  # building it read the URL once

    @property
    def url(self) -> URL:
        """The host the next connection attempt dials (each read moves on to the next)."""
        self._current = self._hosts[self._next]
        self._next = (self._next + 1) % len(self._hosts)
        return self._current

    @url.setter
    def url(self, value: URL) -> None:
        # aio-pika sets it when built and when the password changes (``update_secret``).
        self._hosts = tuple(
            host.with_user(value.user).with_password(value.password) for host in self._hosts
        )

    @property
    def current(self) -> URL:
        """The host of the last connection attempt."""
        return self._current

    def __str__(self) -> str:
        return redact(str(self._current))


class RabbitConnection:
    """Opens, shares and closes the broker's robust AMQP connection.

    aio-pika's robust connection reconnects by itself (every ``reconnect_interval`` seconds)
    and restores channels, QoS, declarations and consumers on the new connection. A URL listing
    several hosts connects to the first that answers and fails over to the next ones.

    Args:
        url: the ``amqp://`` or ``amqps://`` URL, one host or a comma-separated host list.
        connect_timeout: seconds a connection attempt may take before it fails.
        reconnect_interval: seconds between reconnection attempts after the connection is lost.
        name: the connection name shown by RabbitMQ (management UI, ``rabbitmqctl``).

    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        reconnect_interval: float,
        name: str = "taskiq-kit",
    ) -> None:
        self.url = url
        self.urls = split_hosts(url)
        self.name = name
        self.connect_timeout = connect_timeout
        self.reconnect_interval = reconnect_interval
        self._connection: FailoverConnection | None = None
        self._lock = asyncio.Lock()

    @property
    def target(self) -> str:
        """The URL, safe to show."""
        return redact(self.url)

    @property
    def current_url(self) -> str:
        """The one-host URL in use (the first host before connecting); holds the password."""
        if self._connection is None:
            return self.urls[0]
        return str(self._connection.current)

    def unavailable(self, reason: object, timeout: float | None = None) -> BrokerNotAvailableError:
        """The error raised when RabbitMQ cannot be reached."""
        return BrokerNotAvailableError(
            target=f"RabbitMQ at {self.target}",
            timeout=self.connect_timeout if timeout is None else timeout,
            reason=scrub(str(reason), self.url) or type(reason).__name__,
        )

    def refused(self, exc: BaseException) -> AccessRefusedError | None:
        """The error for a connection RabbitMQ refused (login, virtual host), else ``None``."""
        parts = urlsplit(self.url)
        user = unquote(parts.username or "guest")
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
            reason = (
                f"login refused for user {user!r}: check the user name and password in the URL "
                "(RabbitMQ's log says more)"
            )
        elif isinstance(exc, aiormq.exceptions.ConnectionNotAllowed) or (
            # aiormq reports the server closing the connection instead of opening the virtual
            # host as an unexpected frame; the close's reason text is lost.
            isinstance(exc, aiormq.exceptions.InvalidFrameError) and "Connection.Close" in str(exc)
        ):
            reason = (
                f"virtual host {vhost!r} does not exist or user {user!r} may not use it: create "
                f"it (`rabbitmqctl add_vhost {vhost}`) and grant access (`rabbitmqctl "
                f"set_permissions -p {vhost} {user} '.*' '.*' '.*'`), or fix the URL's path "
                "(the default virtual host '/' is amqp://host:5672/ or amqp://host:5672/%2F)"
            )
        else:
            return None
        return AccessRefusedError(target=f"RabbitMQ at {self.target}", reason=reason)

    async def get(self) -> AbstractRobustConnection:
        """Return the connection, opening it on first use.

        Raises:
            BrokerNotAvailableError: when RabbitMQ cannot be reached within ``connect_timeout``.
            AccessRefusedError: when RabbitMQ refuses the URL's credentials or virtual host.

        """
        if self._connection is not None:
            return self._connection
        async with self._lock:
            if self._connection is None:
                self._connection = await self._open()
                self._connection.reconnect_callbacks.add(self._on_reconnect)
                logger.debug("Connected to RabbitMQ at %s.", self._connection)
        return self._connection

    async def _open(self) -> FailoverConnection:
        """Open the connection to the first host of the list that answers."""
        urls = [_with_name(url, self.name) for url in self.urls]
        for first in range(len(urls)):
            connection = FailoverConnection(
                urls, first=first, reconnect_interval=self.reconnect_interval
            )
            try:
                await asyncio.wait_for(
                    connection.connect(self.connect_timeout), self.connect_timeout
                )
            except _OPEN_ERRORS as exc:
                await connection.close()
                refused = self.refused(exc)
                if refused is not None:
                    raise refused from exc
                if not isinstance(exc, CONNECTION_ERRORS):
                    raise
                if first == len(urls) - 1:
                    raise self.unavailable(exc) from exc
                logger.info(
                    "RabbitMQ at %s did not answer (%s); trying the next host.",
                    redact(self.urls[first]),
                    scrub(str(exc), self.url)[:200] or type(exc).__name__,
                )
            else:
                return connection
        raise AssertionError("unreachable: a URL has at least one host")  # pragma: no cover

    def _on_reconnect(self, connection: AbstractRobustConnection | None) -> None:
        if len(self.urls) > 1:
            logger.info("Reconnected to RabbitMQ at %s.", connection)

    async def wait_connected(self, timeout: float) -> None:
        """Return at once when connected, else wait up to ``timeout`` s for the reconnection.

        Raises:
            asyncio.TimeoutError: when the connection is not back in time.

        """
        connection = await self.get()
        if not connection.connected.is_set():
            await asyncio.wait_for(connection.connected.wait(), timeout)

    @property
    def is_open(self) -> bool:
        """Whether a connection was opened and not closed."""
        return self._connection is not None and not self._connection.is_closed

    async def close(self) -> None:
        """Close the connection (unacknowledged deliveries go back to their queues)."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            await connection.close()


def _with_name(url: str, name: str) -> str:
    """``url`` asking RabbitMQ to show the connection as ``name``, unless it names one already.

    The ``name`` query parameter works with every aiormq release (``client_properties`` is not
    passed on by the aio-pika releases that still run on Python 3.10).
    """
    parts = urlsplit(url)
    if "name" in parse_qs(parts.query):
        return url
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"name": name}, quote_via=quote)))
