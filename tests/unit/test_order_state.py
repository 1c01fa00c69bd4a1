"""OrderState / LineProgress: the line and order bookkeeping the order workflow relies on."""

from __future__ import annotations

from datetime import UTC, datetime

from workflows.model import (
    FulfillmentProgress,
    LineStatus,
    OrderInput,
    OrderStatus,
    ReleaseStatus,
    RoutingDecision,
    ShipmentStatus,
)
from workflows.order_state import OrderState, release_key, shipment_key

NOW = datetime(2025, 1, 13, 9, 0, tzinfo=UTC)
OID = "WEB-1001"


def make_order(*quantities: int) -> OrderInput:
    return OrderInput.model_validate(
        {
            "order_id": OID,
            "sales_channel": "web",
            "customer": {"id": "C-1"},
            "ship_to": {"line1": "Main St 1", "city": "Berlin", "postal_code": "10115",
                        "country": "DE", "lat": 52.52, "lon": 13.40},
            "lines": [
                {"line_id": str(i), "sku": f"SKU-{i}", "quantity": q, "unit_price": "10.00"}
                for i, q in enumerate(quantities, start=1)
            ],
            "payment": {"method": "card", "amount": "0", "currency": "EUR", "authorized": True},
        }
    )  # fmt: skip


def make_state(*quantities: int) -> OrderState:
    return OrderState.for_order(make_order(*quantities), NOW)


def route(state: OrderState, line_id: str, location: str, quantity: int | None = None) -> None:
    progress = state.lines[line_id]
    attempt = progress.attempts + 1
    state.apply_routing(
        RoutingDecision(
            line_id=line_id,
            attempt=attempt,
            quantity=progress.open if quantity is None else quantity,
            location_id=location,
            reservation_id=f"{OID}:{line_id}:{attempt}",
            reason=f"{location}: nearest with stock",
        )
    )
    state.refresh_lines()  # as OrderWorkflow._route does after applying decisions


def release(state: OrderState, location: str) -> int:
    """Release every scheduled allocation at a location, as the child reports it."""
    items = state.scheduled_by_location()[location]
    seq = state.start_release([alloc for _, alloc in items])
    report(state, seq, location, "released", {lid: a.quantity for lid, a in items})
    return seq


def report(
    state: OrderState,
    seq: int,
    location: str,
    kind: str,
    quantities: dict[str, int],
    backordered: dict[str, int] | None = None,
) -> None:
    state.apply_progress(
        FulfillmentProgress(
            release_key=release_key(OID, seq),
            shipment_key=shipment_key(OID, seq),
            location_id=location,
            kind=kind,
            quantities=quantities,
            backordered=backordered or {},
            carrier="DHL" if kind == "shipped" else None,
            tracking_number="TRK-1" if kind == "shipped" else None,
        ),
        NOW,
    )


def releases_of(state: OrderState, line_id: str):
    return [r for r in state.view.releases if r.line_id == line_id]


def shipments_of(state: OrderState, line_id: str):
    return [s for s in state.view.shipments if s.line_id == line_id]


# ---------------------------------------------------------------------------- routing


def test_new_order_lines_are_created_and_all_need_routing():
    state = make_state(3, 1)
    assert [line.status for line in state.view.lines] == [LineStatus.CREATED] * 2
    assert [p.line_id for p in state.lines_to_route()] == ["1", "2"]


def test_routing_decision_schedules_line_at_location():
    state = make_state(3)
    route(state, "1", "WH-A")
    assert state.lines["1"].status() == LineStatus.SCHEDULED
    line = state.view.line("1")
    assert line.status == LineStatus.SCHEDULED
    assert line.location_id == "WH-A"
    assert state.lines_to_route() == []
    assert state.active_reservations() == [f"{OID}:1:1"]
    assert state.view.routing[0].location_id == "WH-A"


def test_routing_decision_without_location_leaves_line_open():
    state = make_state(3)
    state.apply_routing(RoutingDecision(line_id="1", attempt=1, quantity=3, reason="no stock"))
    state.refresh_lines()
    assert state.view.line("1").status == LineStatus.CREATED
    assert state.view.line("1").location_id is None
    assert [p.line_id for p in state.lines_to_route()] == ["1"]
    assert len(state.view.routing) == 1


# ---------------------------------------------------------------------------- release


def test_release_writes_current_release_row_and_empty_shipment_row():
    state = make_state(3)
    route(state, "1", "WH-A")
    seq = release(state, "WH-A")
    assert state.view.line("1").status == LineStatus.RELEASED
    (rel,) = releases_of(state, "1")
    assert rel.release_key == release_key(OID, seq)
    assert rel.location_id == "WH-A"
    assert rel.status == ReleaseStatus.RELEASED
    assert rel.status_quantity == 1
    (ship,) = shipments_of(state, "1")
    assert ship.shipment_key == shipment_key(OID, seq)
    assert ship.release_key == rel.release_key
    assert ship.quantity == 0
    assert ship.status == ShipmentStatus.OPEN


