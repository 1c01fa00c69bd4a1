"""Sourcing engine (DOSE): identify candidates, score them, optimize the whole order."""

from __future__ import annotations

import pytest

from activities import sourcing
from activities.sourcing import (
    CandidateScore,
    Demand,
    Site,
    SourcingPlan,
    Strategy,
    atp,
    source_order,
)

BERLIN = (52.52, 13.405)
POTSDAM = (52.3906, 13.0645)  # ~27 km from Berlin
LEIPZIG = (51.3397, 12.3731)  # ~150 km
HAMBURG = (53.5511, 9.9937)  # ~255 km
MUNICH = (48.1351, 11.582)  # ~504 km

Stock = dict[tuple[str, str], int]


def site(location_id: str, at: tuple[float, float] = BERLIN, **kw: object) -> Site:
    kind = kw.pop("type", "warehouse")
    return Site(location_id, kind, at[0], at[1], **kw)  # type: ignore[arg-type]


def line(line_id: str, sku: str = "SKU-A", quantity: int = 1) -> Demand:
    return Demand(line_id, sku, quantity)


def shipped(plan: SourcingPlan) -> dict[str, list[tuple[str, int]]]:
    """line_id -> [(location_id, quantity), ...]"""
    out: dict[str, list[tuple[str, int]]] = {}
    for a in plan.assignments:
        out.setdefault(a.line_id, []).append((a.location_id, a.quantity))
    return out


def source(
    lines: list[Demand],
    sites: list[Site],
    stock: Stock,
    strategy: Strategy | None = None,
    ship_to: tuple[float, float] | None = BERLIN,
    **kw: str,
) -> SourcingPlan:
    return source_order(lines, sites, stock, ship_to, strategy or Strategy(), **kw)


def candidate(plan: SourcingPlan, line_id: str, location_id: str) -> CandidateScore:
    return next(c for c in plan.explanations[line_id] if c.location_id == location_id)


# --------------------------------------------------------------------------- ATP


def test_atp_is_on_hand_less_reserved_less_buffer_never_negative():
    assert atp(10, 3, 2) == 5
    assert atp(10, 3) == 7
    assert atp(4, 3, 2) == 0


def test_buffer_can_take_a_location_out_of_the_candidates():
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH)]
    lines = [line("1", quantity=3)]
    no_buffer = {("NEAR", "SKU-A"): atp(5, 1, 0), ("FAR", "SKU-A"): atp(9, 0, 0)}
    buffered = {("NEAR", "SKU-A"): atp(5, 1, 2), ("FAR", "SKU-A"): atp(9, 0, 2)}
    assert source(lines, sites, no_buffer).locations == ["NEAR"]
    plan = source(lines, sites, buffered)
    assert plan.locations == ["FAR"]
    assert candidate(plan, "1", "NEAR").rejected_reason == "not enough stock: 2 < 3"


# --------------------------------------------------------------------------- scoring


def _three_sites() -> tuple[list[Site], Stock]:
    sites = [
        site("NEAR", POTSDAM, daily_capacity=100, backlog=95, cost_per_shipment=9.0),
        site("MID", LEIPZIG, daily_capacity=100, backlog=10, cost_per_shipment=5.0, priority=1),
        site("FAR", MUNICH, daily_capacity=100, backlog=50, cost_per_shipment=2.0, priority=5),
    ]
    stock = {("NEAR", "SKU-A"): 2, ("MID", "SKU-A"): 5, ("FAR", "SKU-A"): 40}
    return sites, stock


@pytest.mark.parametrize(
    ("strategy", "winner"),
    [
        (Strategy(w_distance=1), "NEAR"),
        (Strategy(w_distance=0, w_stock=1), "FAR"),
        (Strategy(w_distance=0, w_backlog=1), "MID"),
        (Strategy(w_distance=0, w_cost=1), "FAR"),
        (Strategy(w_distance=0, w_priority=1), "FAR"),
        (Strategy(w_distance=1, w_backlog=2), "MID"),
    ],
    ids=["distance", "stock", "backlog", "cost", "priority", "distance+backlog"],
)
def test_weights_change_the_chosen_location(strategy: Strategy, winner: str):
    sites, stock = _three_sites()
    plan = source([line("1", quantity=2)], sites, stock, strategy)
    assert plan.outcome == "assigned"
    assert plan.locations == [winner]
    assert plan.explanations["1"][0].location_id == winner


