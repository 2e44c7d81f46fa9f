"""Parsing and redaction of broker and result URLs.

Passwords never leave this module in clear: :func:`redact` is what reprs, errors and logs show,
and :func:`scrub` takes the password out of a driver's error text before the kit repeats it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from taskiq_kit.exceptions import InvalidURLError

#: Redis on one server, a Redis Cluster (any of its nodes listed), or a master found by Sentinels.
REDIS_SCHEMES = (
    "redis",
    "rediss",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)
BROKER_SCHEMES = ("amqp", "amqps", *REDIS_SCHEMES, "memory")
RESULT_SCHEMES = (*REDIS_SCHEMES, "postgresql", "postgres", "memory")

#: Query parameters holding secrets (``?password=`` works with redis-py and asyncpg).
_QUERY_SECRET = re.compile(r"([?&;][^=&;#]*(?:pass|secret|token)[^=&;#]*=)([^&;#]*)", re.IGNORECASE)
_ENCODE_HINT = (
    "percent-encode '/', '?', '#' and '@' in a user name or password "
    "(%2F, %3F, %23 and %40), e.g. with urllib.parse.quote(password, safe='')"
)


def _split_userinfo(url: str) -> tuple[str, str, str | None, str]:
    """``(scheme://, shown user part, password or None, rest after '@')``, conservatively.

    The userinfo ends at the *last* '@' of the whole text, not of the authority: a password
    holding '/', '?' or '#' makes parsers end the authority early and show the rest as a path,
    query or fragment. Masking up to the last '@' hides it whatever a parser made of it.
    A userinfo without ':' is masked whole (some servers take a lone token as the password).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return f"{scheme}{sep}", "", None, rest
    user, colon, password = userinfo.partition(":")
    if not colon:
        return f"{scheme}{sep}", "", userinfo, hostpart
    return f"{scheme}{sep}", f"{user}:", password, hostpart


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Works on text alone, so even a malformed URL (no scheme, bad port, a password with
    unencoded '/', '?', '#' or '@') is safe to show. ``password=`` style query parameters are
    masked too.

    Args:
        url: a URL, possibly with credentials.

    Returns:
        The same URL, safe to log.

    """
    head, user, password, rest = _split_userinfo(url)
    if password is not None:
        rest = f"{user}***@{rest}"
    return head + _QUERY_SECRET.sub(r"\1***", rest)


def secrets_of(url: str) -> set[str]:
    """The secret parts of ``url`` as they may appear in other text (raw and percent-decoded)."""
    _, _, password, rest = _split_userinfo(url)
    found = {password} if password else set()
    found.update(match.group(2) for match in _QUERY_SECRET.finditer(rest) if match.group(2))
    return found | {unquote(secret) for secret in found}


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message) with every secret of ``url`` replaced by ``***``."""
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class ParsedURL:
    """A validated URL: its lower-case scheme and the original text (kept private)."""

    scheme: str
    url: str

    def __repr__(self) -> str:
        return f"ParsedURL(scheme={self.scheme!r}, url={redact(self.url)!r})"

    __str__ = __repr__


def parse_url(url: object, *, accepted: tuple[str, ...]) -> ParsedURL:
    """Validate ``url`` and return its scheme.

    Args:
        url: the URL given by the user.
        accepted: the schemes allowed here.

    Returns:
        The parsed URL.

    Raises:
        InvalidURLError: when ``url`` is not a string, is malformed, has a scheme not in
            ``accepted``, has an unencoded '@' after its host, or (Redis) a database that is
            not a number. The message never contains the password.

    """
    names = ", ".join(f"{s}://" for s in accepted)
    if not isinstance(url, str) or not url.strip():
        got = url if isinstance(url, str) else f"<{type(url).__name__}>"
        raise InvalidURLError(url=got, reason="expected a non-empty URL string", accepted=names)
    text = url.strip()
    shown = redact(text)
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise InvalidURLError(url=shown, reason="the URL has no scheme", accepted=names)
    if scheme not in accepted:
        raise InvalidURLError(url=shown, reason=f"unsupported scheme {scheme!r}", accepted=names)
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in rest[len(authority) :]:
        reason = f"an '@' after the host part: {_ENCODE_HINT}"
        raise InvalidURLError(url=shown, reason=reason, accepted=names)
    if scheme in MULTI_HOST_SCHEMES and "," in authority.rpartition("@")[2]:
        split_hosts(text)  # validates every host of the list
        _check_redis_path(scheme, rest[len(authority) :].split("?")[0], shown, names)
        return ParsedURL(scheme=scheme, url=text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        # The parser's own text may quote part of a mangled password: never repeat it.
        what = "the port is not a number from 0 to 65535" if "Port" in str(exc) else "bad host"
        reason = f"malformed URL ({what}); {_ENCODE_HINT}"
        raise InvalidURLError(url=shown, reason=reason, accepted=names) from None
    if scheme != "memory" and not parts.hostname:
        raise InvalidURLError(url=shown, reason="the URL has no host", accepted=names)
    if scheme in ("redis", "rediss") and not re.fullmatch(r"/?(\d+/?)?", unquote(parts.path)):
        reason = f"the database must be a number, as in redis://host:6379/0, not {parts.path!r}"
        raise InvalidURLError(url=shown, reason=reason, accepted=names)
    _check_redis_path(scheme, parts.path, shown, names)
    return ParsedURL(scheme=scheme, url=text)


#: Schemes whose URL may list several hosts: ``amqp://user:pass@h1:5672,h2:5673/vhost``.
MULTI_HOST_SCHEMES = ("amqp", "amqps", *REDIS_SCHEMES[2:])


def _check_redis_path(scheme: str, path: str, shown: str, names: str) -> None:
    """The path of a Redis Cluster URL (none, or database 0) and of a Sentinel URL (service/db)."""
    path = unquote(path)
    if scheme.endswith("+cluster") and not re.fullmatch(r"/?(0/?)?", path):
        reason = f"a Redis Cluster has database 0 only: redis+cluster://h1:p1,h2:p2/, not {path!r}"
        raise InvalidURLError(url=shown, reason=reason, accepted=names)
    if scheme.endswith("+sentinel") and not re.fullmatch(r"/[^/]+(/\d+)?/?", path):
        reason = (
            "name the master's service (and optionally the database) in the path, as in "
            f"redis+sentinel://s1:26379,s2:26379/mymaster/0, not {path!r}"
        )
        raise InvalidURLError(url=shown, reason=reason, accepted=names)


def split_hosts(url: str) -> tuple[str, ...]:
    """One URL per host of a comma-separated host list, in the given order.

    ``amqp://user:pass@h1:5672,h2,h3:5674/vhost?q`` gives ``amqp://user:pass@h1:5672/vhost?q``,
    ``amqp://user:pass@h2/vhost?q`` and ``amqp://user:pass@h3:5674/vhost?q``: every host shares
    the credentials, virtual host and query (the convention of libpq and MongoDB). A URL with one
    host gives itself.

    Args:
        url: an ``amqp://`` or ``amqps://`` URL.

    Returns:
        The single-host URLs.

    Raises:
        InvalidURLError: when a host of the list is empty or has a bad port; the message names
            the host (by position) and never contains the password.

    """
    text = url.strip()
    head, sep, rest = text.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    authority = re.split(r"[/?#]", hostpart, maxsplit=1)[0]
    tail = hostpart[len(authority) :]
    hosts = authority.split(",")
    if len(hosts) == 1:
        return (text,)
    accepted = ", ".join(f"{s}://" for s in MULTI_HOST_SCHEMES)
    urls = []
    for position, host in enumerate(hosts, 1):
        single = f"{head}{sep}{userinfo}{at}{host.strip()}{tail}"
        where = f"host {position} of {len(hosts)} ({host.strip()!r})"
        if not host.strip():
            reason = f"{where} is empty: list hosts as h1:5672,h2:5672 with no empty entry"
            raise InvalidURLError(url=redact(text), reason=reason, accepted=accepted)
        try:
            parts = urlsplit(single)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            reason = f"{where}: the port is not a number from 0 to 65535"
            raise InvalidURLError(url=redact(text), reason=reason, accepted=accepted) from None
        if not parts.hostname:
            reason = f"{where} has no host name"
            raise InvalidURLError(url=redact(text), reason=reason, accepted=accepted)
        urls.append(single)
    return tuple(urls)
