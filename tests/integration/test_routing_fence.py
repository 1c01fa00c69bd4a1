"""Stale routing attempts change nothing once their retry has started (issue 7, point 4).

When one Temporal attempt of `route_order` times out but keeps running, the server starts
a retry with the same input, hence the same reservation ids, and both run side by side.
These tests run such a pair against the real store on both backends: two
ActivityEnvironments with the same workflow run and activity id, attempts 1 and 2. The
stale attempt 1 is paused inside the store (a repository subclass that waits on an event
at one call), its retry runs to completion, then attempt 1 goes on. It must stop with a
non-retryable StaleAttempt error, without releasing the retry's reservations and without
leaving reservations of its own; the stock a user sees stays that of the retry's plan.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.routing import RoutingActivities
from store import Store
from store.database import Database, utcnow
from store.inventory import FENCE_TTL, Fence, InventoryRepository
from store.tables import Inventory, Reservation, RoutingFence
from tests.integration.conftest import BERLIN, WAIT_SECONDS, Stack, order_body, unique_sku
from workflows.model import (
    Address,
    AssignLine,
    AssignLocationsInput,
    Delivery,
    RouteLine,
    RouteOrderInput,
)
from workflows.order import order_workflow_id

HELD = ("ACTIVE", "PICKED")


class PausingInventory(InventoryRepository):
    """The real repository, except that the first call of `point` ("before reserve",
    "after reserve" or "before release") waits until the test lets it go on."""

    def __init__(self, db: Database, point: str) -> None:
        super().__init__(db)
        self.point = point
        self.paused = asyncio.Event()
        self.go = asyncio.Event()

    async def _maybe_pause(self, point: str) -> None:
        if point == self.point and not self.paused.is_set():
            self.paused.set()
            await self.go.wait()

    async def reserve(self, **kwargs: Any) -> bool:
        await self._maybe_pause("before reserve")
        ok = await super().reserve(**kwargs)
        await self._maybe_pause("after reserve")
        return ok

    async def release(self, reservation_id: str, *, fence: Fence | None = None) -> bool:
        await self._maybe_pause("before release")
        return await super().release(reservation_id, fence=fence)


def attempt_env(
    run_id: str, attempt: int, heartbeats: list[Any] | None = None
) -> ActivityEnvironment:
    """Attempt `attempt` of activity "1" of the workflow run `run_id`."""
    env = ActivityEnvironment()
    env.info = replace(
        ActivityEnvironment.default_info(),
        activity_id="1",
        activity_type="route_order",
        workflow_id=f"order-{run_id}",
        workflow_run_id=run_id,
        attempt=attempt,
        heartbeat_timeout=timedelta(seconds=15),
    )
    if heartbeats is not None:
        env.on_heartbeat = lambda *details: heartbeats.append(details)
    return env


@asynccontextmanager
async def stale_attempt(
    stack: Stack, point: str, run: Any, run_id: str, input: Any
) -> AsyncIterator[tuple[PausingInventory, asyncio.Task[Any]]]:
    """Start attempt 1 of `run(activities, input)` for the workflow run `run_id` and wait,
    under the suite's deadline, until it pauses at `point`. On leaving, the attempt is
    let go; the caller awaits the task."""
    inventory = PausingInventory(stack.store.db, point)
    paused_store = Store(stack.store.db)
    paused_store.inventory = inventory
    env = attempt_env(run_id, 1)
    task: asyncio.Task[Any] = asyncio.create_task(
        env.run(run, RoutingActivities(paused_store), input)
    )
    waiter = asyncio.create_task(inventory.paused.wait())
    try:
        done, _ = await asyncio.wait(
            {task, waiter}, timeout=WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            pytest.fail(f"attempt 1 ended before pausing at {point!r}: {task.result()!r}")
        if waiter not in done:
            pytest.fail(f"attempt 1 did not reach {point!r} in {WAIT_SECONDS}s")
        yield inventory, task
    finally:
        waiter.cancel()
        inventory.go.set()
        if not task.done():
            # on a failure above, do not leave the attempt running into the next test
            await asyncio.wait({task}, timeout=WAIT_SECONDS)


async def route(acts: RoutingActivities, input: RouteOrderInput) -> Any:
    return await acts.route_order(input)


async def assign(acts: RoutingActivities, input: AssignLocationsInput) -> Any:
    return await acts.assign_locations(input)


async def stale_error(task: Awaitable[Any]) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await asyncio.wait_for(task, WAIT_SECONDS)
    assert caught.value.type == "StaleAttempt", caught.value
    assert caught.value.non_retryable
    return caught.value


def route_input(order_id: str, channel: str, sku: str, quantity: int) -> RouteOrderInput:
    return RouteOrderInput(
        order_id=order_id,
        sales_channel=channel,
        ship_to=Address(**BERLIN),
        delivery=Delivery(type="ship", ship_complete=False),
        lines=[RouteLine(line_id="1", sku=sku, quantity=quantity, attempt=1)],
    )


async def held(stack: Stack, order_id: str) -> dict[str, tuple[str, int]]:
    """The order's reservations that hold stock: id -> (location, quantity)."""
    return {
        r.reservation_id: (r.location_id, r.quantity)
        for r in await stack.store.inventory.reservations_for_order(order_id)
        if r.status in HELD
    }