def test_score_is_the_weighted_sum_of_normalized_parts():
    sites, stock = _three_sites()
    strategy = Strategy(w_distance=1, w_stock=0.5, w_backlog=0.25, w_cost=2, w_priority=3)
    plan = source([line("1", quantity=2)], sites, stock, strategy)
    for c in plan.explanations["1"]:
        assert set(c.parts) == {"distance", "stock", "backlog", "cost", "priority"}
        assert all(0.0 <= v <= 1.0 for v in c.parts.values())
        weighted = (
            c.parts["distance"]
            + 0.5 * c.parts["stock"]
            + 0.25 * c.parts["backlog"]
            + 2 * c.parts["cost"]
            + 3 * c.parts["priority"]
        )
        assert c.score == pytest.approx(weighted)
    far = candidate(plan, "1", "FAR")
    assert far.parts == pytest.approx(
        {"distance": 0.0, "stock": 1.0, "backlog": 0.5, "cost": 1 - 2 / 9, "priority": 1.0}
    )
    near = candidate(plan, "1", "NEAR")
    assert near.parts["backlog"] == pytest.approx(0.05)
    assert near.parts["cost"] == 0.0


def test_backlog_over_capacity_scores_zero_not_negative():
    plan = source(
        [line("1")], [site("BUSY", daily_capacity=10, backlog=25)], {("BUSY", "SKU-A"): 1}
    )
    assert candidate(plan, "1", "BUSY").parts["backlog"] == 0.0


def test_equal_scores_break_ties_by_location_id_whatever_the_site_order():
    stock = {(loc, "SKU-A"): 5 for loc in ("B", "A", "C")}
    for order in (["B", "A", "C"], ["C", "B", "A"]):
        plan = source([line("1")], [site(loc, POTSDAM) for loc in order], stock)
        assert plan.locations == ["A"]
        assert [c.location_id for c in plan.explanations["1"]] == ["A", "B", "C"]


def test_explanation_lists_every_site_scored_ones_first_best_first():
    sites = [site("OFF", POTSDAM, enabled=False), site("FAR", MUNICH), site("NEAR", LEIPZIG)]
    stock = {("OFF", "SKU-A"): 9, ("FAR", "SKU-A"): 9, ("NEAR", "SKU-A"): 9}
    plan = source([line("1")], sites, stock)
    explained = plan.explanations["1"]
    assert [c.location_id for c in explained] == ["NEAR", "FAR", "OFF"]
    assert [c.rejected_reason for c in explained] == [None, None, "location disabled"]
    assert explained[0].distance_km == pytest.approx(150, abs=10)
    assert explained[2].atp == 9


def test_without_ship_to_there_is_no_distance_and_no_tolerance():
    sites = [site("A", MUNICH), site("B", POTSDAM)]
    stock = {("A", "SKU-A"): 1, ("B", "SKU-A"): 1}
    plan = source([line("1")], sites, stock, Strategy(max_distance_km=10), ship_to=None)
    assert plan.outcome == "assigned"
    assert plan.locations == ["A"]  # all parts equal: location_id decides
    assert candidate(plan, "1", "B").distance_km is None


# --------------------------------------------------------------------------- identify


def test_disabled_excluded_and_unsupported_delivery_type_are_rejected_with_reasons():
    sites = [
        site("OFF", POTSDAM, enabled=False),
        site("EXCL", POTSDAM, channel_excluded=True),
        site("PICKUP", POTSDAM, type="store", delivery_types=frozenset({"pickup"})),
        site("EMPTY", POTSDAM),
        site("OK", MUNICH),
    ]
    stock = {(s.location_id, "SKU-A"): 5 for s in sites if s.location_id != "EMPTY"}
    plan = source([line("1")], sites, stock)
    assert plan.locations == ["OK"]
    reasons = {c.location_id: c.rejected_reason for c in plan.explanations["1"]}
    assert reasons == {
        "OK": None,
        "EMPTY": "no stock",
        "EXCL": "excluded for this sales channel",
        "OFF": "location disabled",
        "PICKUP": "does not offer delivery type 'ship'",
    }


def test_pickup_order_goes_to_the_pickup_store_only():
    both = frozenset({"ship", "pickup"})
    sites = [
        site("WH", POTSDAM, delivery_types=both, priority=9),
        site("STORE", MUNICH, type="store", delivery_types=both),
    ]
    stock = {("WH", "SKU-A"): 50, ("STORE", "SKU-A"): 1}
    strategy = Strategy(max_distance_km=100, w_priority=5)
    plan = source(
        [line("1")], sites, stock, strategy, delivery_type="pickup", pickup_location_id="STORE"
    )
    assert plan.outcome == "assigned"
    assert shipped(plan) == {"1": [("STORE", 1)]}
    assert candidate(plan, "1", "WH").rejected_reason == "not the pickup location STORE"


