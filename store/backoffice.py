"""Reads the back office (api/ui) needs beyond the other repositories: the API key behind
a browser session, an approver's past decisions, and stock per SKU and location."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from store.configuration import Principal, _active
from store.database import Database, utcnow
from store.tables import ApiKey, Approval, Inventory, Order, OrderLine


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

    async def backordered_orders(self, limit: int) -> tuple[list[str], int]:
        """Unfinished orders with lines whose units wait for stock (BACKORDERED), the
        longest waiting first, and how many there are."""
        query = (
            select(Order.order_id, Order.updated_at)
            .join(OrderLine, OrderLine.order_id == Order.order_id)
            .where(OrderLine.status == "BACKORDERED", Order.status.not_in(FINAL_STATUSES))
            .distinct()
        )
        return await self._ids(query, limit)

    async def failing_orders(self, limit: int) -> tuple[list[str], int]:
        """Unfinished orders (not held or waiting in a queue of their own) with a stage
        that keeps failing and retrying: its reason is in the view's hold reasons."""
        query = select(Order.order_id, Order.updated_at).where(
            Order.status.not_in((*FINAL_STATUSES, *QUEUED_STATUSES)),
            Order.view.is_not(None),
            Order.view.contains(" failing after ", autoescape=True),
        )
        return await self._ids(query, limit)

    async def _ids(self, query: Any, limit: int) -> tuple[list[str], int]:
        async with self.db.sessions() as session:
            total = (
                await session.execute(select(func.count()).select_from(query.subquery()))
            ).scalar_one()
            rows = await session.execute(query.order_by(Order.updated_at).limit(limit))
            return [str(r[0]) for r in rows.all()], int(total)


FINAL_STATUSES = ("COMPLETED", "CANCELLED", "DECLINED")
QUEUED_STATUSES = ("ON_HOLD", "CHECK_ANNOUNCED", "NOT_ANNOUNCED")


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""
