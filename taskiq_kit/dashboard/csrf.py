"""Cross-site request checks of the dashboard's POST actions.

Two checks, both required:

* the request comes from the dashboard's own origin: ``Sec-Fetch-Site`` (sent by every current
  browser) must be ``same-origin``; where it is missing, an ``Origin`` header must name the
  host the request was sent to;
* it carries the session's token (the ``csrf`` form field or the ``X-CSRF-Token`` header),
  equal to the token cookie the dashboard set on the first page seen (a double-submit token:
  another site can neither read the cookie nor the page that holds it).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

#: The cookie holding the session's token.
COOKIE = "taskiq_kit_csrf"
#: The header scripts send the token in.
HEADER = "x-csrf-token"
#: The form field pages send the token in.
FIELD = "csrf"


class CrossSiteRequestError(Exception):
    """A POST the dashboard refuses: its reason is shown in the 403 answer."""


def session_token(request: Request) -> tuple[str, bool]:
    """The token of this browser session, and whether it is new (then set it with :func:`remember`)."""
    token = request.cookies.get(COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token, False
    return secrets.token_urlsafe(32), True


def remember(response: Response, token: str, path: str) -> None:
    """Set the token cookie for the dashboard's pages (``path``), for the browser session."""
    response.set_cookie(COOKIE, token, path=path or "/", httponly=True, samesite="strict")


def _same_origin(request: Request) -> None:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site != "same-origin":
            raise CrossSiteRequestError(f"the request came from another site ({fetch_site})")
        return
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser, or one too old to tell: the token alone decides
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc != host:
        raise CrossSiteRequestError(f"the request came from another origin ({origin})")


def check(request: Request, sent: str | None) -> None:
    """Refuse ``request`` unless it comes from the dashboard's origin with the session's token.

    Raises:
        CrossSiteRequestError: with the reason.

    """
    _same_origin(request)
    expected = request.cookies.get(COOKIE)
    if not expected:
        raise CrossSiteRequestError("no session token cookie: reload the page")
    sent = sent or request.headers.get(HEADER)
    if not sent or not secrets.compare_digest(sent.encode(), expected.encode()):
        raise CrossSiteRequestError("missing or wrong session token: reload the page")
