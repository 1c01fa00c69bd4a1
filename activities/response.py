"""Temporary order response: a planned ship date per line, sent to the channel's callback."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from temporalio import activity

from store import Store
from workflows.model import OrderResponseInput, OrderResponseResult


def next_working_day(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def planned_ship_date(now: datetime, time_zone: str, cutoff: str, lead_time_days: int) -> date:
    """Orders in before the location's local cut-off on a working day ship that day;
    later ones the next working day; then the lead time in working days."""
    local = now.astimezone(ZoneInfo(time_zone))
    hour, minute = (int(part) for part in cutoff.split(":"))
    day = local.date()
    if local.weekday() >= 5 or local.time() >= time(hour, minute):
        day = next_working_day(day)
    for _ in range(lead_time_days):
        day = next_working_day(day)
    return day


class ResponseActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="send_order_response")
    async def send_order_response(self, input: OrderResponseInput) -> OrderResponseResult:
        locations = {
            loc["location_id"]: loc
            for loc in await self.store.config.locations(
                sorted({line.location_id for line in input.lines})
            )
        }
        dates = {
            line.line_id: planned_ship_date(
                input.as_of,
                locations[line.location_id]["time_zone"],
                locations[line.location_id]["cutoff_time"],
                locations[line.location_id]["lead_time_days"],
            )
            for line in input.lines
        }
        channel = await self.store.config.channel(input.sales_channel) or {}
        callback = channel.get("callback_url")
        sent = False
        if callback:
            body = {
                "type": "order_response",
                "order_id": input.order_id,
                "lines": [
                    {"line_id": k, "planned_ship_date": v.isoformat()}
                    for k, v in sorted(dates.items())
                ],
            }
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                async with http.post(
                    callback, json=body, headers={"Idempotency-Key": f"{input.order_id}-response"}
                ) as resp:
                    resp.raise_for_status()  # a failing callback retries with backoff
            sent = True
        return OrderResponseResult(planned_ship_dates=dates, callback_sent=sent)
