"""Parsing and redaction of broker and result URLs.

Passwords never leave this module in clear: :func:`redact` is what reprs, errors
and logs show.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from taskiq_kit.exceptions import InvalidURLError

BROKER_SCHEMES = ("amqp", "amqps", "redis", "rediss", "memory")
RESULT_SCHEMES = ("redis", "rediss", "postgresql", "postgres", "memory")


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Args:
        url: a URL, possibly with credentials.

    Returns:
        The same URL, safe to log.

    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if _safe_port(parts) is not None else ""
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _safe_port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


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
        InvalidURLError: when ``url`` is not a string, is malformed, or has a scheme not in
            ``accepted``. The message never contains the password.

    """
    names = ", ".join(f"{s}://" for s in accepted)
    if not isinstance(url, str) or not url.strip():
        got = url if isinstance(url, str) else f"<{type(url).__name__}>"
        raise InvalidURLError(url=got, reason="expected a non-empty URL string", accepted=names)
    shown = redact(url)
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidURLError(url=shown, reason=f"malformed URL ({exc})", accepted=names) from None
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise InvalidURLError(url=shown, reason="the URL has no scheme", accepted=names)
    if scheme not in accepted:
        raise InvalidURLError(url=shown, reason=f"unsupported scheme {scheme!r}", accepted=names)
    if scheme != "memory" and not parts.hostname:
        raise InvalidURLError(url=shown, reason="the URL has no host", accepted=names)
    return ParsedURL(scheme=scheme, url=url.strip())
