"""Order trends and performance over a period, computed in SQL from the store.

Orders count in the period they were created in. From the audit trail (order_events) one
grouped pass per order finds when it first shipped (status PARTIALLY_SHIPPED or SHIPPED),
when it was delivered, and whether any unit was ever backordered; percentiles are taken
in the database on PostgreSQL (percentile_cont) and from the fetched durations on SQLite
(the development store)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Float, and_, case, cast, func, or_, select, text
from sqlalchemy.sql import ColumnElement

from store.database import Database
from store.tables import Approval, Order, OrderEvent, Shipment

# a click-and-collect order sourced by a transfer is not SHIPPED to the customer: its
# units are on their way to her once they wait at the pickup store
SHIPPED_EVENTS = ("status_partially_shipped", "status_shipped", "status_ready_for_pickup")
DELIVERED_EVENTS = ("status_delivered",)
BACKORDER_EVENTS = ("shipment_picked", "backorder_waiting")
PERCENTILES = (0.5, 0.9)
# PostgreSQL's memory for the report's sorts and hashes (its default, 4MB, spills to disk)
REPORT_WORK_MEM = "64MB"


@dataclass
class Durations:
    """Seconds from one moment to another over the orders (or approvals) that have both."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "p50": self.p50, "p90": self.p90}


@dataclass
class Summary:
    start: date
    end: date  # exclusive
    sales_channel: str | None
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    per_day: list[dict[str, Any]] = field(default_factory=list)
    cancelled: int = 0
    backordered: int = 0
    approval_lead_time: Durations = field(default_factory=Durations)
    order_to_ship: Durations = field(default_factory=Durations)
    order_to_delivery: Durations = field(default_factory=Durations)
    backlog_by_location: dict[str, int] = field(default_factory=dict)

    def rate(self, part: int) -> float | None:
        return round(part / self.total, 4) if self.total else None


class ReportRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def _postgres(self) -> bool:
        return self.db.engine.dialect.name == "postgresql"

    def _day(self, column: Any) -> ColumnElement[Any]:
        if self._postgres:
            return cast(func.timezone("UTC", column), Date)
        return func.date(column)

    def _seconds(self, later: Any, earlier: Any) -> ColumnElement[Any]:
        if self._postgres:
            return func.extract("epoch", later - earlier)
        return cast((func.julianday(later) - func.julianday(earlier)) * 86400.0, Float)

    async def summary(
        self, start: datetime, end: datetime, sales_channel: str | None = None
    ) -> Summary:
        """The figures for orders created in [start, end), of one channel or all."""
        result = Summary(start.date(), end.date(), sales_channel)
        in_period = and_(Order.created_at >= start, Order.created_at < end)
        if sales_channel:
            in_period = and_(in_period, Order.sales_channel == sales_channel)
        async with self.db.sessions() as session, session.begin():
            if self._postgres:
                # the grouped pass sorts or hashes one row per order: in memory, not on disk
                await session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
            rows = await session.execute(
                select(Order.sales_channel, Order.status, func.count())
                .where(in_period)
                .group_by(Order.sales_channel, Order.status)
            )
            for channel, status, count in rows.all():
                result.by_channel.setdefault(channel, {})[status] = int(count)
                result.by_status[status] = result.by_status.get(status, 0) + int(count)
                result.total += int(count)
            result.cancelled = result.by_status.get("CANCELLED", 0)

            day = self._day(Order.created_at).label("day")
            cancelled = func.sum(case((Order.status == "CANCELLED", 1), else_=0))
            rows = await session.execute(
                select(day, func.count(), cancelled).where(in_period).group_by(day).order_by(day)
            )
            counted = {str(d): (int(n), int(c or 0)) for d, n, c in rows.all()}
            # every day of the period, those without orders as 0
            days = (result.end - result.start).days
            result.per_day = []
            for offset in range(days):
                day_key = (result.start + timedelta(days=offset)).isoformat()
                n, c = counted.get(day_key, (0, 0))
                result.per_day.append({"date": day_key, "orders": n, "cancelled": c})

            # one grouped pass over the audit trail of the period's orders
            milestones = (
                select(
                    OrderEvent.order_id.label("order_id"),
                    Order.created_at.label("created_at"),
                    func.min(
                        case((OrderEvent.type.in_(SHIPPED_EVENTS), OrderEvent.at), else_=None)
                    ).label("shipped_at"),
                    func.min(
                        case((OrderEvent.type.in_(DELIVERED_EVENTS), OrderEvent.at), else_=None)
                    ).label("delivered_at"),
                    func.max(
                        case(
                            (
                                or_(
                                    OrderEvent.type == "backorder_waiting",
                                    and_(
                                        OrderEvent.type == "shipment_picked",
                                        OrderEvent.detail.like("%backordered%"),
                                    ),
                                ),
                                1,
                            ),
                            else_=0,
                        )
                    ).label("backordered"),
                )
                .join(Order, Order.order_id == OrderEvent.order_id)
                .where(
                    in_period,
                    OrderEvent.type.in_((*SHIPPED_EVENTS, *DELIVERED_EVENTS, *BACKORDER_EVENTS)),
                )
                .group_by(OrderEvent.order_id, Order.created_at)
                .subquery()
            )
            timed = select(
                milestones.c.backordered,
                self._seconds(milestones.c.shipped_at, milestones.c.created_at).label("to_ship"),
                self._seconds(milestones.c.delivered_at, milestones.c.created_at).label(
                    "to_delivery"
                ),
            ).subquery()
            approvals = (
                select(self._seconds(Approval.decided_at, Order.created_at).label("lead"))
                .join(Order, Order.order_id == Approval.order_id)
                .where(
                    in_period,
                    Approval.decided_at.is_not(None),
                    Approval.status.in_(("approved", "declined")),
                )
                .subquery()
            )
            if self._postgres:
                # one pass: percentile_cont skips the orders not shipped / delivered yet
                pcs = [
                    func.percentile_cont(p).within_group(column)
                    for column in (timed.c.to_ship, timed.c.to_delivery)
                    for p in PERCENTILES
                ]
                row = (
                    await session.execute(
                        select(
                            func.coalesce(func.sum(timed.c.backordered), 0),
                            func.count(timed.c.to_ship),
                            func.count(timed.c.to_delivery),
                            *pcs,
                        )
                    )
                ).one()
                result.backordered = int(row[0])
                result.order_to_ship = Durations(int(row[1]), _round(row[3]), _round(row[4]))
                result.order_to_delivery = Durations(int(row[2]), _round(row[5]), _round(row[6]))
                result.approval_lead_time = await _pg_durations(session, approvals.c.lead)
            else:
                found = (await session.execute(select(timed))).all()
                result.backordered = sum(int(b or 0) for b, _, _ in found)
                result.order_to_ship = _durations([s for _, s, _ in found])
                result.order_to_delivery = _durations([d for _, _, d in found])
                leads = (await session.execute(select(approvals.c.lead))).scalars().all()
                result.approval_lead_time = _durations(list(leads))

            rows = await session.execute(
                select(Shipment.location_id, func.sum(Shipment.released_quantity))
                .where(Shipment.status.in_(("OPEN", "PICKED")))
                .group_by(Shipment.location_id)
                .order_by(Shipment.location_id)
            )
            result.backlog_by_location = {str(r[0]): int(r[1] or 0) for r in rows.all()}
        return result


async def _pg_durations(session: Any, column: Any) -> Durations:
    p50, p90 = (func.percentile_cont(p).within_group(column) for p in PERCENTILES)
    count, low, high = (
        await session.execute(select(func.count(column), p50, p90).where(column.is_not(None)))
    ).one()
    return Durations(int(count), _round(low), _round(high))


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _durations(values: list[Any]) -> Durations:
    """Percentiles by linear interpolation (what percentile_cont computes)."""
    found = sorted(float(v) for v in values if v is not None)
    if not found:
        return Durations()

    def at(p: float) -> float:
        rank = p * (len(found) - 1)
        low, high = math.floor(rank), math.ceil(rank)
        return found[low] + (found[high] - found[low]) * (rank - low)

    return Durations(len(found), _round(at(0.5)), _round(at(0.9)))
