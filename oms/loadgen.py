"""Load on a running OMS over its HTTP API, played by everyone around the orders.

- the web shops place orders (`place`): one line each, one unit of a SKU from the list,
  shipped to one of the demo cities, for a sales channel drawn from the mix;
- the locations (`_locations`) poll their open work orders and report pick (every unit
  released is found), ship and deliver, one after the other, on the shipments of the
  orders placed here (never on anyone else's);
- the approvers (`_approvals`) approve what is pending for them on those orders;
- a watcher (`_watch`) reads the order view of each order whose shipment was delivered
  until it says DELIVERED (or another end), which is when the order counts as done.

`oms loadgen` (oms/cli.py) places orders at a rate for a while (an open loop: a slow OMS
does not slow the shop down, so the in-flight count shows where the knee is);
`bench/lifecycle.py` keeps a number of orders in flight (a closed loop). Both read the
same `Stats`.

Clients behave as the README asks: a 503 is retried after its Retry-After (capped), a
202 is looked up at its `poll` address, and reports carry an Idempotency-Key so a retry
never applies twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

# statuses after which the loadgen has nothing more to do for an order
DELIVERED = ("DELIVERED", "COMPLETED", "PARTIALLY_RETURNED", "RETURNED")
ENDED = (*DELIVERED, "CANCELLED", "DECLINED")
# statuses that wait for a person or for stock: the loadgen does not resolve them
STUCK = ("ON_HOLD", "NOT_ANNOUNCED", "CHECK_ANNOUNCED")
NEXT_REPORTS = {
    "OPEN": ("pick", "ship", "deliver"),
    "PICKED": ("ship", "deliver"),
    "SHIPPED": ("deliver",),
}
OPEN_WORK_ORDERS = "OPEN,PICKED,SHIPPED"
PAGE = 500  # the API's largest page of work orders
RETRY_CAP_SECONDS = 2.0  # longest wait for a Retry-After before trying again
COMMAND_LOOKUP_SECONDS = 60.0  # how long a 202's outcome is followed
FAILED_REPORT_PAUSE = 2.0  # a report answered with an error is tried again after this

# ship-to addresses near the demo locations (workers/seed.py), so orders spread over them
CITIES = [
    {
        "name": "Ada",
        "line1": "Main St 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
        "lat": 52.52,
        "lon": 13.40,
    },
    {
        "name": "Bo",
        "line1": "Marienplatz 2",
        "city": "München",
        "postal_code": "80331",
        "country": "DE",
        "lat": 48.137,
        "lon": 11.575,
    },
    {
        "name": "Cy",
        "line1": "Jungfernstieg 3",
        "city": "Hamburg",
        "postal_code": "20354",
        "country": "DE",
        "lat": 53.553,
        "lon": 9.992,
    },
    {
        "name": "Di",
        "line1": "1 Strand",
        "city": "London",
        "postal_code": "WC2N 5HR",
        "country": "GB",
        "lat": 51.507,
        "lon": -0.127,
    },
]


def parse_mix(text: str) -> dict[str, float]:
    """`web=0.8,b2b=0.2` as channel -> share (normalised to a sum of 1); ValueError says
    what is wrong. A channel without a weight (`web`) weighs 1."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        channel, sep, weight = part.partition("=")
        channel = channel.strip()
        if not channel:
            raise ValueError(f"{part.strip()!r}: a sales channel is missing before '='")
        try:
            share = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"{channel}: {weight.strip()!r} is not a number") from None
        if not 0 <= share < float("inf"):
            raise ValueError(f"{channel}: the share must be a number of 0 or more")
        if channel in mix:
            raise ValueError(f"{channel} appears twice")
        mix[channel] = share
    total = sum(mix.values())
    if not mix or total <= 0:
        raise ValueError("name at least one sales channel with a share above 0, e.g. web=1")
    return {channel: share / total for channel, share in mix.items() if share > 0}


