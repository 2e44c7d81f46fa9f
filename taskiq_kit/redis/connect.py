"""Reaching Redis: the connection options checked when a broker is built, the start-up ping.

Shared by the Redis broker and the Redis result store, so both fail the same way: a server that
is down is a :class:`~taskiq_kit.exceptions.BrokerNotAvailableError` (the store's is a
:class:`~taskiq_kit.exceptions.ResultStoreNotAvailableError`), one that refuses the URL's
credentials or database an :class:`~taskiq_kit.exceptions.AccessRefusedError`, each naming the
redacted URL.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import Connection, SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    MaxConnectionsError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskiq_kit.exceptions import (
    AccessRefusedError,
    BrokerNotAvailableError,
    InvalidURLError,
    UnknownOptionError,
)
from taskiq_kit.urls import redact, scrub, split_hosts

#: redis-py's Sentinel manager (its constructor is not annotated).
_SENTINEL: Any = Sentinel


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The master's pool behind Sentinels, whose callers wait for a free connection when it is full.

    As :class:`~redis.asyncio.BlockingConnectionPool` does for one server (redis-py's Sentinel pool
    fails at once instead).
    """


class WaitingRedisCluster(RedisCluster):
    """A cluster client whose calls wait for a free connection of a full node pool.

    redis-py's cluster nodes have no blocking pool: past ``max_connections`` a call raises
    :class:`~redis.exceptions.MaxConnectionsError`. This client retries such a call (every few
    milliseconds, up to ``pool_timeout`` seconds), as a blocking pool on one server waits.
    """

    pool_timeout: float = 5.0

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run a command, waiting up to :attr:`pool_timeout` for a free connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pool_timeout
        pause = 0.001
        while True:
            try:
                return await super().execute_command(*args, **kwargs)
            except MaxConnectionsError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)


#: A client of one server (or of a Sentinel-found master) or of a Redis Cluster.
RedisClient: TypeAlias = Redis | RedisCluster

#: Errors meaning "Redis is not reachable right now".
UNREACHABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    asyncio.TimeoutError,
)
#: Errors meaning "Redis answered and said no" (credentials, ACL, a database it does not have).
REFUSED: tuple[type[BaseException], ...] = (AuthenticationError, AuthorizationError, ResponseError)