def test_pickup_store_without_stock_is_not_announced_even_if_others_have_it():
    both = frozenset({"ship", "pickup"})
    sites = [site("WH", delivery_types=both), site("STORE", type="store", delivery_types=both)]
    plan = source(
        [line("1")],
        sites,
        {("WH", "SKU-A"): 50},
        delivery_type="pickup",
        pickup_location_id="STORE",
    )
    assert plan.outcome == "not_announced"
    assert plan.assignments == []


def test_all_candidates_beyond_max_distance_is_check_announced():
    sites = [site("HAM", HAMBURG), site("MUC", MUNICH), site("POT", POTSDAM)]
    stock = {("HAM", "SKU-A"): 5, ("MUC", "SKU-A"): 5}
    plan = source([line("1")], sites, stock, Strategy(max_distance_km=100))
    assert plan.outcome == "check_announced"
    assert plan.assignments == []
    assert str(candidate(plan, "1", "HAM").rejected_reason).startswith("outside tolerance: 25")
    assert "all beyond 100 km (nearest HAM" in plan.reasons[0]


def test_max_distance_drops_far_candidates_but_assigns_a_near_one():
    sites = [site("MUC", MUNICH, priority=9), site("POT", POTSDAM)]
    stock = {("MUC", "SKU-A"): 5, ("POT", "SKU-A"): 5}
    plan = source([line("1")], sites, stock, Strategy(w_distance=0, w_priority=1))
    assert plan.locations == ["MUC"]
    plan = source([line("1")], sites, stock, Strategy(w_priority=1, max_distance_km=300))
    assert plan.locations == ["POT"]


def test_no_stock_anywhere_is_not_announced_with_the_reason():
    sites = [site("A"), site("B", enabled=False)]
    plan = source([line("1", "SKU-A"), line("2", "SKU-B")], sites, {("A", "SKU-A"): 1})
    assert plan.outcome == "not_announced"
    assert plan.assignments == []
    assert plan.reasons == [
        "line 2: no location can supply 1 x SKU-B (location disabled: 1, no stock: 1)"
    ]


def test_no_stock_beats_outside_tolerance_in_the_outcome():
    sites = [site("MUC", MUNICH)]
    stock = {("MUC", "SKU-A"): 5}
    plan = source(
        [line("1", "SKU-A"), line("2", "SKU-B")], sites, stock, Strategy(max_distance_km=50)
    )
    assert plan.outcome == "not_announced"
    assert len(plan.reasons) == 2  # both lines explained


# --------------------------------------------------------------------------- ship complete


def test_ship_complete_takes_one_location_for_all_lines_even_if_farther():
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH)]
    stock = {("NEAR", "SKU-A"): 5, ("FAR", "SKU-A"): 5, ("FAR", "SKU-B"): 5}
    lines = [line("1", "SKU-A"), line("2", "SKU-B")]
    split = source(lines, sites, stock, Strategy(split_policy="split_lines"))
    assert shipped(split) == {"1": [("FAR", 1)], "2": [("FAR", 1)]}  # one shipment beats nearer
    complete = source(lines, sites, stock, Strategy(split_policy="ship_complete"))
    assert complete.outcome == "assigned"
    assert complete.locations == ["FAR"]


def test_ship_complete_picks_the_best_total_score_among_complete_locations():
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH), site("MID", LEIPZIG)]
    stock = {(s.location_id, sku): 5 for s in sites for sku in ("SKU-A", "SKU-B")}
    lines = [line("1", "SKU-A"), line("2", "SKU-B")]
    plan = source(lines, sites, stock, Strategy(split_policy="ship_complete"))
    assert plan.locations == ["NEAR"]


def test_ship_complete_without_a_common_location_is_check_announced():
    sites = [site("A", POTSDAM), site("B", LEIPZIG)]
    stock = {("A", "SKU-A"): 5, ("B", "SKU-B"): 5}
    lines = [line("1", "SKU-A"), line("2", "SKU-B")]
    plan = source(lines, sites, stock, Strategy(split_policy="ship_complete"))
    assert plan.outcome == "check_announced"
    assert "no single location can ship all 2 lines" in plan.reasons[0]
    assert source(lines, sites, stock).locations == ["A", "B"]


def test_ship_complete_counts_lines_of_the_same_sku_together():
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH)]
    stock = {("NEAR", "SKU-A"): 3, ("FAR", "SKU-A"): 4}
    lines = [line("1", quantity=2), line("2", quantity=2)]
    plan = source(lines, sites, stock, Strategy(split_policy="ship_complete"))
    assert plan.locations == ["FAR"]


