"""Idempotency keys for commands: a client that retries a command (a lost answer, a
timeout) sends the same `Idempotency-Key` header, and the order's workflow applies it once.

The key becomes the Temporal update id, and Temporal answers a repeated update id with the
outcome of the first, so the retry gets the original answer instead of a second effect or
a 409. Without the header every request is its own command (the workflow still refuses
what no longer applies, e.g. a pick already reported): it gets a fresh update id, so a
command whose outcome is not known in time can still be looked up (api/commands.py)."""

from __future__ import annotations

import hashlib
import re
import uuid

from aiohttp import web

from api.auth import PRINCIPAL
from api.errors import ApiError
from store import Principal

# "@" included: clients build keys from the OMS's ids (an order id names its channel)
KEY = re.compile(r"^[A-Za-z0-9._:@-]{1,256}$")


def caller_tag(principal: Principal) -> str:
    """A short stable tag of the caller inside update ids (who sent a command)."""
    return hashlib.sha256(f"{principal.role}:{principal.identity}".encode()).hexdigest()[:16]


def update_owner(update: str) -> str | None:
    """The caller tag inside an update id made here, or None."""
    parts = update.split(":", 2)
    return parts[1] if len(parts) == 3 else None


def update_id(request: web.Request, command: str) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not KEY.match(key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key is 1 to 256 characters of letters, digits and . _ : @ -",
        )
    # scoped to the caller and the command, so one caller's key never answers another's
    return f"{command}:{caller_tag(request[PRINCIPAL])}:{key}"


def command_update_id(request: web.Request, command: str) -> str:
    """The update id for a command: from the Idempotency-Key, or a fresh one."""
    given = update_id(request, command)
    if given is not None:
        return given
    return f"{command}:{caller_tag(request[PRINCIPAL])}:auto-{uuid.uuid4().hex}"