async def assert_reserved_matches(stack: Stack, *skus: str) -> None:
    """Per location and SKU, inventory.reserved is the sum of ACTIVE/PICKED reservations."""
    async with stack.store.db.sessions() as session:
        stock = {
            (loc, sku): reserved
            for loc, sku, reserved in (
                await session.execute(
                    select(Inventory.location_id, Inventory.sku, Inventory.reserved).where(
                        Inventory.sku.in_(skus)
                    )
                )
            ).all()
        }
        sums: dict[tuple[str, str], int] = {}
        for loc, sku, qty in (
            await session.execute(
                select(Reservation.location_id, Reservation.sku, Reservation.quantity).where(
                    Reservation.sku.in_(skus), Reservation.status.in_(HELD)
                )
            )
        ).all():
            sums[(loc, sku)] = sums.get((loc, sku), 0) + qty
    assert stock == {key: sums.get(key, 0) for key in stock}


# ------------------------------------------------------------------------------ tests
async def test_stale_attempt_paused_before_reserving_leaves_nothing(stack: Stack) -> None:
    """Attempt 1 plans Berlin and stalls. Another order takes Berlin's units, so the
    retry reserves Munich; then the other order is cancelled and Berlin has stock again.
    Attempt 1 wakes up: it must neither reserve Berlin (left ACTIVE forever, since the
    workflow only knows the retry's result) nor release the retry's Munich units."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2), ("WH-MUNICH", sku, 5)])
    order_id = f"F-{uuid.uuid4().hex[:10]}"
    run_id = str(uuid.uuid4())
    input = route_input(order_id, "web", sku, 2)
    async with stale_attempt(stack, "before reserve", route, run_id, input) as (_, first):
        other = f"other-{order_id}"
        assert await stack.store.inventory.reserve(
            reservation_id=other,
            order_id=other,
            line_id="1",
            location_id="WH-BERLIN",
            sku=sku,
            quantity=2,
        )
        heartbeats: list[Any] = []
        retry = await attempt_env(run_id, 2, heartbeats).run(
            RoutingActivities(stack.store).route_order, input
        )
        assert retry.outcome == "assigned", retry
        [decision] = retry.decisions
        assert decision.location_id == "WH-MUNICH"
        assert heartbeats, "route_order sent no heartbeat"
        assert await stack.store.inventory.release(other)  # the other order is cancelled
    await stale_error(first)

    # the workflow got the retry's decision: exactly its reservation holds stock
    assert await held(stack, order_id) == {decision.reservation_id: ("WH-MUNICH", 2)}
    atp = await stack.atp(sku)
    assert (atp["WH-BERLIN"], atp["WH-MUNICH"]) == (2, 3)
    await assert_reserved_matches(stack, sku)


async def test_stale_attempt_paused_before_releasing_keeps_the_retrys_units(
    stack: Stack,
) -> None:
    """Attempt 1 reserved Berlin and stalls before releasing what its plan does not use.
    The channel stops using Berlin; the retry routes to Munich and gives Berlin back.
    Attempt 1 wakes up with its old plan (Berlin) and must not release Munich."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5), ("WH-MUNICH", sku, 5)])
    channel = await stack.make_channel("fence")
    order_id = f"F-{uuid.uuid4().hex[:10]}"
    run_id = str(uuid.uuid4())
    input = route_input(order_id, channel, sku, 2)
    async with stale_attempt(stack, "after reserve", route, run_id, input) as (_, first):
        assert {loc for loc, _ in (await held(stack, order_id)).values()} == {"WH-BERLIN"}
        status, body = await stack.call(
            "PUT",
            "/v1/sales-channels",
            json=[{"channel_id": channel, "excluded_locations": ["WH-BERLIN"]}],
        )
        assert status == 200, body
        retry = await attempt_env(run_id, 2).run(RoutingActivities(stack.store).route_order, input)
        assert retry.outcome == "assigned", retry
        [decision] = retry.decisions
        assert decision.location_id == "WH-MUNICH"
    await stale_error(first)

    assert await held(stack, order_id) == {decision.reservation_id: ("WH-MUNICH", 2)}
    atp = await stack.atp(sku)
    assert (atp["WH-BERLIN"], atp["WH-MUNICH"]) == (5, 3)
    await assert_reserved_matches(stack, sku)