# --------------------------------------------------------------------------- split lines


def _rows_and_columns() -> tuple[list[Demand], list[Site], Stock]:
    """14 lines in 2 rows x 7 columns. TOP and BOTTOM hold a row each (7 lines); C4 holds
    columns 3-6 (8 lines), C2 columns 1-2, C1 column 0: greedy set cover takes C4, C2, C1."""
    covers = {"TOP": [(0, c) for c in range(7)], "BOTTOM": [(1, c) for c in range(7)]}
    for name, cols in {"C1": [0], "C2": [1, 2], "C4": [3, 4, 5, 6]}.items():
        covers[name] = [(r, c) for r in (0, 1) for c in cols]
    sites = [site(loc, POTSDAM) for loc in covers]
    stock = {(loc, f"SKU-{r}{c}"): 1 for loc, cells in covers.items() for r, c in cells}
    lines = [line(f"{r}{c}", f"SKU-{r}{c}") for r in (0, 1) for c in range(7)]
    return lines, sites, stock


def test_split_lines_uses_the_fewest_locations_where_greedy_would_not():
    plan = source(*_rows_and_columns())
    assert plan.outcome == "assigned"
    assert plan.locations == ["BOTTOM", "TOP"]


def test_beyond_the_exact_search_budget_greedy_still_covers_every_line(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(sourcing, "EXACT_SEARCH_MAX_COMBINATIONS", 0)
    plan = source(*_rows_and_columns())
    assert plan.outcome == "assigned"
    assert len(plan.assignments) == 14
    assert plan.locations == ["C1", "C2", "C4"]


def test_greedy_drops_a_location_whose_lines_fit_at_the_others(monkeypatch: pytest.MonkeyPatch):
    # greedy takes BIG (4 lines) first, then X and Y for lines 5 and 6; BIG is then redundant
    monkeypatch.setattr(sourcing, "EXACT_SEARCH_MAX_COMBINATIONS", 0)
    covers = {"BIG": "1234", "X": "125", "Y": "346"}
    sites = [site(loc, POTSDAM) for loc in covers]
    stock = {(loc, f"SKU-{n}"): 1 for loc, lines in covers.items() for n in lines}
    plan = source([line(n, f"SKU-{n}") for n in "123456"], sites, stock)
    assert plan.outcome == "assigned"
    assert plan.locations == ["X", "Y"]


def test_split_lines_same_count_goes_to_the_better_total_score():
    sites = [site("FAR1", MUNICH), site("FAR2", HAMBURG), site("N1", POTSDAM), site("N2", BERLIN)]
    stock = {
        ("FAR1", "SKU-A"): 1,
        ("FAR2", "SKU-B"): 1,
        ("N1", "SKU-A"): 1,
        ("N2", "SKU-B"): 1,
    }
    plan = source([line("1", "SKU-A"), line("2", "SKU-B")], sites, stock)
    assert shipped(plan) == {"1": [("N1", 1)], "2": [("N2", 1)]}


def test_split_lines_never_splits_a_line_quantity():
    sites = [site("A"), site("B")]
    stock = {("A", "SKU-A"): 3, ("B", "SKU-A"): 3}
    plan = source([line("1", quantity=5)], sites, stock)
    assert plan.outcome == "not_announced"
    assert "not enough stock: 2" in plan.reasons[0]


@pytest.mark.parametrize("search", ["exact", "greedy"])
def test_atp_taken_by_an_earlier_line_is_gone_for_a_later_line_of_the_same_sku(
    search: str, monkeypatch: pytest.MonkeyPatch
):
    if search == "greedy":
        monkeypatch.setattr(sourcing, "EXACT_SEARCH_MAX_COMBINATIONS", 0)
    # NEAR holds 4 x SKU-A: enough for line 1 or line 2, not both; only NEAR has SKU-B
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH)]
    stock = {("NEAR", "SKU-A"): 4, ("NEAR", "SKU-B"): 1, ("FAR", "SKU-A"): 10}
    lines = [line("1", quantity=3), line("2", quantity=3), line("3", "SKU-B")]
    plan = source(lines, sites, stock)
    assert plan.outcome == "assigned"
    assert shipped(plan) == {"1": [("NEAR", 3)], "2": [("FAR", 3)], "3": [("NEAR", 1)]}


def test_same_sku_lines_beyond_the_total_stock_are_not_announced():
    sites = [site("A"), site("B")]
    stock = {("A", "SKU-A"): 3, ("B", "SKU-A"): 2}
    plan = source([line("1", quantity=3), line("2", quantity=3)], sites, stock)
    assert plan.outcome == "not_announced"
    assert plan.reasons == ["SKU-A: 6 ordered (lines 1, 2), only 5 available at eligible locations"]