def test_release_groups_lines_of_one_location():
    state = make_state(3, 1)
    route(state, "1", "WH-A")
    route(state, "2", "WH-A")
    release(state, "WH-A")
    assert {r.release_key for r in state.view.releases} == {release_key(OID, 1)}
    assert state.fulfillment_status() == OrderStatus.IN_FULFILLMENT


# ---------------------------------------------------------------------------- short pick


def test_short_pick_backorders_missing_units_for_rerouting():
    state = make_state(3)
    route(state, "1", "WH-A")
    seq = release(state, "WH-A")
    report(state, seq, "WH-A", "picked", {"1": 1}, backordered={"1": 2})
    line = state.lines["1"]
    assert line.status() == LineStatus.BACKORDERED
    assert state.view.line("1").status == LineStatus.BACKORDERED
    assert line.open == 2
    assert [p.line_id for p in state.lines_to_route()] == ["1"]
    assert shipments_of(state, "1")[0].status == ShipmentStatus.PICKED


def test_reroute_after_short_pick_creates_new_current_release():
    state = make_state(3)
    route(state, "1", "WH-A")
    first = release(state, "WH-A")
    report(state, first, "WH-A", "picked", {"1": 1}, backordered={"1": 2})
    route(state, "1", "WH-B")
    assert state.lines["1"].allocations[-1].quantity == 2
    second = release(state, "WH-B")
    assert second != first
    rows = releases_of(state, "1")
    assert [r.release_key for r in rows] == [release_key(OID, first), release_key(OID, second)]
    assert [r.status_quantity for r in rows] == [0, 1]
    assert rows[1].location_id == "WH-B"
    ships = shipments_of(state, "1")
    assert [s.shipment_key for s in ships] == [shipment_key(OID, first), shipment_key(OID, second)]
    assert ships[1].quantity == 0
    assert state.view.line("1").location_id == "WH-B"
    assert state.lines_to_route() == []


def test_nothing_found_keeps_first_shipment_at_zero_after_rerelease():
    state = make_state(3)
    route(state, "1", "WH-A")
    first = release(state, "WH-A")
    report(state, first, "WH-A", "picked", {"1": 0}, backordered={"1": 3})
    assert state.lines["1"].open == 3
    assert state.view.line("1").status == LineStatus.BACKORDERED
    route(state, "1", "WH-B")
    release(state, "WH-B")
    rows = releases_of(state, "1")
    assert len(rows) == 2
    assert sum(r.status_quantity for r in rows) == 1
    assert rows[0].status == ReleaseStatus.BACKORDERED
    first_ship = shipments_of(state, "1")[0]
    assert first_ship.quantity == 0
    assert first_ship.status == ShipmentStatus.BACKORDERED
    assert state.view.line("1").location_id == "WH-B"


# ---------------------------------------------------------------------------- ship / deliver


def test_split_line_ships_partially_then_fully_then_is_delivered():
    state = make_state(3)
    route(state, "1", "WH-A")
    first = release(state, "WH-A")
    report(state, first, "WH-A", "picked", {"1": 1}, backordered={"1": 2})
    route(state, "1", "WH-B")
    second = release(state, "WH-B")

    report(state, first, "WH-A", "shipped", {"1": 1})
    assert state.fulfillment_status() == OrderStatus.PARTIALLY_SHIPPED
    assert state.view.line("1").shipped_quantity == 1
    assert shipments_of(state, "1")[0].quantity == 1
    assert shipments_of(state, "1")[0].tracking_number == "TRK-1"

    report(state, second, "WH-B", "picked", {"1": 2})
    report(state, second, "WH-B", "shipped", {"1": 2})
    assert state.view.line("1").status == LineStatus.SHIPPED
    assert state.view.line("1").shipped_quantity == 3
    assert state.fulfillment_status() == OrderStatus.SHIPPED

    report(state, first, "WH-A", "delivered", {"1": 1})
    assert state.fulfillment_status() == OrderStatus.SHIPPED
    report(state, second, "WH-B", "delivered", {"1": 2})
    assert state.view.line("1").status == LineStatus.DELIVERED
    assert state.view.line("1").delivered_quantity == 3
    assert state.fulfillment_status() == OrderStatus.DELIVERED
    assert state.all_done


def test_one_line_shipped_of_two_is_partially_shipped():
    state = make_state(1, 1)
    route(state, "1", "WH-A")
    route(state, "2", "WH-B")
    a = release(state, "WH-A")
    release(state, "WH-B")
    report(state, a, "WH-A", "picked", {"1": 1})
    report(state, a, "WH-A", "shipped", {"1": 1})
    assert state.view.line("1").status == LineStatus.SHIPPED
    assert state.view.line("2").status == LineStatus.RELEASED
    assert state.fulfillment_status() == OrderStatus.PARTIALLY_SHIPPED


