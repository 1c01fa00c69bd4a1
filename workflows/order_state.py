"""Bookkeeping of one order's lines: deterministic, no I/O, shared by the workflow and tests.

A line's quantity is split into allocations (units reserved at one location by one
routing attempt) plus units still open (not yet routed, or backordered and waiting to
be re-routed). Line and order statuses are derived from those parts, the least
advanced part deciding, so a split line never looks further along than it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.model import (
    Event,
    FulfillmentProgress,
    LineStatus,
    LineView,
    OrderInput,
    OrderStatus,
    OrderView,
    ReleasePlan,
    ReleaseStatus,
    ReleaseView,
    RoutingDecision,
    SalesChannelConfig,
    ShipmentStatus,
    ShipmentView,
    handover_key,
)

AllocationState = Literal[
    "scheduled",
    "released",
    "picked",
    "shipped",
    "delivered",
    "backordered",
    "cancelled",
    # shipped, and brought back by the carrier (tracking): never delivered
    "returned_to_sender",
    # click and collect from another location: shipped to the pickup store, then there
    "in_transfer",
    "ready_for_pickup",
]
# units that have left the location that picked them (count as shipped)
GONE: tuple[AllocationState, ...] = (
    "shipped",
    "delivered",
    "returned_to_sender",
    "in_transfer",
    "ready_for_pickup",
)


def release_key(order_id: str, seq: int) -> str:
    return f"{order_id}-R{seq}"


def shipment_key(order_id: str, seq: int) -> str:
    return f"{order_id}-S{seq}"


def work_order_id(order_id: str, seq: int) -> str:
    return f"{order_id}-WO{seq}"


class Allocation(BaseModel):
    reservation_id: str
    location_id: str
    quantity: int
    state: AllocationState = "scheduled"
    release_key: str | None = None
    # click and collect: location_id transfers the units to this pickup store
    transfer_to: str | None = None


class LineProgress(BaseModel):
    line_id: str
    sku: str
    quantity: int
    open: int
    attempts: int = 0
    backordered: int = 0
    cancelled: int = 0
    allocations: list[Allocation] = Field(default_factory=list)

    def units(self, *states: AllocationState) -> int:
        return sum(a.quantity for a in self.allocations if a.state in states)

    def status(self) -> LineStatus:
        if self.cancelled >= self.quantity:
            return LineStatus.CANCELLED
        if self.open > 0:
            return LineStatus.BACKORDERED if self.backordered else LineStatus.CREATED
        if self.units("scheduled"):
            return LineStatus.SCHEDULED
        if self.units("released", "picked"):
            return LineStatus.RELEASED
        if self.units("in_transfer"):
            return LineStatus.IN_TRANSFER
        if self.units("ready_for_pickup"):
            return LineStatus.READY_FOR_PICKUP
        if self.units("shipped"):
            return LineStatus.SHIPPED
        if self.units("delivered"):
            return LineStatus.DELIVERED
        if self.units("returned_to_sender"):
            return LineStatus.RETURNED
        return LineStatus.CREATED

    @property
    def done(self) -> bool:
        return self.status() in (LineStatus.DELIVERED, LineStatus.CANCELLED, LineStatus.RETURNED)

    @property
    def current_location(self) -> str | None:
        live = [a for a in self.allocations if a.state not in ("backordered", "cancelled")]
        return live[-1].location_id if live else None


class OrderState(BaseModel):
    """Everything the order workflow remembers; also what continue-as-new would carry."""

    view: OrderView
    lines: dict[str, LineProgress]
    release_seq: int = 0
    return_seq: int = 0
    event_seq: int = 0
    # lines a cancel was asked for: units a location then reports missing are cancelled,
    # not re-routed
    cancelling: set[str] = Field(default_factory=set)
    # line_id -> cancelled units already on a CANCEL return (one return per unit)
    cancel_returned: dict[str, int] = Field(default_factory=dict)
    # work orders still to be sent to their location's webhook, those that were sent, and
    # release_key -> why sending fails (shown in hold_reasons); rejected: refused by the
    # partner (the order is ON_HOLD until resumed)
    undelivered: list[ReleasePlan] = Field(default_factory=list)
    sent_work_orders: list[str] = Field(default_factory=list)
    delivery_problems: dict[str, str] = Field(default_factory=dict)
    rejected_deliveries: list[str] = Field(default_factory=list)
    unpublished_events: list[Event] = Field(default_factory=list)

    @classmethod
    def for_order(cls, order: OrderInput, now: datetime) -> OrderState:
        """A new order's state: every line CREATED with all its units open."""
        view = OrderView(
            order_id=order.order_id,
            sales_channel=order.sales_channel,
            customer_id=order.customer.id,
            status=OrderStatus.CREATED,
            created_at=now,
            updated_at=now,
            total=order.total,
            currency=order.payment.currency,
            lines=[
                LineView(
                    line_id=line.line_id,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                )
                for line in order.lines
            ],
        )
        return cls(
            view=view,
            lines={
                line.line_id: LineProgress(
                    line_id=line.line_id, sku=line.sku, quantity=line.quantity, open=line.quantity
                )
                for line in order.lines
            },
        )

    # ------------------------------------------------------------------ events
    def event(self, at: datetime, kind: str, detail: str = "") -> None:
        self.event_seq += 1
        ev = Event(seq=self.event_seq, at=at, type=kind, detail=detail)
        self.view.events.append(ev)
        self.unpublished_events.append(ev)
        self.view.updated_at = at

    def take_events(self) -> list[Event]:
        events, self.unpublished_events = self.unpublished_events, []
        return events

    # ------------------------------------------------------------------ routing
    def lines_to_route(self) -> list[LineProgress]:
        return [
            p
            for p in self.lines.values()
            if p.open > 0 and p.cancelled < p.quantity and p.line_id not in self.cancelling
        ]

    def apply_routing(self, decision: RoutingDecision) -> None:
        self.view.routing.append(decision)
        progress = self.lines[decision.line_id]
        progress.attempts = max(progress.attempts, decision.attempt)
        if decision.location_id and decision.reservation_id:
            progress.allocations.append(
                Allocation(
                    reservation_id=decision.reservation_id,
                    location_id=decision.location_id,
                    quantity=decision.quantity,
                    transfer_to=decision.transfer_to,
                )
            )
            progress.open -= decision.quantity
            progress.backordered = min(progress.backordered, progress.open)

    # ------------------------------------------------------------------ release
    def scheduled_by_location(self) -> dict[str, list[tuple[str, Allocation]]]:
        """Scheduled allocations per release to make: per location, and apart from those
        a location transfers to a pickup store (key `{location}>{store}`)."""
        grouped: dict[str, list[tuple[str, Allocation]]] = {}
        for progress in self.lines.values():
            for alloc in progress.allocations:
                if alloc.state == "scheduled":
                    key = alloc.location_id
                    if alloc.transfer_to:
                        key = f"{alloc.location_id}>{alloc.transfer_to}"
                    grouped.setdefault(key, []).append((progress.line_id, alloc))
        return dict(sorted(grouped.items()))

    def start_release(self, allocations: list[Allocation]) -> int:
        """Hand scheduled allocations to a new release; returns its sequence number."""
        self.release_seq += 1
        for alloc in allocations:
            alloc.state = "released"
            alloc.release_key = release_key(self.view.order_id, self.release_seq)
        self.refresh_lines()
        return self.release_seq

    def _allocations_of(self, release_key: str) -> list[tuple[LineProgress, Allocation]]:
        return [
            (p, a)
            for p in self.lines.values()
            for a in p.allocations
            if a.release_key == release_key
        ]

    def apply_progress(
        self, progress: FulfillmentProgress, at: datetime, *, once: bool = True
    ) -> bool:
        """Fold a fulfillment child's report into lines, releases and shipments.

        With `once`, each step of each line of a release applies at most once, in order
        (released -> picked -> shipped -> delivered, or cancelled before shipping), with
        quantities no larger than released: a repeated, late or made-up report changes
        nothing. Returns whether anything changed."""
        allocs = self._allocations_of(progress.release_key)
        if once:
            allocs = [
                (line, alloc)
                for line, alloc in allocs
                if self._applies(progress, line.line_id, alloc)
            ]
            if not allocs:
                return False
        if progress.kind == "released":
            added = False
            for line, alloc in allocs:
                if once and any(
                    r.release_key == progress.release_key and r.line_id == line.line_id
                    for r in self.view.releases
                ):
                    continue
                added = True
                for rel in self.view.releases:
                    if rel.line_id == line.line_id:
                        rel.status_quantity = 0
                self.view.releases.append(
                    ReleaseView(
                        release_key=progress.release_key,
                        line_id=line.line_id,
                        location_id=alloc.location_id,
                        quantity=alloc.quantity,
                        status=ReleaseStatus.RELEASED,
                        status_quantity=1,
                        created_at=at,
                    )
                )
                self.view.shipments.append(
                    ShipmentView(
                        shipment_key=progress.shipment_key,
                        release_key=progress.release_key,
                        line_id=line.line_id,
                        location_id=alloc.location_id,
                    )
                )
                if alloc.transfer_to:  # the pickup store's hand-over, once the units arrive
                    self.view.shipments.append(
                        ShipmentView(
                            shipment_key=handover_key(progress.shipment_key),
                            release_key=progress.release_key,
                            line_id=line.line_id,
                            location_id=alloc.transfer_to,
                            status=ShipmentStatus.AWAITING_TRANSFER,
                        )
                    )
            return added or not once
        for line, alloc in allocs:
            lid = line.line_id
            if progress.kind == "picked" and lid in progress.quantities:
                picked = progress.quantities[lid]
                missing = progress.backordered.get(lid, alloc.quantity - picked)
                alloc.quantity = picked
                alloc.state = "picked" if picked else "backordered"
                if lid in self.cancelling:
                    line.cancelled += missing
                else:
                    line.open += missing
                    line.backordered += missing
                self._set_release(
                    progress,
                    lid,
                    ReleaseStatus.PICKED if picked else ReleaseStatus.BACKORDERED,
                    ShipmentStatus.PICKED if picked else ShipmentStatus.BACKORDERED,
                )
                if alloc.transfer_to and not picked:
                    key = handover_key(progress.shipment_key)
                    self._set_shipment(key, lid, ShipmentStatus.BACKORDERED)
            elif progress.kind == "shipped" and lid in progress.quantities:
                alloc.state = "shipped"
                self._set_release(
                    progress,
                    lid,
                    ReleaseStatus.SHIPPED,
                    ShipmentStatus.SHIPPED,
                    quantity=progress.quantities[lid],
                )
            elif progress.kind == "in_transfer" and lid in progress.quantities:
                alloc.state = "in_transfer"
                self._set_release(
                    progress,
                    lid,
                    ReleaseStatus.SHIPPED,
                    ShipmentStatus.SHIPPED,
                    quantity=progress.quantities[lid],
                )
            elif progress.kind == "ready_for_pickup" and lid in progress.quantities:
                alloc.state = "ready_for_pickup"
                # the transfer arrived; the store's hand-over is the shipment now
                self._set_release(progress, lid, ReleaseStatus.SHIPPED, ShipmentStatus.DELIVERED)
                self._set_shipment(
                    handover_key(progress.shipment_key),
                    lid,
                    ShipmentStatus.READY_FOR_PICKUP,
                    progress.quantities[lid],
                )
            elif progress.kind == "delivered" and lid in progress.quantities:
                handed_over = alloc.state == "ready_for_pickup"
                alloc.state = "delivered"
                self._set_release(progress, lid, ReleaseStatus.DELIVERED, ShipmentStatus.DELIVERED)
                if handed_over:
                    self._set_shipment(
                        handover_key(progress.shipment_key), lid, ShipmentStatus.DELIVERED
                    )
            elif progress.kind == "returned_to_sender" and lid in progress.quantities:
                alloc.state = "returned_to_sender"
                self._set_release(
                    progress,
                    lid,
                    ReleaseStatus.RETURNED_TO_SENDER,
                    ShipmentStatus.RETURNED_TO_SENDER,
                )
            elif progress.kind == "cancelled" and lid in progress.quantities:
                line.cancelled += alloc.quantity
                alloc.state = "cancelled"
                self._set_release(progress, lid, ReleaseStatus.CANCELLED, ShipmentStatus.CANCELLED)
                if alloc.transfer_to:
                    key = handover_key(progress.shipment_key)
                    self._set_shipment(key, lid, ShipmentStatus.CANCELLED)
        self.refresh_lines()
        return True

    def _applies(self, progress: FulfillmentProgress, line_id: str, alloc: Allocation) -> bool:
        """Whether this report is the next step of this line's allocation (see
        apply_progress), with a quantity it can have."""
        if progress.kind == "released":
            return alloc.state == "released"
        if line_id not in progress.quantities:
            return False
        quantity = progress.quantities[line_id]
        if progress.kind == "picked":
            missing = progress.backordered.get(line_id, alloc.quantity - quantity)
            return (
                alloc.state == "released"
                and 0 <= quantity <= alloc.quantity
                and missing == alloc.quantity - quantity
            )
        if progress.kind in ("shipped", "in_transfer"):
            return (
                alloc.state == "picked"
                and 0 < quantity <= alloc.quantity
                and (progress.kind == "in_transfer") == bool(alloc.transfer_to)
            )
        if progress.kind == "ready_for_pickup":
            return alloc.state == "in_transfer"
        if progress.kind == "delivered":
            return alloc.state == ("ready_for_pickup" if alloc.transfer_to else "shipped")
        if progress.kind == "returned_to_sender":
            return alloc.state == "shipped"
        # cancelled: only what this order asked its location to cancel
        return alloc.state in ("released", "picked") and line_id in self.cancelling

    def _set_shipment(
        self, key: str, line_id: str, status: ShipmentStatus, quantity: int | None = None
    ) -> None:
        for ship in self.view.shipments:
            if ship.shipment_key == key and ship.line_id == line_id:
                ship.status = status
                if quantity is not None:
                    ship.quantity = quantity

    def _set_release(
        self,
        progress: FulfillmentProgress,
        line_id: str,
        release: ReleaseStatus,
        shipment: ShipmentStatus,
        quantity: int | None = None,
    ) -> None:
        for rel in self.view.releases:
            if rel.release_key == progress.release_key and rel.line_id == line_id:
                rel.status = release
        for ship in self.view.shipments:
            if ship.shipment_key == progress.shipment_key and ship.line_id == line_id:
                ship.status = shipment
                if quantity is not None:
                    ship.quantity = quantity
                if progress.carrier:
                    ship.carrier = progress.carrier
                    ship.tracking_number = progress.tracking_number

    # ------------------------------------------------------------------ cancel
    def cancel_unreleased(self, line_ids: list[str]) -> list[str]:
        """Cancel open and scheduled units of these lines; returns reservations to release."""
        to_release: list[str] = []
        for lid in line_ids:
            line = self.lines[lid]
            line.cancelled += line.open
            line.open = 0
            line.backordered = 0
            for alloc in line.allocations:
                if alloc.state == "scheduled":
                    alloc.state = "cancelled"
                    line.cancelled += alloc.quantity
                    to_release.append(alloc.reservation_id)
        self.refresh_lines()
        return to_release

    def unschedule(self) -> list[str]:
        """Take back every scheduled (reserved, not released) allocation so its units can be
        routed again; returns the reservations to release."""
        released: list[str] = []
        for line in self.lines.values():
            keep = []
            for alloc in line.allocations:
                if alloc.state == "scheduled":
                    line.open += alloc.quantity
                    released.append(alloc.reservation_id)
                else:
                    keep.append(alloc)
            line.allocations = keep
        self.refresh_lines()
        return released

    def cancel_open_units(self, line_ids: list[str]) -> None:
        for lid in line_ids:
            line = self.lines[lid]
            line.cancelled += line.open
            line.open = 0
            line.backordered = 0
        self.refresh_lines()

    def releases_holding(self, line_ids: list[str]) -> dict[str, list[str]]:
        """release_key -> lines of it still cancellable (released or picked, not shipped)."""
        result: dict[str, list[str]] = {}
        for lid in line_ids:
            for alloc in self.lines[lid].allocations:
                if alloc.state in ("released", "picked") and alloc.release_key:
                    result.setdefault(alloc.release_key, []).append(lid)
        return result

    def release_waiting_for_pick(self, release_key: str) -> bool:
        """Some line of this release is still at its location unpicked (its work order still
        matters); False once everything of it is picked, cancelled or moved on."""
        return any(a.state == "released" for _, a in self._allocations_of(release_key))

    def nothing_left_to_do(self) -> bool:
        """Every line is cancelled, or being cancelled with nothing of it shipped."""
        return all(
            p.cancelled >= p.quantity or (p.line_id in self.cancelling and not p.units(*GONE))
            for p in self.lines.values()
        )

    def take_cancelled_for_return(self, line_ids: list[str]) -> dict[str, int]:
        """Cancelled units of these lines not yet on a CANCEL return, now counted as on
        one: two cancels racing for the same units put them on one return only."""
        taken: dict[str, int] = {}
        for lid in line_ids:
            line = self.lines[lid]
            new = line.cancelled - self.cancel_returned.get(lid, 0)
            if new > 0:
                taken[lid] = new
                self.cancel_returned[lid] = line.cancelled
        return taken

    def cancellable(self, line_ids: list[str]) -> list[str]:
        """Lines with units that have not shipped yet."""
        return [
            lid
            for lid in line_ids
            if self.lines[lid].open or self.lines[lid].units("scheduled", "released", "picked")
        ]

    def active_reservations(self) -> list[str]:
        return [
            a.reservation_id
            for p in self.lines.values()
            for a in p.allocations
            if a.state == "scheduled"
        ]

    # ------------------------------------------------------------------ statuses
    def refresh_lines(self) -> None:
        for view_line in self.view.lines:
            progress = self.lines[view_line.line_id]
            view_line.status = progress.status()
            view_line.location_id = progress.current_location
            # units brought back undelivered shipped all the same, and so did units on
            # their way to (or at) a pickup store
            view_line.shipped_quantity = progress.units(*GONE)
            view_line.delivered_quantity = progress.units("delivered")
            view_line.cancelled_quantity = progress.cancelled

    def fulfillment_status(self) -> OrderStatus:
        statuses = [p.status() for p in self.lines.values()]
        live = [s for s in statuses if s != LineStatus.CANCELLED]
        if not live:
            return OrderStatus.CANCELLED
        if all(s == LineStatus.DELIVERED for s in live):
            return OrderStatus.DELIVERED
        if all(s in (LineStatus.DELIVERED, LineStatus.RETURNED) for s in live):
            # some or all units came back undelivered (returned to sender)
            if any(s == LineStatus.DELIVERED for s in live):
                return OrderStatus.DELIVERED
            return OrderStatus.RETURNED
        if all(s in (LineStatus.SHIPPED, LineStatus.DELIVERED) for s in live):
            return OrderStatus.SHIPPED
        if all(s in (LineStatus.READY_FOR_PICKUP, LineStatus.DELIVERED) for s in live):
            return OrderStatus.READY_FOR_PICKUP
        if any(p.units("shipped", "delivered", "returned_to_sender") for p in self.lines.values()):
            return OrderStatus.PARTIALLY_SHIPPED
        return OrderStatus.IN_FULFILLMENT

    @property
    def all_done(self) -> bool:
        return all(p.done for p in self.lines.values())

    def locations(self) -> list[str]:
        return sorted(
            {
                a.location_id
                for p in self.lines.values()
                for a in p.allocations
                if a.state not in ("backordered", "cancelled")
            }
        )