def test_large_orders_fall_back_to_greedy_and_still_cover_every_line():
    n_sites, n_lines = 40, 30
    sites = [site(f"L{i:02d}", (50 + i / 10, 10 + i / 10)) for i in range(n_sites)]
    # every location stocks a window of SKUs: no single one covers the order
    stock = {(f"L{i:02d}", f"S{(i + k) % n_lines}"): 2 for i in range(n_sites) for k in range(5)}
    lines = [line(f"{j}", f"S{j}") for j in range(n_lines)]  # 40 locations: beyond exact
    plan = source(lines, sites, stock)
    assert plan.outcome == "assigned"
    assert {a.line_id for a in plan.assignments} == {d.line_id for d in lines}
    assert len(plan.locations) <= 8  # 6 would be optimal (30 lines / 5 SKUs each)
    assert source(lines, list(reversed(sites)), stock) == plan


# --------------------------------------------------------------------------- split quantities


def test_split_quantities_splits_a_line_taking_best_scored_first():
    sites = [site("NEAR", POTSDAM), site("MID", LEIPZIG), site("FAR", MUNICH)]
    stock = {("NEAR", "SKU-A"): 2, ("MID", "SKU-A"): 3, ("FAR", "SKU-A"): 4}
    plan = source([line("1", quantity=6)], sites, stock, Strategy(split_policy="split_quantities"))
    assert plan.outcome == "assigned"
    assert shipped(plan) == {"1": [("NEAR", 2), ("MID", 3), ("FAR", 1)]}


def test_split_quantities_keeps_a_line_whole_when_one_location_has_it_all():
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH)]
    stock = {("NEAR", "SKU-A"): 2, ("FAR", "SKU-A"): 9}
    plan = source([line("1", quantity=5)], sites, stock, Strategy(split_policy="split_quantities"))
    assert shipped(plan) == {"1": [("FAR", 5)]}


def test_split_quantities_takes_from_locations_already_shipping_first():
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH)]
    stock = {("NEAR", "SKU-A"): 2, ("FAR", "SKU-A"): 2, ("FAR", "SKU-B"): 1}
    lines = [line("1", "SKU-A", quantity=3), line("2", "SKU-B")]
    plan = source(lines, sites, stock, Strategy(split_policy="split_quantities"))
    assert shipped(plan) == {"1": [("FAR", 2), ("NEAR", 1)], "2": [("FAR", 1)]}


def test_split_quantities_shares_atp_between_lines_of_the_same_sku():
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH)]
    stock = {("NEAR", "SKU-A"): 4, ("FAR", "SKU-A"): 3}
    lines = [line("1", quantity=3), line("2", quantity=4)]
    plan = source(lines, sites, stock, Strategy(split_policy="split_quantities"))
    assert plan.outcome == "assigned"
    taken: dict[str, int] = {}
    for a in plan.assignments:
        taken[a.location_id] = taken.get(a.location_id, 0) + a.quantity
    assert taken == {"NEAR": 4, "FAR": 3}


def test_a_split_line_gets_only_what_earlier_lines_left_at_a_location():
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH)]
    stock = {("NEAR", "SKU-A"): 4, ("FAR", "SKU-A"): 4}
    lines = [line("1", quantity=3), line("2", quantity=5)]
    plan = source(lines, sites, stock, Strategy(split_policy="split_quantities"))
    assert shipped(plan) == {"1": [("NEAR", 3)], "2": [("NEAR", 1), ("FAR", 4)]}


def test_split_quantities_short_within_tolerance_is_check_announced():
    sites = [site("NEAR", POTSDAM), site("FAR", MUNICH)]
    stock = {("NEAR", "SKU-A"): 2, ("FAR", "SKU-A"): 9}
    strategy = Strategy(split_policy="split_quantities", max_distance_km=100)
    plan = source([line("1", quantity=5)], sites, stock, strategy)
    assert plan.outcome == "check_announced"
    assert plan.reasons == ["line 1: only 2 of 5 x SKU-A within tolerance"]


# --------------------------------------------------------------------------- inputs


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError, match="weights"):
        Strategy(w_cost=-1)
    with pytest.raises(ValueError, match="split policy"):
        Strategy(split_policy="whatever")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quantity"):
        Demand("1", "SKU-A", 0)
    with pytest.raises(ValueError, match="duplicate line_id"):
        source([line("1"), line("1")], [site("A")], {})
    with pytest.raises(ValueError, match="duplicate location"):
        source([line("1")], [site("A"), site("A")], {})
