"""Temporary order response: a planned ship date per line, sent to the channel's callback."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.partners import Sender
from oms import ids
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
    def __init__(self, store: Store, sender: Sender) -> None:
        self.store = store
        self.sender = sender

    @activity.defn(name="send_order_response")
    async def send_order_response(self, input: OrderResponseInput) -> OrderResponseResult:
        wanted = sorted({line.location_id for line in input.lines})
        locations = {loc["location_id"]: loc for loc in await self.store.config.locations(wanted)}
        unknown = [loc for loc in wanted if loc not in locations]
        if unknown:
            # deleted since routing: no retry brings it back (the order is held)
            raise ApplicationError(
                f"location {', '.join(unknown)} is not configured",
                type="UnknownLocation",
                non_retryable=True,
            )
        dates = {
            line.line_id: planned_ship_date(
                input.as_of,
                locations[line.location_id]["time_zone"],
                locations[line.location_id]["cutoff_time"],
                locations[line.location_id]["lead_time_days"],
            )
            for line in input.lines
        }
        message = {
            "type": "order_response",
            "order_id": input.order_id,
            "channel_order_id": ids.channel_order_id(input.order_id),
            "lines": [
                {"line_id": k, "planned_ship_date": v.isoformat()} for k, v in sorted(dates.items())
            ],
        }
        # signed with the callback's secret; a refusal (4xx) or a forbidden target holds
        # the order, a 5xx or no answer retries with backoff
        sent = await self.sender.to_channel(
            input.sales_channel, message, f"{input.order_id}-response"
        )
        return OrderResponseResult(planned_ship_dates=dates, callback_sent=sent)
