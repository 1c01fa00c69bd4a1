"""Shipment tracking: the events carriers and locations report, once each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from store.database import Database, utcnow
from store.tables import ShipmentEvent


@dataclass(frozen=True)
class TrackingEvent:
    event_id: str
    status: str
    at: datetime
    place: str | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "status": self.status,
            "at": self.at.isoformat(),
            "place": self.place,
            "detail": self.detail,
        }


class TrackingRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self, shipment_key: str, order_id: str, events: list[TrackingEvent]
    ) -> list[TrackingEvent]:
        """Keep the events not recorded before (by event id); returns those."""
        now = utcnow()
        new: list[TrackingEvent] = []
        async with self.db.transaction() as session:
            for event in events:
                inserted = await session.execute(
                    self.db.insert(ShipmentEvent)
                    .values(
                        shipment_key=shipment_key,
                        event_id=event.event_id,
                        order_id=order_id,
                        status=event.status,
                        at=event.at,
                        place=event.place,
                        detail=event.detail,
                        received_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["shipment_key", "event_id"])
                )
                if inserted.rowcount == 1:  # type: ignore[attr-defined]
                    new.append(event)
        return new

    async def timeline(self, shipment_key: str) -> list[TrackingEvent]:
        """The shipment's events in the order they happened (ties: by event id)."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(ShipmentEvent)
                .where(ShipmentEvent.shipment_key == shipment_key)
                .order_by(ShipmentEvent.at, ShipmentEvent.event_id)
            )
            return [
                TrackingEvent(r.event_id, r.status, r.at, r.place, r.detail) for r in rows.scalars()
            ]
