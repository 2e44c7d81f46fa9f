"""Parsing and redaction of broker and result URLs.

Passwords never leave this module in clear: :func:`redact` is what reprs, errors
and logs show.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from taskiq_kit.exceptions import InvalidURLError

BROKER_SCHEMES = ("amqp", "amqps", "redis", "rediss", "memory")
RESULT_SCHEMES = ("redis", "rediss", "postgresql", "postgres", "memory")


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Works on text alone, so even a malformed URL (no scheme, bad port) is safe to show.

    Args:
        url: a URL, possibly with credentials.

    Returns:
        The same URL, safe to log.

    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        userinfo, _, hostport = authority.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        if colon:
            authority = f"{user}:***@{hostport}"
    return f"{scheme}{sep}{authority}{slash}{path}"


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
