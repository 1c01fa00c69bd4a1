"""Configuration: locations, sales channels and API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from store.database import Database, new_key_id, utcnow
from store.receivers import (
    ReceiverSecrets,
    approval_receiver,
    callback_receiver,
    location_receiver,
)
from store.tables import ApiKey, Location, SalesChannel

LOCATION_FIELDS = (
    "name",
    "type",
    "lat",
    "lon",
    "time_zone",
    "cutoff_time",
    "lead_time_days",
    "daily_capacity",
    "priority",
    "enabled",
    "webhook_url",
    "cost_per_shipment",
    "channels",
    "delivery_types",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "country",
    "document_kinds",
)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who calls the API: a role and an identity (channel, approver, location id)."""

    name: str
    role: str
    identity: str
    key_id: str | None = None  # which key it called with


class ConfigRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.secrets = ReceiverSecrets(db)

    # locations are passed as plain dicts so the store stays free of workflow types
    async def upsert_locations(self, locations: list[dict[str, Any]]) -> dict[str, str]:
        """Returns the webhook secrets made for locations whose webhook URL was set for
        the first time (location id -> secret), in the same transaction."""
        async with self.db.transaction() as session:
            for loc in locations:
                values = {k: loc[k] for k in LOCATION_FIELDS if k in loc}
                stmt = self.db.insert(Location).values(location_id=loc["location_id"], **values)
                stmt = stmt.on_conflict_do_update(index_elements=["location_id"], set_=values)
                await session.execute(stmt)
            hooked = {
                location_receiver(loc["location_id"]): loc["location_id"]
                for loc in locations
                if loc.get("webhook_url")
            }
            made = await self.secrets.ensure(session, list(hooked))
            return {hooked[receiver]: secret for receiver, secret in made.items()}

    async def locations(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        # plain rows, not ORM entities: routing and availability read every location
        table = Location.__table__
        async with self.db.sessions() as session:
            query = select(table).order_by(table.c.location_id)
            if ids is not None:
                query = query.where(table.c.location_id.in_(ids))
            return [dict(row) for row in (await session.execute(query)).mappings()]

    async def upsert_channels(
        self, channels: list[dict[str, Any]]
    ) -> list[tuple[str, str | None, str]]:
        """Returns the secrets made for receivers whose URL was set for the first time:
        (channel id, None for its callback or the approval reason, secret)."""
        async with self.db.transaction() as session:
            for channel in channels:
                stmt = self.db.insert(SalesChannel).values(
                    channel_id=channel["channel_id"], config=channel
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=["channel_id"], set_={"config": channel}
                )
                await session.execute(stmt)
            receivers: dict[str, tuple[str, str | None]] = {}
            for channel in channels:
                channel_id = channel["channel_id"]
                if channel.get("callback_url"):
                    receivers[callback_receiver(channel_id)] = (channel_id, None)
                for reason in channel.get("approval_reasons") or []:
                    if reason.get("webhook_url"):
                        receiver = approval_receiver(channel_id, reason["reason"])
                        receivers[receiver] = (channel_id, reason["reason"])
            made = await self.secrets.ensure(session, list(receivers))
            return [(*receivers[receiver], secret) for receiver, secret in made.items()]

    async def channel(self, channel_id: str) -> dict[str, Any] | None:
        def read(session: Session) -> dict[str, Any] | None:
            row = session.get(SalesChannel, channel_id)
            return dict(row.config) if row else None

        # every POST /v1/orders asks: one trip to a reader thread (Database.read)
        return await self.db.read(read)

    async def channels(self) -> list[dict[str, Any]]:
        async with self.db.sessions() as session:
            rows = await session.execute(select(SalesChannel).order_by(SalesChannel.channel_id))
            return [dict(r.config) for r in rows.scalars()]

    async def upsert_api_key(
        self, key: str, *, name: str, role: str, identity: str, created_by: str | None = None
    ) -> dict[str, Any]:
        """Create the key, or change the name, role and identity of an existing one. A
        revoked key stays revoked (its row is answered unchanged: see `revoked_at`)."""
        now = utcnow()
        values = {"name": name, "role": role, "identity": identity}
        async with self.db.transaction() as session:
            stmt = self.db.insert(ApiKey).values(
                key_hash=hash_key(key),
                key_id=new_key_id(),
                created_at=now,
                created_by=created_by,
                last4=shown_tail(key),
                **values,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["key_hash"], set_=values, where=ApiKey.revoked_at.is_(None)
            )
            await session.execute(stmt)
            row = await session.get(ApiKey, hash_key(key), populate_existing=True)
            assert row is not None
            return key_entry(row, now)

    async def create_api_key(
        self, *, name: str, role: str, identity: str, created_by: str | None
    ) -> tuple[str, dict[str, Any]]:
        """A new random key (urlsafe, from 32 random bytes): the key, once, and its entry."""
        key = secrets.token_urlsafe(32)
        entry = await self.upsert_api_key(
            key, name=name, role=role, identity=identity, created_by=created_by
        )
        return key, entry

    async def api_keys(self) -> list[dict[str, Any]]:
        """Every key's entry (never the key or its hash), oldest first."""
        now = utcnow()
        async with self.db.sessions() as session:
            rows = await session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id))
            return [key_entry(row, now) for row in rows.scalars()]

    async def api_key(self, key_id: str) -> dict[str, Any] | None:
        async with self.db.sessions() as session:
            row = await self._by_id(session, key_id)
            return key_entry(row, utcnow()) if row else None

    @staticmethod
    async def _by_id(session: AsyncSession, key_id: str, *, lock: bool = False) -> ApiKey | None:
        query = select(ApiKey).where(ApiKey.key_id == key_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return (await session.execute(query)).scalar_one_or_none()

    async def active_admin_keys(self) -> int:
        return len(
            [
                entry
                for entry in await self.api_keys()
                if entry["role"] == "admin" and entry["active"]
            ]
        )

    async def active_keys_among(self, keys: list[str]) -> list[str]:
        """Those of `keys` that would authenticate (the demo keys, in production)."""
        return [key for key in keys if await self.principal(key) is not None]

    async def revoke_api_key(self, key_id: str) -> dict[str, Any]:
        """Revoke a key at once (a repeated revoke answers the first one's entry). Raises
        KeyError for an unknown id and LastAdminKey rather than revoke the last admin key
        that works."""
        now = utcnow()
        async with self.db.transaction() as session:
            row = await self._by_id(session, key_id)
            if row is None:
                raise KeyError(key_id)
            if row.role != "admin":
                await self._by_id(session, key_id, lock=True)
            elif _active(row, now):
                # every admin row locked in one order, so two admins revoking each other's
                # keys at once take turns instead of both succeeding (or deadlocking)
                admins = await session.execute(
                    select(ApiKey)
                    .where(ApiKey.role == "admin")
                    .order_by(ApiKey.key_hash)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
                others = [a for a in admins.scalars() if a.key_id != key_id and _active(a, now)]
                if not others and _active(row, now):
                    raise LastAdminKey(key_id)
            if row.revoked_at is None:
                row.revoked_at = now
            return key_entry(row, now)

    async def rotate_api_key(
        self, key_id: str, *, overlap: timedelta, created_by: str | None
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """A new key for the same name, role and identity; the old one works until now +
        `overlap`. Returns the new key (once), its entry and the old key's entry. Raises
        KeyError (unknown id) or KeyNotRotatable (revoked, expired or rotated before)."""
        now = utcnow()
        key = secrets.token_urlsafe(32)
        async with self.db.transaction() as session:
            old = await self._by_id(session, key_id, lock=True)
            if old is None:
                raise KeyError(key_id)
            if old.revoked_at is not None:
                raise KeyNotRotatable(key_id, "revoked")
            if old.replaced_by is not None:
                raise KeyNotRotatable(key_id, f"already rotated (replaced by {old.replaced_by})")
            if not _active(old, now):
                raise KeyNotRotatable(key_id, "expired")
            new = ApiKey(
                key_hash=hash_key(key),
                key_id=new_key_id(),
                name=old.name,
                role=old.role,
                identity=old.identity,
                created_at=now,
                created_by=created_by,
                last4=shown_tail(key),
            )
            session.add(new)
            old.expires_at = now + overlap
            old.replaced_by = new.key_id
            await session.flush()
            return key, key_entry(new, now), key_entry(old, now)

    async def principal(self, key: str) -> Principal | None:
        """The caller of a key that works now (not revoked, not past a rotation's overlap);
        read from the store on every request, so a revocation counts at once."""
        hashed = hash_key(key)

        def read(session: Session) -> Principal | None:
            row = session.get(ApiKey, hashed)
            if row is None or not _active(row, utcnow()):
                return None
            return Principal(row.name, row.role, row.identity, row.key_id)

        return await self.db.read(read)


class LastAdminKey(Exception):
    """Revoking this key would leave no admin key that works."""


class KeyNotRotatable(Exception):
    def __init__(self, key_id: str, why: str) -> None:
        super().__init__(f"key {key_id} is {why}")
        self.key_id = key_id
        self.why = why


def _active(row: ApiKey, now: datetime) -> bool:
    return key_works(row.revoked_at, row.expires_at, now)


def key_works(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    """Not revoked, and not past the overlap of a rotation (store/direct.py asks too)."""
    return revoked_at is None and (expires_at is None or expires_at > now)


def shown_tail(key: str) -> str | None:
    """The last 4 characters of a long key (enough to tell keys apart, too few to guess
    one); nothing of a short one."""
    return key[-4:] if len(key) >= 32 else None


def key_entry(row: ApiKey, now: datetime) -> dict[str, Any]:
    """An API key as the API lists it: never the key or its hash."""

    def stamp(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": row.key_id,
        "name": row.name,
        "role": row.role,
        "identity": row.identity,
        "created_at": stamp(row.created_at),
        "created_by": row.created_by,
        "last4": row.last4,
        "revoked_at": stamp(row.revoked_at),
        "expires_at": stamp(row.expires_at),
        "replaced_by": row.replaced_by,
        "active": _active(row, now),
    }