async def test_stale_manual_assignment_keeps_the_retrys_units(stack: Stack) -> None:
    """assign_locations, all lines or none: attempt 1 reserved line 1, found line 2 short
    and stalls before giving line 1 back. Stock for line 2 arrives and the retry reserves
    both lines. Attempt 1 must not release line 1 under the retry's feet."""
    sku1, sku2 = unique_sku(), unique_sku()
    await stack.set_stock([("WH-BERLIN", sku1, 5), ("WH-BERLIN", sku2, 0)])
    order_id = f"F-{uuid.uuid4().hex[:10]}"
    run_id = str(uuid.uuid4())
    input = AssignLocationsInput(
        order_id=order_id,
        lines=[
            AssignLine(line_id="1", sku=sku1, quantity=2, attempt=1, location_id="WH-BERLIN"),
            AssignLine(line_id="2", sku=sku2, quantity=1, attempt=1, location_id="WH-BERLIN"),
        ],
    )
    async with stale_attempt(stack, "before release", assign, run_id, input) as (_, first):
        await stack.set_stock([("WH-BERLIN", sku2, 3)])
        heartbeats: list[Any] = []
        retry = await attempt_env(run_id, 2, heartbeats).run(
            RoutingActivities(stack.store).assign_locations, input
        )
        assert not retry.refused, retry
        assert heartbeats, "assign_locations sent no heartbeat"
        assert {d.line_id for d in retry.decisions} == {"1", "2"}
    await stale_error(first)

    assert await held(stack, order_id) == {
        d.reservation_id: ("WH-BERLIN", d.quantity) for d in retry.decisions if d.reservation_id
    }
    assert (await stack.atp(sku1))["WH-BERLIN"] == 3
    assert (await stack.atp(sku2))["WH-BERLIN"] == 2
    await assert_reserved_matches(stack, sku1, sku2)


async def test_attempt_started_after_its_retry_does_nothing(stack: Stack) -> None:
    """An attempt whose retry already claimed the fence stops at once; a repeat of the
    newest attempt (a worker restart of the same attempt) still routes."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = f"F-{uuid.uuid4().hex[:10]}"
    run_id = str(uuid.uuid4())
    input = route_input(order_id, "web", sku, 2)
    acts = RoutingActivities(stack.store)
    first = await attempt_env(run_id, 2).run(acts.route_order, input)
    assert first.outcome == "assigned"
    assert await stack.store.inventory.fence_token(f"{run_id}:1") == 2

    await stale_error(attempt_env(run_id, 1).run(acts.route_order, input))
    again = await attempt_env(run_id, 2).run(acts.route_order, input)
    assert [d.reservation_id for d in again.decisions] == [
        d.reservation_id for d in first.decisions
    ]
    assert await held(stack, order_id) == {first.decisions[0].reservation_id: ("WH-BERLIN", 2)}
    assert (await stack.atp(sku))["WH-BERLIN"] == 3
    await assert_reserved_matches(stack, sku)


async def test_fences_older_than_a_day_are_deleted_by_later_claims(stack: Stack) -> None:
    old_key, recent_key = f"old-{uuid.uuid4()}:1", f"recent-{uuid.uuid4()}:1"
    now = utcnow()
    async with stack.store.db.transaction() as session:
        session.add(
            RoutingFence(
                fence_key=old_key, token=1, updated_at=now - FENCE_TTL - timedelta(hours=1)
            )
        )
        session.add(
            RoutingFence(
                fence_key=recent_key, token=1, updated_at=now - FENCE_TTL + timedelta(hours=1)
            )
        )
    inventory = stack.store.inventory
    assert await inventory.claim_fence(Fence(f"{uuid.uuid4()}:1", 1))
    assert await inventory.fence_token(old_key) is None
    assert await inventory.fence_token(recent_key) == 1
    # the token only grows
    assert await inventory.claim_fence(Fence(recent_key, 3))
    assert not await inventory.claim_fence(Fence(recent_key, 2))
    assert await inventory.fence_token(recent_key) == 3


class HoldingInventory(InventoryRepository):
    """The real repository, except that the first fenced write pauses right after its
    fence check, inside its transaction (holding the fence row on PostgreSQL, the write
    lock on SQLite)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.paused = asyncio.Event()
        self.go = asyncio.Event()
        self._go_now = threading.Event()
        self._held = False
        self._loop = asyncio.get_running_loop()

    def let_go(self) -> None:
        self.go.set()
        self._go_now.set()

    def _hold_fence(self, session: Session, fence: Fence | None) -> None:
        super()._hold_fence(session, fence)
        if fence is None or self._held:
            return
        self._held = True
        if threading.current_thread() is threading.main_thread():
            # PostgreSQL: the transaction runs in SQLAlchemy's greenlet on the event loop
            self.paused.set()
            await_only(self.go.wait())
        else:
            # SQLite: in the store's writer thread
            self._loop.call_soon_threadsafe(self.paused.set)
            self._go_now.wait(WAIT_SECONDS)


