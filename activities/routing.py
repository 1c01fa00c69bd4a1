"""Routing stage: the sourcing engine decides, the store reserves.

One attempt reads locations, channel ATP and backlogs, plans the whole order with
`activities.sourcing.source_order`, and reserves every assignment. Reservation ids are
`{order}:{line}:{attempt}:{location}`, so a retried attempt finds what it reserved
before: those units count as its own when it plans again, and whatever the new plan
does not use is released. When a racing order takes stock between the read and the
reservation, the attempt plans again on fresh numbers.

Stale attempts: a Temporal attempt that timed out (start-to-close or heartbeat) may go
on running beside its retry, with the same input and so the same reservation ids. Each
attempt therefore claims a fence (key: workflow run and activity id, token: the Temporal
attempt number) before it reads anything, and every reservation write it makes checks
that fence in the write's own transaction. Once a retry has claimed the fence, the older
attempt can neither reserve nor release: it stops with a non-retryable `StaleAttempt`
error, which Temporal discards since that attempt is already over. Whatever it wrote
before the retry's claim, the retry reads as its own and keeps or releases.
Both activities heartbeat between planning rounds and reservations, so a heartbeat
timeout on the workflow side ends a hung attempt early.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.availability import channel_atp, site
from activities.sourcing import (
    Assignment,
    CandidateScore,
    Demand,
    Site,
    SourcingPlan,
    Strategy,
    source_order,
)
from store import Store
from store.inventory import Fence, ReservationRow, StaleFence
from workflows.model import (
    AssignLocationsInput,
    AssignLocationsResult,
    Candidate,
    LocationConfig,
    RouteOrderInput,
    RouteOrderResult,
    RoutingDecision,
    RoutingOutcome,
    SalesChannelConfig,
)

PLAN_ROUNDS = 3
NO_STOCK = ("no stock", "not enough stock")
T = TypeVar("T")


def reservation_id(order_id: str, line_id: str, attempt: int, location_id: str) -> str:
    return f"{order_id}:{line_id}:{attempt}:{location_id}"


def attempt_fence() -> Fence | None:
    """The fence of the running activity attempt; None outside an activity (direct calls
    in tests and benchmarks are not fenced)."""
    if not activity.in_activity():
        return None
    info = activity.info()
    run_id = info.workflow_run_id or info.activity_run_id
    if run_id is None:
        return None
    return Fence(key=f"{run_id}:{info.activity_id}", token=info.attempt)


def heartbeat(*details: Any) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)


def invalid_configuration(what: str, err: ValidationError) -> ApplicationError:
    """Stored configuration the API would refuse (edited by hand, an old release): no
    retry fixes it, so the order is held until an operator does."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in err.errors(include_url=False, include_input=False)[:5]
    )
    return ApplicationError(
        f"{what} has invalid configuration ({problems})",
        type="InvalidConfiguration",
        non_retryable=True,
    )


def stale(reason: str) -> ApplicationError:
    return ApplicationError(
        f"a newer attempt of this activity is running: {reason}",
        type="StaleAttempt",
        non_retryable=True,
    )


def explain(scores: list[CandidateScore]) -> tuple[list[Candidate], int]:
    """Candidates worth showing (scored, or rejected for a reason other than having no
    stock) and how many stockless locations were left out, to keep histories small."""
    shown: list[Candidate] = []
    omitted = 0
    for c in scores:
        if c.rejected_reason is not None and c.atp == 0 and c.rejected_reason.startswith(NO_STOCK):
            omitted += 1
            continue
        shown.append(
            Candidate(
                location_id=c.location_id,
                atp=c.atp,
                distance_km=c.distance_km,
                score=c.score if c.rejected_reason is None else None,
                parts=dict(c.parts),
                rejected_reason=c.rejected_reason,
            )
        )
    return shown, omitted


@dataclass
class RoutedPlan:
    """A sourcing plan and, for click and collect, the lines transferred to the pickup
    store from the location they are assigned to (line_id -> pickup store)."""

    plan: SourcingPlan
    transfers: dict[str, str] = field(default_factory=dict)


