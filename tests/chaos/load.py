"""Bounded load over HTTP while a fault happens, acting as everyone around the orders: the
web shop (places orders, cancels some), the locations (poll their work orders, report pick,
ship and deliver) and operations (resume orders held by a refused work order once the
partner is fixed). Every request's status and answer time is recorded under the phase
(fault) it happened in.

Clients behave as the README asks: a 503 is retried after its Retry-After (capped, to keep
the pressure on), a 202 is looked up at its `poll` address, and commands carry an
Idempotency-Key so that a retry never applies twice."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from oms.ids import order_key
from tests.chaos.stack import POLLING_LOCATION, WEBHOOK_LOCATION, Webhook
from tests.integration.conftest import KEYS, order_body

ACCEPTED = (200, 201, 202)  # a create answered so started (or had started) the order
TERMINAL = ("DELIVERED", "CANCELLED", "COMPLETED")
RETRY_CAP_SECONDS = 2.0  # longest wait for a Retry-After before trying again
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Answer:
    phase: str
    what: str  # "POST /v1/orders/{id}/cancel"
    status: int | None  # None: no answer (refused connection, reset, client timeout)
    seconds: float
    code: str | None = None  # the error code of an error answer
    retry_after: str | None = None
    error: str | None = None  # what went wrong when there was no answer

    @property
    def outage(self) -> bool:
        """A 503 as promised: an error code and a positive Retry-After."""
        return (
            self.status == 503
            and bool(self.code)
            and (self.retry_after or "").isdigit()
            and int(self.retry_after or "0") > 0
        )

    @property
    def broken(self) -> bool:
        """No answer, or a 5xx that is not a promised 503."""
        return self.status is None or (self.status >= 500 and not self.outage)

    def __str__(self) -> str:
        shown = self.status if self.status is not None else f"no answer ({self.error})"
        code = f" {self.code}" if self.code else ""
        retry = f" Retry-After {self.retry_after}" if self.retry_after else ""
        return f"{self.what}: {shown}{code}{retry} after {self.seconds:.1f}s"


class Api:
    """HTTP client of the stack's API that records every answer."""

    def __init__(self, base_url: str, request_timeout: float) -> None:
        self.base_url = base_url
        self.request_timeout = request_timeout
        self.phase = "setup"
        self.answers: list[Answer] = []
        self.commands: list[Pending] = []
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.request_timeout)
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._http is not None:
            await self._http.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        key: str,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> tuple[int | None, Any, float]:
        """One request; returns status (None: no answer), body and the seconds to wait
        before a retry (from Retry-After, capped)."""
        assert self._http is not None
        headers = {"Authorization": f"Bearer {KEYS[key]}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        phase = self.phase
        started = time.monotonic()
        try:
            async with self._http.request(
                method, self.base_url + path, json=json, headers=headers
            ) as resp:
                if "json" in resp.headers.get("Content-Type", ""):
                    body: Any = await resp.json()
                else:
                    body = await resp.text()
                seconds = time.monotonic() - started
                code = body.get("error", {}).get("code") if isinstance(body, dict) else None
                retry_after = resp.headers.get("Retry-After")
                self.answers.append(
                    Answer(phase, what, resp.status, seconds, code, retry_after, None)
                )
                wait = RETRY_CAP_SECONDS
                if retry_after and retry_after.isdigit():
                    wait = min(float(retry_after), RETRY_CAP_SECONDS)
                return resp.status, body, wait
        except (aiohttp.ClientError, TimeoutError) as err:
            seconds = time.monotonic() - started
            error = f"{type(err).__name__} {err}".strip()
            self.answers.append(Answer(phase, what, None, seconds, error=error))
            return None, None, RETRY_CAP_SECONDS

    async def look_up(
        self, poll: str, key: str, *, command: str, within: float
    ) -> tuple[int | None, Any]:
        """Follow a command answered 202 until its outcome is known (or `within` ends);
        records how long that took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + within
        status: int | None = 202
        body: Any = None
        phase = self.phase
        while loop.time() < deadline:
            status, body, wait = await self.call("GET", poll, what="GET /v1/commands/{id}", key=key)
            if status not in (202, 503, None):
                break
            await asyncio.sleep(wait if status != 202 else POLL_SECONDS)
        outcome = body.get("status") if isinstance(body, dict) else None
        self.commands.append(
            Pending(phase, command, loop.time() - started, f"{status} {outcome or ''}".strip())
        )
        return status, body


@dataclass(frozen=True)
class Pending:
    """A command answered 202: how long until its outcome was known, and what it was."""

    phase: str
    command: str  # "cancel CH-...-003", "pick CH-...-003-S1"
    seconds: float
    outcome: str  # "200 done", "200 failed", "202 pending" (never known)

    def __str__(self) -> str:
        return f"{self.command}: {self.outcome} after {self.seconds:.1f}s"


@dataclass
class Order:
    order_id: str
    body: dict[str, Any]
    location: str
    cancel: bool  # the shop cancels it
    creates: list[int | None] = field(default_factory=list)  # every answer to the create
    cancel_outcome: str | None = None

    @property
    def accepted(self) -> bool:
        return any(s in ACCEPTED for s in self.creates)


class Shop:
    """The web shop: places `orders` orders spread over `seconds`, alternately for each
    location's SKU, and cancels a share of each location's orders a moment (0 to 3 s) after
    they were accepted. Retries a 503 until `retry_until` (loop time)."""

    def __init__(
        self,
        api: Api,
        rng: random.Random,
        *,
        prefix: str,
        orders: int,
        seconds: float,
        cancel_share: float,
        skus: dict[str, str],  # location -> the SKU only it stocks
    ) -> None:
        self.api = api
        self.rng = rng
        self.seconds = seconds
        self.orders: list[Order] = []
        locations = sorted(skus)
        for i in range(orders):
            location = locations[i % len(locations)]
            shop_id = f"{prefix}-{i:03d}"
            body = order_body(order_id=shop_id, sku=skus[location], quantity=rng.choice((1, 2)))
            # known by the OMS's id (oms/ids.py), as lists and messages name it
            order_id = order_key(shop_id, body["sales_channel"])
            self.orders.append(Order(order_id, body, location, cancel=False))
        # the cancelled share of each location's orders (rounded half up), chosen at random
        for location in locations:
            mine = [o for o in self.orders if o.location == location]
            for order in rng.sample(mine, int(len(mine) * cancel_share + 0.5)):
                order.cancel = True
        self.retry_until = float("inf")

    async def run(self, retry_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self.retry_until = loop.time() + retry_seconds
        gap = self.seconds / max(len(self.orders), 1)
        tasks = []
        for order in self.orders:
            tasks.append(asyncio.create_task(self._one(order)))
            await asyncio.sleep(gap)
        await asyncio.gather(*tasks)

    def _retrying(self) -> bool:
        return asyncio.get_running_loop().time() < self.retry_until

    async def _one(self, order: Order) -> None:
        while True:
            status, _, wait = await self.api.call(
                "POST", "/v1/orders", what="POST /v1/orders", key="web", json=order.body
            )
            order.creates.append(status)
            if status in ACCEPTED:
                break
            if status not in (503, None) or not self._retrying():
                return
            await asyncio.sleep(wait)
        if order.cancel:
            await asyncio.sleep(self.rng.uniform(0, 3))
            await self._cancel(order)

    async def _cancel(self, order: Order) -> None:
        path = f"/v1/orders/{order.order_id}/cancel"
        while True:
            status, body, wait = await self.api.call(
                "POST",
                path,
                what="POST /v1/orders/{id}/cancel",
                key="web",
                json={"reason": "chaos: the customer changed their mind"},
                idempotency_key=f"{order.order_id}.cancel",
            )
            if status == 202 and isinstance(body, dict):
                status, body = await self.api.look_up(
                    str(body["poll"]), "web", command=f"cancel {order.order_id}", within=180
                )
                order.cancel_outcome = f"202, then {status} {_brief(body)}"
                return
            if status in (503, None) and self._retrying():
                await asyncio.sleep(wait)
                continue
            order.cancel_outcome = f"{status} {_brief(body)}"
            return


def _brief(body: Any) -> str:
    if isinstance(body, dict):
        if "error" in body:
            return str(body["error"].get("code"))
        return str(body.get("status", ""))
    return ""


NEXT_REPORT = {"OPEN": "pick", "PICKED": "ship", "SHIPPED": "deliver"}


class Locations:
    """The two locations at work: WH-MUNICH works on every open shipment of its list;
    WH-BERLIN only on those its system was sent over the webhook (as a warehouse that
    depends on its webhook would). Each picks everything released, ships, delivers."""

    def __init__(self, api: Api, webhook: Webhook) -> None:
        self.api = api
        self.accepts: dict[str, Callable[[str], bool]] = {
            WEBHOOK_LOCATION: lambda key: key in webhook.accepted,
            POLLING_LOCATION: lambda key: True,
        }
        self.busy: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for location, accepts in self.accepts.items():
                status, body, _ = await self.api.call(
                    "GET",
                    f"/v1/locations/{location}/work-orders?status=OPEN,PICKED,SHIPPED&limit=500",
                    what="GET /v1/locations/{id}/work-orders",
                    key=location,
                )
                if status != 200 or not isinstance(body, dict):
                    continue
                for work_order in body["work_orders"]:
                    key = work_order["shipment_key"]
                    action = NEXT_REPORT.get(work_order["status"])
                    if action is None or key in self.busy or not accepts(key):
                        continue
                    self.busy.add(key)
                    task = asyncio.create_task(self._report(location, work_order, action))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
            try:
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _report(self, location: str, work_order: dict[str, Any], action: str) -> None:
        key = work_order["shipment_key"]
        body: dict[str, Any] = {}
        if action == "pick":
            body = {
                "lines": [
                    {"line_id": ln["line_id"], "picked_quantity": ln["released_quantity"]}
                    for ln in work_order["lines"]
                ]
            }
        elif action == "ship":
            body = {"carrier": "DHL", "tracking_number": f"TRACK-{key}"}
        try:
            status, answer, _ = await self.api.call(
                "POST",
                f"/v1/shipments/{key}/{action}",
                what=f"POST /v1/shipments/{{key}}/{action}",
                key=location,
                json=body,
                idempotency_key=f"{key}.{action}",
            )
            if status == 202 and isinstance(answer, dict):
                await self.api.look_up(
                    str(answer["poll"]), location, command=f"{action} {key}", within=180
                )
            # anything else: the next poll shows what is left to do
        finally:
            self.busy.discard(key)


async def resume_refused(api: Api, order_ids: set[str]) -> list[str]:
    """Operations, once the partner is fixed: resume each of these orders that is ON_HOLD
    because a work order was refused (README runbook). Returns the ones resumed."""
    status, body, _ = await api.call(
        "GET", "/v1/orders?status=ON_HOLD&limit=500", what="GET /v1/orders?status=", key="ops"
    )
    if status != 200 or not isinstance(body, dict):
        return []
    resumed = []
    for row in body["orders"]:
        order_id = row["order_id"]
        if order_id not in order_ids:
            continue
        status, view, _ = await api.call(
            "GET", f"/v1/orders/{order_id}", what="GET /v1/orders/{id}", key="ops"
        )
        if status != 200 or not any("refused" in r for r in view.get("hold_reasons", [])):
            continue
        status, _, _ = await api.call(
            "POST",
            f"/v1/orders/{order_id}/resume",
            what="POST /v1/orders/{id}/resume",
            key="ops",
            json={"comment": "chaos: the location fixed its webhook"},
        )
        if status == 200:
            resumed.append(order_id)
    return resumed


async def order_views(api: Api, order_ids: list[str]) -> dict[str, dict[str, Any]]:
    views: dict[str, dict[str, Any]] = {}
    for order_id in order_ids:
        status, view, _ = await api.call(
            "GET", f"/v1/orders/{order_id}", what="GET /v1/orders/{id}", key="ops"
        )
        if status == 200 and isinstance(view, dict):
            views[order_id] = view
    return views