def order_body(
    order_id: str, channel: str, sku: str, ship_to: dict[str, Any], price: str = "9.99"
) -> dict[str, Any]:
    """One unit of `sku`, paid by card (authorized, equal to the total)."""
    return {
        "order_id": order_id,
        "sales_channel": channel,
        "customer": {"id": f"LOADGEN-{channel}", "email": "load@example.com", "name": "Load"},
        "ship_to": ship_to,
        "lines": [{"line_id": "1", "sku": sku, "quantity": 1, "unit_price": price}],
        "payment": {"method": "card", "amount": price, "currency": "EUR", "authorized": True},
        "delivery": {"type": "ship", "ship_complete": False},
    }


def percentile(values: Sequence[float], share: float) -> float | None:
    """The value below which `share` of `values` lie (nearest rank), None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Tracked:
    """One order placed here."""

    order_id: str  # the OMS's id (`{channel_order_id}@{channel}`)
    channel: str
    placed_at: float  # monotonic, when the POST went out
    done_at: float | None = None
    status: str = "CREATED"
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def seconds(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.placed_at


@dataclass
class Stats:
    placed: int = 0  # orders the API accepted (201, or 200 for a repeat)
    refused: int = 0  # POSTs answered with an error or not at all
    delivered: int = 0
    cancelled: int = 0  # ended without a delivery (cancelled, declined)
    errors: Counter[str] = field(default_factory=Counter)  # "POST /v1/orders 409 code"
    requests: Counter[str] = field(default_factory=Counter)  # what was sent, by kind
    post_seconds: list[float] = field(default_factory=list)  # accepted POSTs' answer times
    latencies: list[float] = field(default_factory=list)  # placed -> DELIVERED
    approved: int = 0
    reports: int = 0  # pick, ship and deliver reports answered 200
    started: float = field(default_factory=time.monotonic)
    first_placed: float | None = None
    last_done: float | None = None

    @property
    def in_flight(self) -> int:
        return self.placed - self.delivered - self.cancelled

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def line(self) -> str:
        """The live progress line."""
        elapsed = time.monotonic() - self.started
        return (
            f"{elapsed:6.1f}s  placed {self.placed}  in flight {self.in_flight}  "
            f"delivered {self.delivered}  errors {self.error_count}"
        )

    def orders_per_second(self) -> float | None:
        """Delivered orders over the time from the first POST to the last delivery."""
        if not self.delivered or self.first_placed is None or self.last_done is None:
            return None
        span = self.last_done - self.first_placed
        return self.delivered / span if span > 0 else None


class LoadGen:
    """Plays the web shops, locations and approvers against the API at `base_url`.

    `key` (ops or admin) places the orders, reads the locations' work orders and reports
    on them; `approver_key` decides approvals (None: nobody approves); `channel_keys`
    places a channel's orders with that channel's own web-shop key instead."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        key: str,
        *,
        approver_key: str | None = None,
        channel_keys: dict[str, str] | None = None,
        prefix: str = "LG",
        skus: Sequence[str] = ("SKU-1",),
        cities: Sequence[dict[str, Any]] = tuple(CITIES),
        locations: Sequence[str] | None = None,
        poll_seconds: float = 0.25,
        seed: int | None = None,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.approver_key = approver_key
        self.channel_keys = channel_keys or {}
        self.prefix = prefix
        self.skus = list(skus)
        self.cities = list(cities)
        self.locations = list(locations) if locations is not None else None
        self.poll_seconds = poll_seconds
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.orders: dict[str, Tracked] = {}
        self.watching: set[str] = set()  # orders with a delivered shipment, not yet DELIVERED
        self._busy: set[str] = set()  # shipment keys being reported on
        self._not_before: dict[str, float] = {}  # a failed report's shipment: retry after
        # reports answered 200 per shipment key: a list read before the last of them was
        # written still shows the shipment, and is not reported (nor counted) twice
        self._answered: dict[str, set[str]] = {}
        self._deciding: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._all_ended = asyncio.Event()  # set while no order placed here is in flight
        self._count = 0

    # ------------------------------------------------------------------ HTTP

    async def call(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        key: str | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        retry_until: float | None = None,
    ) -> tuple[int | None, Any]:
        """One request (retried after a 503's Retry-After until `retry_until`, monotonic);
        an error answer is counted under `kind`. Returns status (None: no answer) and body."""
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        while True:
            self.stats.requests[kind] += 1
            status: int | None
            try:
                async with self.http.request(
                    method, self.base_url + path, json=json, headers=headers
                ) as resp:
                    status = resp.status
                    if "json" in resp.headers.get("Content-Type", ""):
                        body: Any = await resp.json()
                    else:
                        body = await resp.text()
                    retry_after = resp.headers.get("Retry-After", "")
            except (aiohttp.ClientError, TimeoutError) as err:
                status, body, retry_after = None, None, ""
                error = type(err).__name__
            else:
                error = _error_code(body)
            if status is not None and status < 400:
                return status, body
            wait = RETRY_CAP_SECONDS
            if retry_after.isdigit():
                wait = min(float(retry_after), RETRY_CAP_SECONDS)
            if status == 503 and retry_until is not None and time.monotonic() + wait < retry_until:
                self.stats.errors[f"{kind} 503 {error} (retried)"] += 1
                await asyncio.sleep(wait)
                continue
            self.stats.errors[f"{kind} {status or 'no answer'} {error}".rstrip()] += 1
            return status, body

    async def _outcome(self, status: int | None, body: Any, kind: str) -> int | None:
        """A 202's outcome, looked up at its poll address; other answers as they are."""
        if status != 202 or not isinstance(body, dict) or "poll" not in body:
            return status
        deadline = time.monotonic() + COMMAND_LOOKUP_SECONDS
        while time.monotonic() < deadline:
            status, answer = await self.call("GET", str(body["poll"]), kind="GET /v1/commands")
            if status == 200 and isinstance(answer, dict):
                if answer.get("status") == "done":
                    return 200
                self.stats.errors[f"{kind} failed {_error_code(answer)}".rstrip()] += 1
                return None
            if status not in (202, 503, None):
                return status
            await asyncio.sleep(self.poll_seconds)
        self.stats.errors[f"{kind} outcome unknown"] += 1
        return None

    # ------------------------------------------------------------------ the web shops

    def next_body(self, channel: str) -> dict[str, Any]:
        self._count += 1
        return order_body(
            f"{self.prefix}-{self._count:06d}",
            channel,
            self.rng.choice(self.skus),
            self.rng.choice(self.cities),
        )

    async def place(self, channel: str, retry_seconds: float = 0.0) -> Tracked | None:
        """Place one order for `channel`; the tracked order, or None when refused."""
        body = self.next_body(channel)
        started = time.monotonic()
        if self.stats.first_placed is None:
            self.stats.first_placed = started
        status, answer = await self.call(
            "POST",
            "/v1/orders",
            kind="POST /v1/orders",
            key=self.channel_keys.get(channel),
            json=body,
            retry_until=started + retry_seconds,
        )
        if status not in (200, 201) or not isinstance(answer, dict):
            self.stats.refused += 1
            return None
        self.stats.post_seconds.append(time.monotonic() - started)
        order = Tracked(str(answer["order_id"]), channel, started, status=str(answer["status"]))
        self.orders[order.order_id] = order
        self.stats.placed += 1
        self._all_ended.clear()
        return order

    # ------------------------------------------------------------------ running

    async def run(self, shop: Callable[[], Any], *, drain_seconds: float) -> None:
        """Run `shop()` (places the orders) while the locations, approvers and watcher play
        their parts; once it returns, go on until every order placed has ended or
        `drain_seconds` have passed."""
        if self.locations is None:
            self.locations = await self._location_ids()
        stop = asyncio.Event()
        players = [
            asyncio.create_task(self._locations(stop)),
            asyncio.create_task(self._watch(stop)),
        ]
        if self.approver_key:
            players.append(asyncio.create_task(self._approvals(stop)))
        try:
            await shop()
            if self.stats.in_flight > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_ended.wait(), drain_seconds)
        finally:
            stop.set()
            await asyncio.gather(*players, return_exceptions=True)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def at_rate(self, mix: dict[str, float], rate: float, seconds: float) -> None:
        """Place orders at `rate` per second for `seconds` (each its own task: a slow
        answer does not hold back the next order)."""
        channels, weights = list(mix), list(mix.values())
        started = time.monotonic()
        placing: set[asyncio.Task[Any]] = set()
        count = 0
        while True:
            due = started + count / rate
            if due - started >= seconds:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            channel = self.rng.choices(channels, weights)[0]
            task = asyncio.create_task(self.place(channel, retry_seconds=RETRY_CAP_SECONDS * 3))
            placing.add(task)
            task.add_done_callback(placing.discard)
            count += 1
        await asyncio.gather(*placing)

    async def in_flight(
        self, mix: dict[str, float], orders: int, concurrency: int, order_seconds: float = 300
    ) -> None:
        """Place `orders` orders keeping `concurrency` of them in flight: each slot places
        the next order once its last one has ended (a closed loop), or after
        `order_seconds` (counted as an error: the order is left to the drain)."""
        channels, weights = list(mix), list(mix.values())
        remaining = iter(range(orders))

        async def slot() -> None:
            for _ in remaining:
                order = await self.place(self.rng.choices(channels, weights)[0], retry_seconds=30)
                if order is None:
                    continue
                try:
                    await asyncio.wait_for(order.done.wait(), order_seconds)
                except TimeoutError:
                    self.stats.errors[f"order not ended within {order_seconds:.0f} s"] += 1

        await asyncio.gather(*(slot() for _ in range(concurrency)))

    async def _location_ids(self) -> list[str]:
        status, body = await self.call("GET", "/v1/locations", kind="GET /v1/locations")
        if status != 200 or not isinstance(body, dict):
            raise LoadGenError(f"cannot list the locations (GET /v1/locations answered {status})")
        return [str(loc["location_id"]) for loc in body.get("locations", [])]

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pause(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.poll_seconds)

    # ------------------------------------------------------------------ the locations

    async def _locations(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for location in self.locations or []:
                for work_order in await self._open_work_orders(location):
                    key = str(work_order["shipment_key"])
                    answered = self._answered.get(key, set())
                    reports = tuple(
                        r
                        for r in NEXT_REPORTS.get(str(work_order["status"]), ())
                        if r not in answered
                    )
                    if (
                        not reports
                        or key in self._busy
                        or work_order["order_id"] not in self.orders
                        or self._not_before.get(key, 0.0) > time.monotonic()
                    ):
                        continue
                    self._busy.add(key)
                    self._spawn(self._report(work_order, reports))
            await self._pause(stop)

    async def _open_work_orders(self, location: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            status, body = await self.call(
                "GET",
                f"/v1/locations/{quote(location, safe='')}/work-orders"
                f"?status={OPEN_WORK_ORDERS}&limit={PAGE}&offset={offset}",
                kind="GET /v1/locations/{id}/work-orders",
            )
            if status != 200 or not isinstance(body, dict):
                return found
            found += body["work_orders"]
            offset += PAGE
            if offset >= int(body.get("total", 0)):
                return found

    async def _report(self, work_order: dict[str, Any], reports: Iterable[str]) -> None:
        """Report what is left of `work_order` in turn: pick every unit released, ship,
        deliver. Stops at the first report not answered 200 (the next poll retries)."""
        key = str(work_order["shipment_key"])
        path = f"/v1/shipments/{quote(key, safe='')}"
        try:
            for report in reports:
                body: dict[str, Any] = {}
                if report == "pick":
                    body = {
                        "lines": [
                            {"line_id": ln["line_id"], "picked_quantity": ln["released_quantity"]}
                            for ln in work_order["lines"]
                            if ln["status"] == "OPEN"
                        ]
                    }
                elif report == "ship":
                    body = {"carrier": "DHL", "tracking_number": f"TRACK-{key}"[:128]}
                kind = f"POST /v1/shipments/{{key}}/{report}"
                status, answer = await self.call(
                    "POST",
                    f"{path}/{report}",
                    kind=kind,
                    json=body,
                    idempotency_key=_idempotency_key(key, report),
                    retry_until=time.monotonic() + RETRY_CAP_SECONDS * 3,
                )
                if await self._outcome(status, answer, kind) != 200:
                    self._not_before[key] = time.monotonic() + FAILED_REPORT_PAUSE
                    return
                self.stats.reports += 1
                self._answered.setdefault(key, set()).add(report)
            self._not_before.pop(key, None)
            self.watching.add(str(work_order["order_id"]))
        finally:
            self._busy.discard(key)

    # ------------------------------------------------------------------ the approvers

    async def _approvals(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            status, body = await self.call(
                "GET",
                "/v1/approvals?status=pending",
                kind="GET /v1/approvals",
                key=self.approver_key,
            )
            if status == 200 and isinstance(body, dict):
                for item in body.get("approvals", []):
                    wanted = (str(item["order_id"]), str(item["reason"]))
                    if wanted[0] in self.orders and wanted not in self._deciding:
                        self._deciding.add(wanted)
                        self._spawn(self._approve(*wanted))
            await self._pause(stop)

    async def _approve(self, order_id: str, reason: str) -> None:
        kind = "POST /v1/orders/{id}/approvals"
        try:
            status, answer = await self.call(
                "POST",
                f"/v1/orders/{quote(order_id, safe='')}/approvals",
                kind=kind,
                key=self.approver_key,
                json={"reason": reason, "decision": "approve", "comment": "loadgen"},
                retry_until=time.monotonic() + RETRY_CAP_SECONDS * 3,
            )
            if await self._outcome(status, answer, kind) == 200:
                self.stats.approved += 1
        finally:
            self._deciding.discard((order_id, reason))

    # ------------------------------------------------------------------ the watcher

    async def _watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for order_id in list(self.watching):
                status, view = await self.call(
                    "GET", f"/v1/orders/{quote(order_id, safe='')}", kind="GET /v1/orders/{id}"
                )
                if status == 200 and isinstance(view, dict):
                    self._seen(order_id, str(view["status"]))
            await self._pause(stop)

    def _seen(self, order_id: str, status: str) -> None:
        order = self.orders[order_id]
        order.status = status
        if status not in ENDED:
            return
        self.watching.discard(order_id)
        if order.done_at is not None:
            return
        order.done_at = time.monotonic()
        self.stats.last_done = order.done_at
        if status in DELIVERED:
            self.stats.delivered += 1
            self.stats.latencies.append(order.done_at - order.placed_at)
        else:
            self.stats.cancelled += 1
        order.done.set()
        if self.stats.in_flight == 0:
            self._all_ended.set()

    async def open_statuses(self) -> Counter[str]:
        """The current status of every order still in flight (read once, for a summary)."""
        found: Counter[str] = Counter()
        for order in self.orders.values():
            if order.done_at is not None:
                continue
            status, view = await self.call(
                "GET", f"/v1/orders/{quote(order.order_id, safe='')}", kind="GET /v1/orders/{id}"
            )
            if status == 200 and isinstance(view, dict):
                order.status = str(view["status"])
            found[order.status] += 1
        return found


class LoadGenError(Exception):
    """The load cannot start (the key may not do what it must, the API is unreachable)."""


def _idempotency_key(shipment_key: str, report: str) -> str:
    """The Idempotency-Key of a report: stable per shipment and report (a retry of it is
    the same command), and short whatever the length of the shipment key."""
    digest = hashlib.sha256(shipment_key.encode()).hexdigest()[:32]
    return f"loadgen-{digest}.{report}"


def _error_code(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code", ""))
    return ""


def summary(stats: Stats, open_statuses: Counter[str]) -> dict[str, Any]:
    """What the run did, as the CLI prints it (`--json`) and the benchmark reads it."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    rate = stats.orders_per_second()
    return {
        "placed": stats.placed,
        "refused": stats.refused,
        "delivered": stats.delivered,
        "ended_otherwise": stats.cancelled,
        "in_flight": stats.in_flight,
        "in_flight_by_status": dict(sorted(open_statuses.items())),
        "approved": stats.approved,
        "reports": stats.reports,
        "errors": stats.error_count,
        "errors_by_kind": dict(stats.errors.most_common()),
        "requests": sum(stats.requests.values()),
        "orders_per_second": rounded(rate),
        "latency_seconds": {
            "p50": rounded(percentile(stats.latencies, 0.5)),
            "p90": rounded(percentile(stats.latencies, 0.9)),
            "p99": rounded(percentile(stats.latencies, 0.99)),
            "mean": rounded(statistics.fmean(stats.latencies) if stats.latencies else None),
        },
        "post_seconds": {
            "p50": rounded(percentile(stats.post_seconds, 0.5)),
            "p99": rounded(percentile(stats.post_seconds, 0.99)),
        },
        "seconds": rounded(time.monotonic() - stats.started),
    }
