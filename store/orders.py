"""Order projection, audit trail, approvals and documents.

The workflow owns an order's truth; these rows are its projection for lists,
reporting and lookups (which workflow handles shipment X), written idempotently so
a retried activity never duplicates anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from store.database import Database, utcnow
from store.tables import Approval, Document, Order, OrderEvent, OrderLine, Return


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    sales_channel: str
    customer_id: str
    status: str
    total: Decimal
    currency: str
    request_hash: str
    workflow_id: str
    created_at: datetime
    updated_at: datetime
    # the id the channel gave the order (order_id is `{channel_order_id}@{channel}`, or
    # the same as this for an order from before ids were scoped by channel)
    channel_order_id: str


@dataclass(frozen=True)
class LineProjection:
    line_id: str
    status: str
    location_id: str | None
    planned_ship_date: date | None


@dataclass(frozen=True)
class StoredLine:
    line_id: str
    sku: str
    quantity: int
    unit_price: Decimal
    status: str
    location_id: str | None
    planned_ship_date: date | None


@dataclass(frozen=True)
class StoredView:
    order: OrderRow
    view: str | None  # JSON of the order view without its events
    lines: list[StoredLine]
    events: list[tuple[int, datetime, str, str]]


class OrderRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        order_id: str,
        sales_channel: str,
        customer_id: str,
        total: Decimal,
        currency: str,
        request_hash: str,
        workflow_id: str,
        lines: list[tuple[str, str, int, Decimal]],
        channel_order_id: str | None = None,
    ) -> tuple[bool, OrderRow]:
        """Insert the order unless it exists. Returns (created, row)."""
        now = utcnow()
        stmt = (
            self.db.insert(Order)
            .values(
                order_id=order_id,
                channel_order_id=channel_order_id or order_id,
                sales_channel=sales_channel,
                customer_id=customer_id,
                status="CREATED",
                total=total,
                currency=currency,
                request_hash=request_hash,
                workflow_id=workflow_id,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["order_id"])
        )

        def write(session: Session) -> tuple[bool, OrderRow]:
            # one go in the writer thread on SQLite (Database.write): the lock a POST
            # takes is held for these statements alone
            created = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
            if created:
                session.add_all(
                    OrderLine(
                        order_id=order_id,
                        line_id=line_id,
                        sku=sku,
                        quantity=qty,
                        unit_price=price,
                        status="CREATED",
                    )
                    for line_id, sku, qty, price in lines
                )
            row = session.get(Order, order_id)
            assert row is not None
            return created, _order(row)

        return await self.db.write(write)

    async def get(self, order_id: str) -> OrderRow | None:
        async with self.db.sessions() as session:
            row = await session.get(Order, order_id)
            return _order(row) if row else None

    async def find(self, reference: str, sales_channel: str | None = None) -> list[OrderRow]:
        """The orders a caller may mean by `reference`: an OMS order id, or the id a
        channel gave its order (within `sales_channel` when given, else in any channel).
        At most one within a channel; several across channels (the caller then has to
        name the channel)."""
        query = select(Order).where(
            or_(Order.order_id == reference, Order.channel_order_id == reference)
        )
        if sales_channel is not None:
            query = query.where(Order.sales_channel == sales_channel)
        query = query.order_by(Order.order_id).limit(50)
        return await self.db.read(lambda session: [_order(r) for r in session.scalars(query)])

    async def search(
        self,
        *,
        status: str | None = None,
        sales_channel: str | None = None,
        customer_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[OrderRow], int]:
        query = select(Order)
        if status:
            query = query.where(Order.status == status)
        if sales_channel:
            query = query.where(Order.sales_channel == sales_channel)
        if customer_id:
            query = query.where(Order.customer_id == customer_id)
        async with self.db.sessions() as session:
            total = (
                await session.execute(select(func.count()).select_from(query.subquery()))
            ).scalar_one()
            rows = await session.execute(
                query.order_by(Order.created_at.desc(), Order.order_id).limit(limit).offset(offset)
            )
            return [_order(r) for r in rows.scalars()], int(total)

    async def lines(self, order_id: str) -> list[LineProjection]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.line_id)
            )
            return [
                LineProjection(r.line_id, r.status, r.location_id, r.planned_ship_date)
                for r in rows.scalars()
            ]

    async def project(
        self,
        *,
        order_id: str,
        status: str,
        updated_at: datetime,
        lines: list[LineProjection],
        events: list[tuple[int, datetime, str, str]],
        approvals: list[dict[str, Any]] | None = None,
        view: str | None = None,
        view_seq: int = 0,
    ) -> None:
        """Write the workflow's current status, line statuses, new events, approvals and
        whole view (JSON without events), in one transaction.

        With a view, `view_seq` (the last workflow event the view includes) orders the
        writes: a projection older than the stored view (a late or retried attempt) leaves
        status, lines, approvals and view alone; its events are still recorded (they are
        keyed by their sequence number, so a repeat adds nothing)."""

        def write(session: Session) -> None:
            if view is None:
                current = True
                session.execute(
                    update(Order)
                    .where(Order.order_id == order_id)
                    .values(status=status, updated_at=updated_at)
                )
            else:
                written = session.execute(
                    update(Order)
                    .where(
                        Order.order_id == order_id,
                        or_(Order.view_seq.is_(None), Order.view_seq <= view_seq),
                    )
                    .values(status=status, updated_at=updated_at, view=view, view_seq=view_seq)
                )
                current = written.rowcount == 1  # type: ignore[attr-defined]
            for line in lines if current else []:
                session.execute(
                    update(OrderLine)
                    .where(OrderLine.order_id == order_id, OrderLine.line_id == line.line_id)
                    .values(
                        status=line.status,
                        location_id=line.location_id,
                        planned_ship_date=line.planned_ship_date,
                    )
                )
            if events:
                session.execute(
                    self.db.insert(OrderEvent)
                    .values(
                        [
                            {
                                "order_id": order_id,
                                "seq": seq,
                                "at": at,
                                "type": kind,
                                "detail": detail,
                            }
                            for seq, at, kind, detail in events
                        ]
                    )
                    .on_conflict_do_nothing(index_elements=["order_id", "seq"])
                )
            for approval in (approvals or []) if current else []:
                values = {
                    k: approval[k]
                    for k in ("rank", "approvers", "status", "decided_by", "comment", "decided_at")
                }
                stmt = (
                    self.db.insert(Approval)
                    .values(order_id=order_id, reason=approval["reason"], **values)
                    .on_conflict_do_update(index_elements=["order_id", "reason"], set_=values)
                )
                session.execute(stmt)

        await self.db.write(write)

    async def events(self, order_id: str) -> list[tuple[int, datetime, str, str]]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.seq)
            )
            return [(r.seq, r.at, r.type, r.detail) for r in rows.scalars()]

    async def read_view(self, order_id: str) -> StoredView | None:
        """Everything GET /v1/orders/{id} answers from, read in one transaction: the
        projected view (None before the first projection), the line rows and the whole
        audit trail (the workflow's events and those other components wrote), in time
        order. None when there is no such order."""
        async with self.db.sessions() as session, session.begin():
            found = (
                await session.execute(select(Order, Order.view).where(Order.order_id == order_id))
            ).one_or_none()
            if found is None:
                return None
            row, view = found
            lines = await session.execute(
                select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.line_id)
            )
            events = await session.execute(
                select(OrderEvent)
                .where(OrderEvent.order_id == order_id)
                .order_by(OrderEvent.at, OrderEvent.seq)
            )
            return StoredView(
                order=_order(row),
                view=view,
                lines=[
                    StoredLine(
                        r.line_id,
                        r.sku,
                        r.quantity,
                        Decimal(r.unit_price),
                        r.status,
                        r.location_id,
                        r.planned_ship_date,
                    )
                    for r in lines.scalars()
                ],
                events=[(r.seq, r.at, r.type, r.detail) for r in events.scalars()],
            )

    async def approvals(self, order_id: str) -> list[dict[str, Any]]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Approval)
                .where(Approval.order_id == order_id)
                .order_by(Approval.rank, Approval.reason)
            )
            return [
                {
                    "reason": r.reason,
                    "rank": r.rank,
                    "approvers": list(r.approvers),
                    "status": r.status,
                    "decided_by": r.decided_by,
                    "comment": r.comment,
                    "decided_at": r.decided_at.isoformat() if r.decided_at else None,
                }
                for r in rows.scalars()
            ]

    async def pending_approvals(self, approver: str | None) -> list[dict[str, Any]]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Approval)
                .where(Approval.status == "pending")
                .order_by(Approval.order_id, Approval.rank)
            )
            return [
                {
                    "order_id": r.order_id,
                    "reason": r.reason,
                    "rank": r.rank,
                    "approvers": list(r.approvers),
                    "status": r.status,
                }
                for r in rows.scalars()
                if approver is None or approver in r.approvers
            ]

    async def is_approver(self, order_id: str, approver: str) -> bool:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Approval.approvers).where(Approval.order_id == order_id)
            )
            return any(approver in approvers for approvers in rows.scalars())

    async def save_document(
        self, *, document_id: str, order_id: str, location_id: str, kind: str, content: bytes
    ) -> None:
        def write(session: Session) -> None:
            session.execute(
                self.db.insert(Document)
                .values(
                    document_id=document_id,
                    order_id=order_id,
                    location_id=location_id,
                    kind=kind,
                    content=content,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["document_id"])
            )

        await self.db.write(write)

    async def document(self, document_id: str) -> tuple[str, str, bytes] | None:
        """(order_id, location_id, content) of one document."""
        async with self.db.sessions() as session:
            row = await session.get(Document, document_id)
            return (row.order_id, row.location_id, row.content) if row else None

    async def save_return(
        self,
        *,
        return_id: str,
        order_id: str,
        type: str,
        lines: list[dict[str, Any]],
        status: str,
        reason: str,
    ) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                self.db.insert(Return)
                .values(
                    return_id=return_id,
                    order_id=order_id,
                    type=type,
                    lines=lines,
                    status=status,
                    reason=reason,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["return_id"])
            )


def _order(row: Order) -> OrderRow:
    return OrderRow(
        row.order_id,
        row.sales_channel,
        row.customer_id,
        row.status,
        Decimal(row.total),
        row.currency,
        row.request_hash,
        row.workflow_id,
        row.created_at,
        row.updated_at,
        row.channel_order_id or row.order_id,
    )
