"""Reads the back office (api/ui) needs beyond the other repositories: the API key behind
a browser session, an approver's past decisions, and stock per SKU and location."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from store.configuration import Principal, _active
from store.database import Database, utcnow
from store.tables import ApiKey, Approval, Inventory, Order


@dataclass(frozen=True)
class SessionKey:
    """The key a session was opened with, as it stands now."""

    principal: Principal
    key_hash: str  # binds the session's signature to this very key


class BackOfficeQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def session_key(self, key_id: str) -> SessionKey | None:
        """The key with this id if it works now (not revoked, not past its overlap): asked
        on every page, so a revoked key's session stops at once."""
        async with self.db.sessions() as session:
            row = (
                await session.execute(select(ApiKey).where(ApiKey.key_id == key_id).limit(1))
            ).scalar_one_or_none()
            if row is None or not _active(row, utcnow()):
                return None
            return SessionKey(Principal(row.name, row.role, row.identity, row.key_id), row.key_hash)

    async def decisions(self, decided_by: str | None, limit: int = 50) -> list[dict[str, Any]]:
        """Approvals decided (approved, declined, timed out), newest first; by this
        approver (themselves or someone acting for them) unless None."""
        query = (
            select(Approval, Order.customer_id, Order.total, Order.currency)
            .join(Order, Order.order_id == Approval.order_id)
            .where(Approval.decided_at.is_not(None))
        )
        if decided_by is not None:
            query = query.where(
                or_(
                    Approval.decided_by == decided_by,
                    Approval.decided_by.like(f"% for {_like(decided_by)}", escape="\\"),
                )
            )
        async with self.db.sessions() as session:
            rows = await session.execute(
                query.order_by(Approval.decided_at.desc(), Approval.order_id).limit(limit)
            )
            return [
                {
                    "order_id": a.order_id,
                    "reason": a.reason,
                    "rank": a.rank,
                    "status": a.status,
                    "decided_by": a.decided_by,
                    "comment": a.comment,
                    "decided_at": a.decided_at,
                    "customer_id": customer,
                    "total": total,
                    "currency": currency,
                }
                for a, customer, total, currency in rows.all()
            ]

    async def stock_page(
        self, *, sku_prefix: str | None, location_id: str | None, limit: int, offset: int
    ) -> list[tuple[str, str, int, int]]:
        """(sku, location, on hand, reserved) by SKU then location."""
        query = select(Inventory.sku, Inventory.location_id, Inventory.on_hand, Inventory.reserved)
        if sku_prefix:
            query = query.where(Inventory.sku.like(f"{_like(sku_prefix)}%", escape="\\"))
        if location_id:
            query = query.where(Inventory.location_id == location_id)
        async with self.db.sessions() as session:
            rows = await session.execute(
                query.order_by(Inventory.sku, Inventory.location_id).limit(limit).offset(offset)
            )
            return [(sku, loc, int(on_hand), int(reserved)) for sku, loc, on_hand, reserved in rows]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""
