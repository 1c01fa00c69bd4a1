"""Signed messages from the OMS, for those who receive them (and for the OMS itself).

Every message the OMS sends (work orders, work-order cancellations, approval requests
and withdrawals, order responses) carries one header

    X-OMS-Signature: t=1767225600,v1=5f2c...e1

where `t` is when it was signed (unix seconds) and each `v1` the hex HMAC-SHA256 of
`"<t>.<raw body>"` under a secret of the receiver. While a receiver's secret is being
rotated the header has two `v1` values (new and old secret); one match is enough.

A receiver checks a message with `verify(secret, header, raw_body)`: it is True only
if a signature matches (compared in constant time) and `t` is at most five minutes
old (and at most five minutes ahead: clocks differ a little, not more). Reject the
rest: a message replayed later fails the time check, one changed on the way fails the
HMAC. Deduplicate on the `Idempotency-Key` header (a retry is signed again, with a new
`t`, but keeps its key). This module needs nothing but the standard library: copy it
if you like.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "X-OMS-Signature"
TOLERANCE_SECONDS = 300  # receivers reject messages signed longer ago (or ahead) than this
SCHEME = "v1"
_MAX_TIMESTAMP_DIGITS = 12  # up to the year 33658: anything longer is not a timestamp


def _secrets(secrets: str | Iterable[str]) -> list[str]:
    found = [secrets] if isinstance(secrets, str) else list(secrets)
    return [s for s in found if s]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secrets: str | Iterable[str], body: bytes, *, timestamp: int | None = None) -> str:
    """The X-OMS-Signature value for `body`: `t=<timestamp>,v1=<hmac>` with one `v1` per
    secret (the current one first). `timestamp` defaults to now."""
    keys = _secrets(secrets)
    if not keys:
        raise ValueError("at least one non-empty secret is needed to sign")
    t = int(time.time()) if timestamp is None else int(timestamp)
    return ",".join([f"t={t}", *(f"{SCHEME}={signature(key, t, body)}" for key in keys)])


def parse(header: str) -> tuple[int, list[str]] | None:
    """The timestamp and the v1 signatures of a header value, or None if it is not one
    (no `t`, two `t`s, a `t` that is not a number). Unknown schemes are skipped."""
    timestamp: int | None = None
    seen_t = False
    found: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if seen_t or not value.isdigit() or not value.isascii():
                return None
            if len(value) > _MAX_TIMESTAMP_DIGITS:
                return None
            seen_t = True
            timestamp = int(value)
        elif name == SCHEME and value.isascii() and value:
            found.append(value.lower())
    if timestamp is None:
        return None
    return timestamp, found


def verify(
    secrets: str | Iterable[str],
    header: str | None,
    body: bytes | str,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True if `header` (the X-OMS-Signature value) signs `body` (the raw request body,
    exactly as received) under one of `secrets`, at a time no more than `tolerance`
    seconds from `now` (default: the clock) in either direction."""
    if not header:
        return False
    parsed = parse(header)
    if parsed is None:
        return False
    timestamp, candidates = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    matched = False
    for secret in _secrets(secrets):
        expected = signature(secret, timestamp, raw)
        for candidate in candidates:
            # every pair is compared (no early exit), each in constant time
            matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    return matched