# ---------------------------------------------------------------------------- cancel


def test_cancel_unreleased_returns_scheduled_reservations_and_cancels_lines():
    state = make_state(3, 1)
    route(state, "1", "WH-A")
    route(state, "2", "WH-B")
    released = state.cancel_unreleased(["1", "2"])
    assert sorted(released) == [f"{OID}:1:1", f"{OID}:2:1"]
    assert [line.status for line in state.view.lines] == [LineStatus.CANCELLED] * 2
    assert state.view.line("1").cancelled_quantity == 3
    assert state.active_reservations() == []
    assert state.fulfillment_status() == OrderStatus.CANCELLED
    assert state.all_done


def test_cancel_unrouted_line_releases_nothing():
    state = make_state(2)
    assert state.cancel_unreleased(["1"]) == []
    assert state.view.line("1").status == LineStatus.CANCELLED
    assert state.lines_to_route() == []


def test_cancel_unreleased_leaves_released_line_to_its_location():
    state = make_state(1, 1)
    route(state, "1", "WH-A")
    route(state, "2", "WH-B")
    release(state, "WH-A")
    assert state.cancel_unreleased(["1", "2"]) == [f"{OID}:2:1"]
    assert state.view.line("1").status == LineStatus.RELEASED
    assert state.releases_holding(["1", "2"]) == {release_key(OID, 1): ["1"]}
    assert state.fulfillment_status() == OrderStatus.IN_FULFILLMENT


def test_cancelled_report_nobody_asked_for_changes_nothing():
    state = make_state(2)
    route(state, "1", "WH-A")
    seq = release(state, "WH-A")
    report(state, seq, "WH-A", "cancelled", {"1": 1})
    assert state.view.line("1").status == LineStatus.RELEASED
    assert state.lines["1"].cancelled == 0


def test_cancelled_report_from_location_cancels_released_line():
    state = make_state(2)
    route(state, "1", "WH-A")
    seq = release(state, "WH-A")
    state.cancelling.add("1")  # the order asked the location to cancel the line
    report(state, seq, "WH-A", "cancelled", {"1": 1})
    assert state.view.line("1").status == LineStatus.CANCELLED
    assert releases_of(state, "1")[0].status == ReleaseStatus.CANCELLED
    assert shipments_of(state, "1")[0].status == ShipmentStatus.CANCELLED
    assert state.fulfillment_status() == OrderStatus.CANCELLED


def test_cancellable_excludes_shipped_lines():
    state = make_state(1, 1, 1)
    route(state, "1", "WH-A")
    route(state, "2", "WH-A")
    seq = release(state, "WH-A")
    report(state, seq, "WH-A", "picked", {"1": 1, "2": 1})
    report(state, seq, "WH-A", "shipped", {"1": 1})
    # line 3 is still unrouted, line 2 picked but not shipped, line 1 shipped
    assert state.cancellable(["1", "2", "3"]) == ["2", "3"]


def test_delivered_line_is_not_cancellable():
    state = make_state(1)
    route(state, "1", "WH-A")
    seq = release(state, "WH-A")
    report(state, seq, "WH-A", "picked", {"1": 1})
    report(state, seq, "WH-A", "shipped", {"1": 1})
    report(state, seq, "WH-A", "delivered", {"1": 1})
    assert state.cancellable(["1"]) == []


def test_cancelled_and_delivered_lines_make_a_delivered_order():
    state = make_state(1, 1)
    route(state, "1", "WH-A")
    state.cancel_unreleased(["2"])
    seq = release(state, "WH-A")
    report(state, seq, "WH-A", "picked", {"1": 1})
    report(state, seq, "WH-A", "shipped", {"1": 1})
    report(state, seq, "WH-A", "delivered", {"1": 1})
    assert state.fulfillment_status() == OrderStatus.DELIVERED


def test_cancelling_backordered_units_after_partial_pick_keeps_picked_unit():
    state = make_state(3)
    route(state, "1", "WH-A")
    seq = release(state, "WH-A")
    report(state, seq, "WH-A", "picked", {"1": 1}, backordered={"1": 2})
    assert state.cancel_unreleased(["1"]) == []
    assert state.lines_to_route() == []
    assert state.view.line("1").cancelled_quantity == 2
    assert state.view.line("1").status == LineStatus.RELEASED


# ---------------------------------------------------------------------------- events


def test_events_are_numbered_and_handed_out_once():
    state = make_state(1)
    later = datetime(2025, 1, 13, 10, 0, tzinfo=UTC)
    state.event(NOW, "order_created")
    state.event(later, "line_routed", "line 1")
    assert [e.seq for e in state.view.events] == [1, 2]
    assert state.view.updated_at == later
    assert [e.type for e in state.take_events()] == ["order_created", "line_routed"]
    assert state.take_events() == []
