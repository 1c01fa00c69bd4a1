"""Secrets of the receivers of outgoing messages: one per location webhook, channel
callback and approval reason webhook, made when its URL is first set, rotatable with an
overlap. A receiver without one (set up before there were secrets per receiver) is
signed for with the shared OMS_WEBHOOK_SECRET."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.database import Database, utcnow
from store.tables import ReceiverSecret

SECRET_PREFIX = "whsec_"


def location_receiver(location_id: str) -> str:
    return f"location:{location_id}"


def callback_receiver(channel_id: str) -> str:
    return f"channel:{channel_id}:callback"


def approval_receiver(channel_id: str, reason: str) -> str:
    return f"channel:{channel_id}:approval:{reason}"


def new_secret() -> str:
    """32 random bytes, urlsafe, with a prefix that says what it is."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def secret_status(row: ReceiverSecret | None, now: datetime) -> dict[str, Any]:
    """What the configuration API shows of a receiver's secret: never the secret."""
    if row is None:
        return {"secret_set": False, "created_at": None, "previous_valid_until": None}
    overlap = row.previous_until if row.previous_until and row.previous_until > now else None
    return {
        "secret_set": True,
        "created_at": _stamp(row.created_at),
        "previous_valid_until": _stamp(overlap),
    }


class ReceiverSecrets:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure(self, session: AsyncSession, receivers: list[str]) -> dict[str, str]:
        """Make a secret for each receiver that has none, inside the caller's
        transaction; returns the ones made (receiver -> secret), to be shown once."""
        made: dict[str, str] = {}
        now = utcnow()
        for receiver in dict.fromkeys(receivers):
            secret = new_secret()
            stmt = (
                self.db.insert(ReceiverSecret)
                .values(receiver=receiver, secret=secret, created_at=now)
                .on_conflict_do_nothing(index_elements=["receiver"])
            )
            result = await session.execute(stmt)
            if result.rowcount == 1:  # type: ignore[attr-defined]
                made[receiver] = secret
        return made

    async def status(self, receivers: list[str]) -> dict[str, dict[str, Any]]:
        """receiver -> secret_status() for each of `receivers`."""
        now = utcnow()
        found: dict[str, ReceiverSecret] = {}
        wanted = list(dict.fromkeys(receivers))
        async with self.db.sessions() as session:
            for start in range(0, len(wanted), 500):
                rows = await session.execute(
                    select(ReceiverSecret).where(
                        ReceiverSecret.receiver.in_(wanted[start : start + 500])
                    )
                )
                found.update({row.receiver: row for row in rows.scalars()})
        return {r: secret_status(found.get(r), now) for r in wanted}

    async def signing_secrets(self, receiver: str, fallback: str) -> list[str]:
        """The secrets a message to `receiver` is signed with now: its own (and the one
        before it during a rotation's overlap), or `fallback` if it has none."""
        async with self.db.sessions() as session:
            row = await session.get(ReceiverSecret, receiver)
        if row is None:
            return [fallback]
        keys = [row.secret]
        if row.previous_until is not None and row.previous_until > utcnow():
            keys.append(row.previous_secret or fallback)
        return [k for k in dict.fromkeys(keys) if k]

    async def rotate(self, receiver: str, overlap: timedelta) -> tuple[str, dict[str, Any]]:
        """A new secret for `receiver`; the one before (or the shared secret, for a
        receiver that had none) is still signed with for `overlap`. Returns the new
        secret (shown once) and its status."""
        now = utcnow()
        secret = new_secret()
        until = now + overlap if overlap > timedelta(0) else None
        async with self.db.transaction() as session:
            # a receiver without a secret gets its first one (the shared secret is the
            # previous); two rotations at once take turns on the row
            first = await session.execute(
                self.db.insert(ReceiverSecret)
                .values(
                    receiver=receiver,
                    secret=secret,
                    created_at=now,
                    previous_secret=None,
                    previous_until=until,
                )
                .on_conflict_do_nothing(index_elements=["receiver"])
            )
            row = await session.get(
                ReceiverSecret, receiver, with_for_update=True, populate_existing=True
            )
            assert row is not None
            if first.rowcount != 1:  # type: ignore[attr-defined]
                row.previous_secret = row.secret
                row.previous_until = until
                row.secret = secret
                row.created_at = now
                await session.flush()
            return secret, secret_status(row, now)
