"""Idempotency keys for commands: a client that retries a command (a lost answer, a
timeout) sends the same `Idempotency-Key` header, and the order's workflow applies it once.

The key becomes the Temporal update id, and Temporal answers a repeated update id with the
outcome of the first, so the retry gets the original answer instead of a second effect or
a 409. Without the header every request is its own command (the workflow still refuses
what no longer applies, e.g. a pick already reported)."""

from __future__ import annotations

import hashlib
import re

from aiohttp import web

from api.auth import PRINCIPAL
from api.errors import ApiError

KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def update_id(request: web.Request, command: str) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not KEY.match(key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key is 1 to 128 characters of letters, digits and . _ : -",
        )
    # scoped to the caller and the command, so one caller's key never answers another's
    principal = request[PRINCIPAL]
    caller = hashlib.sha256(f"{principal.role}:{principal.identity}".encode()).hexdigest()[:16]
    return f"{command}:{caller}:{key}"