# events and routing explanations an order keeps in its own view across continue-as-new;
# the store's event log keeps them all
CARRIED_EVENTS = 100


class OrderCarry(BaseModel):
    """What a new run of an order takes over from the run that continued as new: the order
    input travels beside it, everything else the workflow remembers is here."""

    model_config = ConfigDict(extra="ignore")
    state: OrderState
    channel: SalesChannelConfig
    stock_waits: int = 0
    route_due: bool = True
    runs: int = 1

    @classmethod
    def of(
        cls,
        state: OrderState,
        channel: SalesChannelConfig,
        *,
        stock_waits: int,
        route_due: bool,
        runs: int,
    ) -> OrderCarry:
        carried = state.model_copy(deep=True)
        view = carried.view
        view.events = view.events[-CARRIED_EVENTS:]
        latest: dict[tuple[str, str | None], RoutingDecision] = {}
        for decision in view.routing:
            latest[(decision.line_id, decision.location_id)] = decision
        view.routing = list(latest.values())
        return cls(
            state=carried, channel=channel, stock_waits=stock_waits, route_due=route_due, runs=runs
        )


class OrderOutcome(BaseModel):
    """The order workflow's result: how it ended (the whole view is the `state` query's)."""

    model_config = ConfigDict(extra="ignore")
    order_id: str
    status: OrderStatus
    runs: int = 1


class OrderWorkflowInput(OrderInput):
    """The order workflow's input: the posted order, and in a run that an earlier run
    continued as new, what that run carried over. Tolerant of fields it does not know,
    as every type a running history holds must be."""

    model_config = ConfigDict(extra="ignore")
    carried: OrderCarry | None = None

    def order(self) -> OrderInput:
        return OrderInput.model_validate(self.model_dump(exclude={"carried"}))