def transfer_plan(
    pickup: SourcingPlan,
    lines: list[Demand],
    sites: list[Site],
    stock: dict[tuple[str, str], int],
    strategy: Strategy,
    store_id: str,
) -> RoutedPlan | None:
    """Click and collect when the pickup store cannot serve the order on its own: the
    lines it holds stock for stay there, the others are sourced from the warehouses as
    if shipped to the store (distance to the store, no distance tolerance: the network
    is the retailer's own) and transferred. None when the store cannot take pickups at
    all, or no warehouse has the rest (the order then waits for stock as before)."""
    store = next((s for s in sites if s.location_id == store_id), None)
    if store is None or not store.enabled or store.channel_excluded:
        return None
    if "pickup" not in store.delivery_types:
        return None
    left = dict(stock)
    at_store: list[Demand] = []
    elsewhere: list[Demand] = []
    for d in lines:
        if left.get((store_id, d.sku), 0) >= d.quantity:
            left[(store_id, d.sku)] -= d.quantity
            at_store.append(d)
        else:
            elsewhere.append(d)
    sources = [s for s in sites if s.type == "warehouse" and s.location_id != store_id]
    if not elsewhere or not sources:
        return None
    moved = source_order(
        elsewhere,
        sources,
        left,
        (store.lat, store.lon),
        replace(strategy, max_distance_km=None),
        delivery_type="ship",
    )
    if moved.outcome != "assigned":
        return None
    explanations = dict(pickup.explanations)
    explanations.update(moved.explanations)
    assignments = [Assignment(d.line_id, store_id, d.quantity) for d in at_store]
    assignments += moved.assignments
    order = {d.line_id: i for i, d in enumerate(lines)}
    assignments.sort(key=lambda a: order[a.line_id])
    plan = SourcingPlan("assigned", assignments, explanations, [])
    return RoutedPlan(plan, {d.line_id: store_id for d in elsewhere})


class RoutingActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def _channel(self, channel_id: str) -> SalesChannelConfig:
        raw = await self.store.config.channel(channel_id)
        return (
            SalesChannelConfig.model_validate(raw)
            if raw
            else SalesChannelConfig(channel_id=channel_id)
        )

    async def _plan(
        self,
        input: RouteOrderInput,
        channel: SalesChannelConfig,
        locations: list[LocationConfig],
        ours: list[ReservationRow],
    ) -> RoutedPlan:
        stock = await self.store.inventory.stock({line.sku for line in input.lines})
        backlog = await self.store.fulfillment.backlog_by_location()
        by_id = {loc.location_id: loc for loc in locations}
        atp = {
            (row.location_id, row.sku): channel_atp(
                by_id[row.location_id], channel, row.on_hand, row.reserved
            )
            for row in stock
            if row.location_id in by_id
        }
        for res in ours:  # units this attempt already holds are available to it
            if res.location_id in by_id:
                key = (res.location_id, res.sku)
                atp[key] = atp.get(key, 0) + res.quantity
        delivery = input.delivery
        excluded = {line.line_id: set(line.exclude_locations) for line in input.lines}
        sites = [site(loc, channel, backlog.get(loc.location_id, 0)) for loc in locations]
        if any(excluded.values()):
            # a line-specific exclusion: hide that location's stock for the line's SKU
            for line in input.lines:
                for loc_id in excluded[line.line_id]:
                    atp[(loc_id, line.sku)] = 0
        weights = channel.routing_weights
        strategy = Strategy(
            w_distance=weights.distance,
            w_stock=weights.stock,
            w_backlog=weights.backlog,
            w_cost=weights.cost,
            w_priority=weights.priority,
            max_distance_km=channel.max_distance_km,
            split_policy="ship_complete"
            if delivery and delivery.ship_complete
            else channel.split_policy,
        )
        ship_to = input.ship_to
        demands = [Demand(line.line_id, line.sku, line.quantity) for line in input.lines]
        plan = source_order(
            demands,
            sites,
            atp,
            (ship_to.lat, ship_to.lon)
            if ship_to.lat is not None and ship_to.lon is not None
            else None,
            strategy,
            delivery_type=delivery.type if delivery else "ship",
            pickup_location_id=delivery.pickup_location_id if delivery else None,
        )
        if (
            plan.outcome != "assigned"
            and delivery is not None
            and delivery.type == "pickup"
            and delivery.pickup_location_id
            and channel.pickup_transfers
        ):
            moved = transfer_plan(plan, demands, sites, atp, strategy, delivery.pickup_location_id)
            if moved is not None:
                return moved
        return RoutedPlan(plan)

    async def _fenced(self, run: Callable[[Fence | None], Awaitable[T]]) -> T:
        """Claim this attempt's fence, then run; StaleAttempt when a newer attempt has
        claimed it (before the start or at any fenced write)."""
        fence = attempt_fence()
        if fence is not None and not await self.store.inventory.claim_fence(fence):
            raise stale(f"attempt {fence.token} started after a newer one")
        try:
            return await run(fence)
        except StaleFence as err:
            activity.logger.warning("stale attempt stopped: %s", err)
            raise stale(str(err)) from None

    @activity.defn(name="route_order")
    async def route_order(self, input: RouteOrderInput) -> RouteOrderResult:
        return await self._fenced(lambda fence: self._route_order(input, fence))

    async def _route_order(self, input: RouteOrderInput, fence: Fence | None) -> RouteOrderResult:
        try:
            channel = await self._channel(input.sales_channel)
        except ValidationError as err:
            raise invalid_configuration(f"sales channel {input.sales_channel}", err) from err
        locations = []
        for raw in await self.store.config.locations():
            try:
                locations.append(LocationConfig.model_validate(raw))
            except ValidationError as err:
                raise invalid_configuration(f"location {raw.get('location_id')}", err) from err
        if not input.per_line:
            return await self._route_group(input, channel, locations, fence)
        # backorders: each line on its own, so one line without stock does not hold
        # back another that has some
        results = [
            await self._route_group(
                input.model_copy(update={"lines": [line]}), channel, locations, fence
            )
            for line in input.lines
        ]
        outcomes = {r.outcome for r in results}
        outcome: RoutingOutcome = (
            "assigned"
            if outcomes == {"assigned"}
            else "check_announced"
            if "check_announced" in outcomes
            else "not_announced"
        )
        return RouteOrderResult(
            decisions=[d for r in results for d in r.decisions],
            outcome=outcome,
            reasons=[reason for r in results for reason in r.reasons],
        )

    async def _route_group(
        self,
        input: RouteOrderInput,
        channel: SalesChannelConfig,
        locations: list[LocationConfig],
        fence: Fence | None,
    ) -> RouteOrderResult:
        attempts = {line.line_id: line.attempt for line in input.lines}
        skus = {line.line_id: line.sku for line in input.lines}
        prefixes = tuple(f"{input.order_id}:{lid}:{n}:" for lid, n in attempts.items())
        routed: RoutedPlan | None = None
        short = False
        for round_no in range(1, PLAN_ROUNDS + 1):
            heartbeat(f"planning round {round_no}")
            ours = [
                r
                for r in await self.store.inventory.reservations_for_order(input.order_id)
                if r.reservation_id.startswith(prefixes) and r.status == "ACTIVE"
            ]
            routed = await self._plan(input, channel, locations, ours)
            plan = routed.plan
            if plan.outcome != "assigned":
                break
            short = False
            for a in plan.assignments:
                rid = reservation_id(input.order_id, a.line_id, attempts[a.line_id], a.location_id)
                heartbeat(f"reserving {rid}")
                # resize: an earlier try of this attempt held another amount here, which
                # is given back and taken anew in one transaction
                ok = await self.store.inventory.reserve(
                    reservation_id=rid,
                    order_id=input.order_id,
                    line_id=a.line_id,
                    location_id=a.location_id,
                    sku=skus[a.line_id],
                    quantity=a.quantity,
                    fence=fence,
                    resize=True,
                )
                short = short or not ok
            if not short:
                break
            activity.logger.info("%s: stock moved while routing, planning again", input.order_id)
        assert routed is not None
        plan = routed.plan
        wanted = (
            {
                reservation_id(
                    input.order_id, a.line_id, attempts[a.line_id], a.location_id
                ): a.quantity
                for a in plan.assignments
            }
            if plan.outcome == "assigned" and not short
            else {}
        )
        # release whatever this attempt holds that the final plan does not use (all of it
        # when the last round still came up short)
        heartbeat("releasing unused reservations")
        for res in await self.store.inventory.reservations_for_order(input.order_id):
            if (
                res.reservation_id.startswith(prefixes)
                and res.reservation_id not in wanted
                and res.status in ("ACTIVE", "PICKED")
            ):
                await self.store.inventory.release(res.reservation_id, fence=fence)
        held = {
            r.reservation_id: r
            for r in await self.store.inventory.reservations_for_order(input.order_id)
            if r.reservation_id in wanted
            and r.status == "ACTIVE"
            and r.quantity == wanted[r.reservation_id]
        }
        outcome: RoutingOutcome = (
            plan.outcome if not short and len(held) == len(wanted) else "not_announced"
        )
        reasons = list(plan.reasons) or (
            [] if outcome == "assigned" else ["stock taken by other orders while routing"]
        )
        return RouteOrderResult(
            decisions=self._decisions(input, routed, held, outcome),
            outcome=outcome,
            reasons=reasons,
        )

    @staticmethod
    def _decisions(
        input: RouteOrderInput,
        routed: RoutedPlan,
        held: dict[str, ReservationRow],
        outcome: str,
    ) -> list[RoutingDecision]:
        plan = routed.plan
        decisions: list[RoutingDecision] = []
        for line in input.lines:
            candidates, omitted = explain(plan.explanations.get(line.line_id, []))
            mine = [a for a in plan.assignments if a.line_id == line.line_id]
            if outcome != "assigned" or not mine:
                reason = "; ".join(
                    r for r in plan.reasons if r.startswith(f"line {line.line_id}:")
                ) or ("; ".join(plan.reasons) or "not assigned")
                decisions.append(
                    RoutingDecision(
                        line_id=line.line_id,
                        attempt=line.attempt,
                        quantity=line.quantity,
                        candidates=candidates,
                        omitted_without_stock=omitted,
                        reason=reason,
                    )
                )
                continue
            for a in mine:
                rid = reservation_id(input.order_id, a.line_id, line.attempt, a.location_id)
                chosen = next((c for c in candidates if c.location_id == a.location_id), None)
                why = f"{a.location_id}: best score" + (
                    f" {chosen.score:.3f}" if chosen and chosen.score is not None else ""
                )
                if chosen and chosen.distance_km is not None:
                    why += f", {chosen.distance_km:.1f} km"
                if len(mine) > 1:
                    why += f" ({a.quantity} of {line.quantity} units)"
                transfer_to = routed.transfers.get(line.line_id)
                if transfer_to:
                    why += f"; transferred to {transfer_to} for pickup (no stock there)"
                decisions.append(
                    RoutingDecision(
                        line_id=line.line_id,
                        attempt=line.attempt,
                        quantity=a.quantity,
                        location_id=a.location_id,
                        reservation_id=held[rid].reservation_id,
                        candidates=candidates,
                        omitted_without_stock=omitted,
                        reason=why,
                        transfer_to=transfer_to,
                    )
                )
        return decisions

    @activity.defn(name="assign_locations")
    async def assign_locations(self, input: AssignLocationsInput) -> AssignLocationsResult:
        """Reserve an operator's manual choice; all lines or none."""
        return await self._fenced(lambda fence: self._assign_locations(input, fence))

    async def _assign_locations(
        self, input: AssignLocationsInput, fence: Fence | None
    ) -> AssignLocationsResult:
        refused: dict[str, str] = {}
        made: list[str] = []
        decisions: list[RoutingDecision] = []
        for line in input.lines:
            rid = reservation_id(input.order_id, line.line_id, line.attempt, line.location_id)
            heartbeat(f"reserving {rid}")
            ok = await self.store.inventory.reserve(
                reservation_id=rid,
                order_id=input.order_id,
                line_id=line.line_id,
                location_id=line.location_id,
                sku=line.sku,
                quantity=line.quantity,
                fence=fence,
            )
            if not ok:
                refused[line.line_id] = (
                    f"{line.location_id} has fewer than {line.quantity} x {line.sku} available"
                )
                continue
            made.append(rid)
            pickup = input.pickup_location_id
            transfer_to = pickup if pickup and pickup != line.location_id else None
            decisions.append(
                RoutingDecision(
                    line_id=line.line_id,
                    attempt=line.attempt,
                    quantity=line.quantity,
                    location_id=line.location_id,
                    reservation_id=rid,
                    reason=f"{line.location_id}: assigned manually"
                    + (f"; transferred to {transfer_to} for pickup" if transfer_to else ""),
                    transfer_to=transfer_to,
                )
            )
        if refused:
            heartbeat("releasing the lines reserved")
            for rid in made:
                await self.store.inventory.release(rid, fence=fence)
            decisions = []
        return AssignLocationsResult(decisions=decisions, refused=refused)