def _keyword_names(cls: type) -> set[str]:
    """Keyword parameters of ``cls``'s constructor, following ``**kwargs`` up its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters
        names.update(
            name
            for name, param in params.items()
            if name != "self" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)
        )
        if all(param.kind is not param.VAR_KEYWORD for param in params.values()):
            break
    return names


def _valid_names(connection_class: object) -> set[str]:
    if not isinstance(connection_class, type):
        connection_class = Connection
    return _keyword_names(BlockingConnectionPool) | _keyword_names(connection_class)


def check_connection(
    url: str, options: Mapping[str, object], *, target: str, own: tuple[str, ...] = ()
) -> None:
    """Check ``url``'s query parameters and ``options`` against what redis-py's connections take.

    Args:
        url: the ``redis://`` / ``rediss://`` URL.
        options: keyword options meant for redis-py's connection pool and connections.
        target: the class the options were given to (for the message).
        own: that class's own options (listed as valid too).

    Raises:
        InvalidURLError: for a query parameter redis-py cannot read.
        UnknownOptionError: for an option (or query parameter) redis-py does not take.

    """
    where = topology(url)
    try:
        from_url = parse_url(where.server_url)
    except ValueError as exc:
        accepted = "redis://, rediss://, redis+cluster://, redis+sentinel://"
        raise InvalidURLError(
            url=redact(url), reason=scrub(str(exc), url), accepted=accepted
        ) from None
    connection_class = from_url.get("connection_class", Connection)
    valid = _valid_names(connection_class)
    if where.kind == "cluster":
        valid |= _keyword_names(RedisCluster) - {"startup_nodes", "host", "port"}
    for name in [*from_url, *options]:
        if name not in valid:
            listed = (
                f"{', '.join(sorted(own))}; redis-py connection options: {', '.join(sorted(valid))}"
            )
            raise UnknownOptionError(target=target, option=name, valid=listed)


async def ping(
    client: RedisClient,
    *,
    url: str,
    target: str,
    timeout: float,
    unavailable: type[BrokerNotAvailableError] = BrokerNotAvailableError,
) -> None:
    """PING Redis through ``client``; a connection is opened (AUTH, SELECT) if none is.

    Raises:
        AccessRefusedError: when Redis refuses the credentials or the database of ``url``.
        BrokerNotAvailableError: (``unavailable``) when Redis does not answer within ``timeout``.

    """
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except REFUSED as exc:
        raise AccessRefusedError(target=target, reason=refusal(exc, url)) from exc
    except UNREACHABLE as exc:
        reason = scrub(str(exc), url) or type(exc).__name__
        raise unavailable(target=target, timeout=timeout, reason=reason) from exc


def refusal(exc: BaseException, url: str) -> str:
    """What to tell the user when Redis refuses the connection."""
    text = scrub(str(exc), url) or type(exc).__name__
    if isinstance(exc, (AuthenticationError, AuthorizationError)):
        return f"{text}; check the user name and password in the URL"
    if "DB index" in text:
        return f"{text}; use a database number below the server's `databases` setting (often 16)"
    return text


@dataclass(frozen=True)
class Topology:
    """What a Redis URL points at.

    Attributes:
        kind: ``"server"`` (``redis://``, ``rediss://``), ``"cluster"`` (``redis+cluster://``,
            ``rediss+cluster://``) or ``"sentinel"`` (``redis+sentinel://``, ``rediss+sentinel://``).
        nodes: ``(host, port)`` of every listed node (cluster) or Sentinel.
        service: the master's service name (Sentinel only).
        server_url: a ``redis://``/``rediss://`` URL of the first node carrying the credentials,
            database and query: what redis-py reads the connection options from.

    """

    kind: Literal["server", "cluster", "sentinel"]
    nodes: tuple[tuple[str, int], ...]
    service: str | None
    server_url: str


def topology(url: str) -> Topology:
    """Read what ``url`` points at (one server, a cluster, or a master behind Sentinels).

    ``redis+cluster://[user:pass@]h1:p1,h2:p2/?opts`` lists some nodes of a cluster (the client
    finds the others). ``redis+sentinel://[user:pass@]s1:p1,s2:p2/<service>[/<db>]?opts`` lists
    Sentinels and names the master's service; the credentials are the master's.
    """
    scheme, sep, rest = url.strip().partition("://")
    base = scheme.lower().partition("+")
    kind: Literal["server", "cluster", "sentinel"]
    if base[2] == "cluster":
        kind, default_port = "cluster", 6379
    elif base[2] == "sentinel":
        kind, default_port = "sentinel", 26379
    else:
        return Topology("server", (), None, url)
    nodes = []
    for single in split_hosts(url):
        parts = urlsplit(single)
        nodes.append((parts.hostname or "localhost", parts.port or default_port))
    userinfo, at, hostpart = rest.rpartition("@")
    path, query = hostpart.partition("?")[::2]
    path = path.partition("/")[2]
    service = None
    database = "0"
    if kind == "sentinel":
        service_part, _, db_part = path.strip("/").partition("/")
        service, database = unquote(service_part), db_part or "0"
    host, port = nodes[0]
    server_url = f"{base[0]}{sep}{userinfo}{at}{host}:{port}/{database}"
    if query:
        server_url += f"?{query}"
    return Topology(kind, tuple(nodes), service, server_url)


def make_client(
    url: str,
    *,
    max_connections: int = 50,
    pool_timeout: float | None = None,
    connect_timeout: float = 5.0,
    **options: Any,
) -> RedisClient:
    """The one place the kit builds a Redis client (binary responses unless told otherwise).

    Args:
        url: ``redis://``/``rediss://`` (one server), ``redis+cluster://`` (a Redis Cluster:
            :class:`redis.asyncio.RedisCluster`) or ``redis+sentinel://`` (the master of a service,
            re-discovered through the Sentinels after a failover).
        max_connections: size of the pool (per node on a cluster).
        pool_timeout: seconds a call waits for a free connection (a blocking pool; on a cluster
            :class:`WaitingRedisCluster`); ``None`` for a pool that fails at once when full.
        connect_timeout: seconds to wait for a TCP connection.
        **options: redis-py connection options (e.g. ``socket_timeout``, ``decode_responses``).

    Returns:
        A client; on a cluster, every command and script must touch keys of one slot.

    """
    where = topology(url)
    options = {"socket_connect_timeout": connect_timeout, **options}
    if where.kind == "server":
        if pool_timeout is None:
            return Redis.from_url(url, max_connections=max_connections, **options)
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=pool_timeout, **options
        )
        return Redis(connection_pool=pool)
    settings: dict[str, Any] = {**parse_url(where.server_url), **options}
    settings.pop("host", None)
    settings.pop("port", None)
    if settings.pop("connection_class", None) is SSLConnection:
        settings["ssl"] = True
    if where.kind == "cluster":
        settings.pop("db", None)
        nodes = [ClusterNode(host, port) for host, port in where.nodes]
        if pool_timeout is None:
            return RedisCluster(startup_nodes=nodes, max_connections=max_connections, **settings)
        cluster = WaitingRedisCluster(
            startup_nodes=nodes, max_connections=max_connections, **settings
        )
        cluster.pool_timeout = pool_timeout
        return cluster
    sentinel_options = {
        key: settings[key]
        for key in ("socket_connect_timeout", "socket_timeout")
        if key in settings
    }
    sentinel = _SENTINEL(list(where.nodes), sentinel_kwargs=sentinel_options, **settings)
    blocking: dict[str, Any] = {}
    if pool_timeout is not None:
        blocking = {"connection_pool_class": BlockingSentinelPool, "timeout": pool_timeout}
    master: Redis = sentinel.master_for(
        where.service or "mymaster",
        redis_class=Redis,
        max_connections=max_connections,
        **blocking,
    )
    return master


def is_cluster(client: RedisClient) -> bool:
    """Whether ``client`` talks to a Redis Cluster (one slot per command and script)."""
    return isinstance(client, RedisCluster)


async def close_client(client: RedisClient) -> None:
    """Close ``client`` and its connections."""
    if isinstance(client, RedisCluster):
        await client.aclose()
        return
    pool = client.connection_pool
    await client.aclose(close_connection_pool=True)
    if isinstance(pool, SentinelConnectionPool):
        # The Sentinel manager's own clients (one per Sentinel) outlive the master's pool.
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()
