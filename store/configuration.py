"""Configuration: locations, sales channels and API keys."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from store.database import Database
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
)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who calls the API: a role and an identity (channel, approver, location id)."""

    name: str
    role: str
    identity: str


class ConfigRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # locations are passed as plain dicts so the store stays free of workflow types
    async def upsert_locations(self, locations: list[dict[str, Any]]) -> None:
        async with self.db.transaction() as session:
            for loc in locations:
                values = {k: loc[k] for k in LOCATION_FIELDS if k in loc}
                stmt = self.db.insert(Location).values(location_id=loc["location_id"], **values)
                stmt = stmt.on_conflict_do_update(index_elements=["location_id"], set_=values)
                await session.execute(stmt)

    async def locations(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        # plain rows, not ORM entities: routing and availability read every location
        table = Location.__table__
        async with self.db.sessions() as session:
            query = select(table).order_by(table.c.location_id)
            if ids is not None:
                query = query.where(table.c.location_id.in_(ids))
            return [dict(row) for row in (await session.execute(query)).mappings()]

    async def upsert_channels(self, channels: list[dict[str, Any]]) -> None:
        async with self.db.transaction() as session:
            for channel in channels:
                stmt = self.db.insert(SalesChannel).values(
                    channel_id=channel["channel_id"], config=channel
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=["channel_id"], set_={"config": channel}
                )
                await session.execute(stmt)

    async def channel(self, channel_id: str) -> dict[str, Any] | None:
        async with self.db.sessions() as session:
            row = await session.get(SalesChannel, channel_id)
            return dict(row.config) if row else None

    async def channels(self) -> list[dict[str, Any]]:
        async with self.db.sessions() as session:
            rows = await session.execute(select(SalesChannel).order_by(SalesChannel.channel_id))
            return [dict(r.config) for r in rows.scalars()]

    async def upsert_api_key(self, key: str, *, name: str, role: str, identity: str) -> None:
        async with self.db.transaction() as session:
            values = {"name": name, "role": role, "identity": identity}
            stmt = self.db.insert(ApiKey).values(key_hash=hash_key(key), **values)
            stmt = stmt.on_conflict_do_update(index_elements=["key_hash"], set_=values)
            await session.execute(stmt)

    async def principal(self, key: str) -> Principal | None:
        async with self.db.sessions() as session:
            row = await session.get(ApiKey, hash_key(key))
            return Principal(row.name, row.role, row.identity) if row else None
