"""Back-office sessions: an API key signed in once becomes a signed, HTTP-only, SameSite
cookie; every form carries a CSRF token derived from that cookie.

The cookie holds the key's public id, when the session began and an HMAC over both and
the key's stored hash, keyed by a secret derived from OMS_WEBHOOK_SECRET (which production
mode requires to be strong). Forging one takes that secret and the key's hash, which never
leaves the store; the key itself is never in the cookie. Every page asks the store for the
key again, so a revoked or expired key's session stops on the next click.

CSRF: a form's token is an HMAC of the session cookie, so only a page this server rendered
for this session has it; the sign-in form (no session yet) uses a random cookie that the
form must repeat (double submit)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from api.context import SETTINGS
from workers.settings import Settings

SESSION_COOKIE = "oms_session"
LOGIN_COOKIE = "oms_signin"
FLASH_COOKIE = "oms_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# a session lasts a working day; the key's own revocation or expiry ends it sooner
SESSION_SECONDS = 12 * 3600


def _secret(settings: Settings) -> bytes:
    return hmac.new(
        settings.webhook_secret.encode(), b"oms back office sessions", "sha256"
    ).digest()


def _mac(settings: Settings, *parts: str) -> str:
    message = "\n".join(parts).encode()
    return hmac.new(_secret(settings), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SessionCookie:
    key_id: str
    issued: int
    mac: str
    raw: str


def issue(settings: Settings, key_id: str, key_hash: str, now: float | None = None) -> str:
    issued = str(int(now if now is not None else time.time()))
    return f"{key_id}.{issued}.{_mac(settings, 'session', key_id, issued, key_hash)}"


def parse(raw: str | None) -> SessionCookie | None:
    if not raw or len(raw) > 200:
        return None
    parts = raw.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return SessionCookie(parts[0], int(parts[1]), parts[2], raw)


def valid(
    settings: Settings, cookie: SessionCookie, key_hash: str, now: float | None = None
) -> bool:
    expected = _mac(settings, "session", cookie.key_id, str(cookie.issued), key_hash)
    if not hmac.compare_digest(expected, cookie.mac):
        return False
    age = (now if now is not None else time.time()) - cookie.issued
    return 0 <= age < SESSION_SECONDS


def csrf_token(settings: Settings, session_raw: str) -> str:
    return _mac(settings, "csrf", session_raw)[:40]


def csrf_ok(settings: Settings, session_raw: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(settings, session_raw), given or "")


def csrf_ok_plain(expected: str, given: str) -> bool:
    """The sign-in form's double submit: the form repeats the cookie's random token."""
    return bool(expected) and hmac.compare_digest(expected, given)


def _secure(request: web.Request) -> bool:
    # production sits behind TLS; a browser accepts Secure cookies on http://localhost too
    return request.app[SETTINGS].production or request.secure


def set_cookie(
    request: web.Request,
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        path="/ui",
        httponly=True,
        samesite="Lax",
        secure=_secure(request),
        max_age=max_age,
    )


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path="/ui")


def login_token(request: web.Request) -> str:
    """The sign-in form's double-submit token: the browser's, or a new one."""
    token = request.cookies.get(LOGIN_COOKIE, "")
    if len(token) == 32 and all(c in "0123456789abcdef" for c in token):
        return token
    return secrets.token_hex(16)