async def claims_waiting_on_a_lock(stack: Stack) -> int:
    async with stack.store.db.sessions() as session:
        return int(
            (
                await session.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND query ILIKE '%routing_fences%'"
                    )
                )
            ).scalar_one()
        )


async def test_a_retry_waits_for_a_write_in_flight(stack: Stack) -> None:
    """Attempt 1 is inside its reservation's transaction when the retry starts: the
    retry's claim waits for that transaction (PostgreSQL: the fence row is locked), then
    finds the reservation and keeps it as its own. One reservation, both agree."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = f"F-{uuid.uuid4().hex[:10]}"
    run_id = str(uuid.uuid4())
    input = route_input(order_id, "web", sku, 2)
    inventory = HoldingInventory(stack.store.db)
    holding_store = Store(stack.store.db)
    holding_store.inventory = inventory
    first = asyncio.create_task(
        attempt_env(run_id, 1).run(RoutingActivities(holding_store).route_order, input)
    )
    retry: asyncio.Task[Any] | None = None
    try:
        await asyncio.wait_for(inventory.paused.wait(), WAIT_SECONDS)
        retry = asyncio.create_task(
            attempt_env(run_id, 2).run(RoutingActivities(stack.store).route_order, input)
        )
        if stack.backend == "postgresql":
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT_SECONDS
            while await claims_waiting_on_a_lock(stack) == 0:
                assert not retry.done(), retry
                assert loop.time() < deadline, "the retry's claim never waited for the lock"
                await asyncio.sleep(0.05)
    finally:
        inventory.let_go()
    stale_result = await asyncio.wait_for(first, WAIT_SECONDS)
    assert retry is not None
    result = await asyncio.wait_for(retry, WAIT_SECONDS)
    assert result.outcome == stale_result.outcome == "assigned"
    [decision] = result.decisions
    assert [d.reservation_id for d in stale_result.decisions] == [decision.reservation_id]
    assert await held(stack, order_id) == {decision.reservation_id: ("WH-BERLIN", 2)}
    assert (await stack.atp(sku))["WH-BERLIN"] == 3
    await assert_reserved_matches(stack, sku)


async def test_an_order_routed_by_the_worker_claims_its_fence(stack: Stack) -> None:
    """Through the real worker: the order is routed and its reservation held, and the
    routing attempt claimed the fence of its workflow run and activity."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    view = await stack.wait_for(
        order_id, lambda v: any(r.get("location_id") for r in v["routing"]), "a routed line"
    )
    assert [r["location_id"] for r in view["routing"] if r.get("location_id")] == ["WH-BERLIN"]
    assert (await stack.atp(sku))["WH-BERLIN"] == 3
    run_id = (await stack.client.get_workflow_handle(order_workflow_id(order_id)).describe()).run_id
    async with stack.store.db.sessions() as session:
        tokens = (
            await session.execute(
                select(RoutingFence.token).where(RoutingFence.fence_key.startswith(f"{run_id}:"))
            )
        ).scalars()
        assert list(tokens) == [1]
    await assert_reserved_matches(stack, sku)
