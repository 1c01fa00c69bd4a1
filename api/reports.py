"""Reports: order trends and performance over a period (GET /v1/reports/summary), the
figures behind the back office's reports page (api/ui), computed in SQL (store/reports.py)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from api import query
from api.auth import require
from api.context import STORE
from store.reports import ReportRepository, Summary

routes = web.RouteTableDef()

DEFAULT_DAYS = 30
MAX_DAYS = 366
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class DurationsOut(BaseModel):
    count: int = Field(description="how many orders (or approvals) have both moments")
    p50: float | None = Field(description="median, seconds")
    p90: float | None = Field(description="90th percentile, seconds")


class DayOut(BaseModel):
    date: str
    orders: int
    cancelled: int


class ReportSummary(BaseModel):
    """Orders created in the period (`from` to `to`, whole UTC days, both included)."""

    from_: date = Field(alias="from")
    to: date
    sales_channel: str | None
    orders: int = Field(description="orders created in the period")
    by_status: dict[str, int] = Field(description="their current status")
    by_channel: dict[str, dict[str, int]] = Field(description="per channel, per status")
    per_day: list[DayOut] = Field(description="orders created (and cancelled since) per day")
    cancel_rate: float | None = Field(description="cancelled / orders (null: no orders)")
    backorder_rate: float | None = Field(
        description="orders with a unit backordered at least once / orders"
    )
    approval_lead_time: DurationsOut = Field(description="order created to approval decided")
    order_to_ship: DurationsOut = Field(description="order created to its first shipment")
    order_to_delivery: DurationsOut = Field(description="order created to delivered")
    backlog_by_location: dict[str, int] = Field(
        description="units released to each location and not shipped yet (now)"
    )


def _date(request: web.Request, name: str, default: date) -> date:
    raw = request.query.getall(name, [])
    if not raw:
        return default
    if len(raw) > 1:
        raise query.invalid(name, "given more than once", "repeated")
    if _DATE.fullmatch(raw[0]) is None:
        raise query.invalid(name, "a date YYYY-MM-DD", "date_parsing")
    try:
        return date.fromisoformat(raw[0])
    except ValueError as err:
        raise query.invalid(name, "a date YYYY-MM-DD", "date_parsing") from err


def period(request: web.Request) -> tuple[date, date]:
    """?from=&to= (inclusive UTC days; default the last DEFAULT_DAYS days up to today)."""
    today = datetime.now(UTC).date()
    end = _date(request, "to", today)
    start = _date(request, "from", end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        raise query.invalid("from", "on or before `to`", "out_of_range")
    if (end - start).days >= MAX_DAYS:
        raise query.invalid("from", f"at most {MAX_DAYS} days before `to`", "out_of_range")
    return start, end


async def summary_of(request: web.Request) -> Summary:
    start, end = period(request)
    channel = query.identifier(request, "sales_channel")
    return await ReportRepository(request.app[STORE].db).summary(
        datetime.combine(start, time(), UTC),
        datetime.combine(end + timedelta(days=1), time(), UTC),
        channel,
    )


def summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "from": summary.start.isoformat(),
        "to": (summary.end - timedelta(days=1)).isoformat(),
        "sales_channel": summary.sales_channel,
        "orders": summary.total,
        "by_status": summary.by_status,
        "by_channel": summary.by_channel,
        "per_day": summary.per_day,
        "cancel_rate": summary.rate(summary.cancelled),
        "backorder_rate": summary.rate(summary.backordered),
        "approval_lead_time": summary.approval_lead_time.as_json(),
        "order_to_ship": summary.order_to_ship.as_json(),
        "order_to_delivery": summary.order_to_delivery.as_json(),
        "backlog_by_location": summary.backlog_by_location,
    }


@routes.get("/v1/reports/summary")
async def report_summary(request: web.Request) -> web.Response:
    require(request, "ops")
    return web.json_response(summary_json(await summary_of(request)))


PARAMETERS: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": what,
        "schema": {"type": "string", "format": "date"},
    }
    for name, what in (
        ("from", f"first UTC day (default: {DEFAULT_DAYS - 1} days before `to`)"),
        ("to", f"last UTC day, included (default: today; at most {MAX_DAYS} days in all)"),
    )
] + [query.identifier_parameter("sales_channel", "only this channel's orders")]
