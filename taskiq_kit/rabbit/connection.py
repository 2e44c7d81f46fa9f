"""The connection to RabbitMQ: one robust (self-healing) connection, errors mapped to the kit's."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit, urlunsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustConnection

from taskiq_kit.exceptions import AccessRefusedError, BrokerNotAvailableError
from taskiq_kit.urls import redact, scrub

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


class RabbitConnection:
    """Opens, shares and closes the broker's robust AMQP connection.

    aio-pika's robust connection reconnects by itself (every ``reconnect_interval`` seconds)
    and restores channels, QoS, declarations and consumers on the new connection.

    Args:
        url: the ``amqp://`` or ``amqps://`` URL.
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
        self.name = name
        self.connect_timeout = connect_timeout
        self.reconnect_interval = reconnect_interval
        self._connection: AbstractRobustConnection | None = None
        self._lock = asyncio.Lock()

    @property
    def target(self) -> str:
        """The URL, safe to show."""
        return redact(self.url)

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
                try:
                    self._connection = await asyncio.wait_for(
                        aio_pika.connect_robust(
                            _with_name(self.url, self.name),
                            timeout=self.connect_timeout,
                            reconnect_interval=self.reconnect_interval,
                        ),
                        self.connect_timeout,
                    )
                except _OPEN_ERRORS as exc:
                    refused = self.refused(exc)
                    if refused is not None:
                        raise refused from exc
                    if isinstance(exc, CONNECTION_ERRORS):
                        raise self.unavailable(exc) from exc
                    raise
                logger.debug("Connected to RabbitMQ at %s.", self.target)
        return self._connection

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
