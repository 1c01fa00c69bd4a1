"""Sourcing engine (DOSE): which locations ship an order, and why.

Pure decision logic (stdlib only: no I/O, no Temporal, no database) so the routing
activity can call it inside one attempt and tests can pin every rule. Three steps:

1. **Identify** (per line): candidates are the sites that are enabled, not excluded for
   the sales channel, offer the delivery type and hold ATP for the SKU (ATP >= quantity
   unless the split policy is ``split_quantities``). A pickup order with a pickup
   location considers only that store. A candidate beyond ``max_distance_km`` is
   *outside tolerance*: rejected, but it exists. Every site stays in the explanation,
   with the reason it was rejected.
2. **Evaluate** (per line): each candidate within tolerance gets a score from
   normalized parts (see `score_parts`).
3. **Optimize** (whole order): pick locations under the split policy, fewest locations
   first, then the best total score; units taken by one line at a location are gone
   for later lines of the same SKU there.

Outcome: ``assigned`` when every line is covered; ``not_announced`` when some line has
no candidate at all (or its SKU lacks stock at all eligible sites together);
``check_announced`` when candidates exist but none within tolerance, or the split
policy cannot be met (e.g. ship complete without a common location). Only an
``assigned`` plan carries assignments.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from activities.sourcing_model import (
    SCORE_DIGITS,
    Assignment,
    CandidateScore,
    Demand,
    EvaluatedLine,
    Outcome,
    Site,
    SiteType,
    SourcingPlan,
    SplitPolicy,
    Strategy,
)
from activities.sourcing_optimizer import Planner

# The public names: the types live in `activities.sourcing_model` so that this module
# and the optimizer (`activities.sourcing_optimizer`) share them without a cycle.
__all__ = [
    "EARTH_RADIUS_KM",
    "EXACT_SEARCH_MAX_COMBINATIONS",
    "SCORE_DIGITS",
    "Assignment",
    "CandidateScore",
    "Demand",
    "Outcome",
    "Site",
    "SiteType",
    "SourcingPlan",
    "SplitPolicy",
    "Strategy",
    "atp",
    "haversine_km",
    "score_parts",
    "source_order",
]

EARTH_RADIUS_KM = 6371.0
# Exhaustive search over combinations of two or more locations runs while the total
# number of combinations stays within this budget (every combination of 12 locations);
# beyond it greedy set cover takes over. Single locations are always tried exhaustively.
# Read at each call and handed to the optimizer, so it can be tuned (or patched) here.
EXACT_SEARCH_MAX_COMBINATIONS = 4_095


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points, in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def atp(on_hand: int, reserved: int, buffer: int = 0) -> int:
    """Available to promise: what is on hand, less reservations and the safety buffer."""
    return max(on_hand - reserved - buffer, 0)


# --------------------------------------------------------------------------- steps 1 + 2


@dataclass(slots=True)
class _PreparedSite:
    location_id: str
    site: Site
    distance_km: float | None
    shown_km: float | None  # rounded for the explanation
    static_reason: str | None  # the same for every line: disabled, excluded, ...
    outside_reason: str | None  # beyond max distance: a candidate that exists
    # the explanation entry for any SKU without stock here, built once and shared by the
    # lines: with 1,000 sites most entries are this one (read-only, like all of them)
    unstocked: CandidateScore


def _prepare(
    sites: list[Site],
    ship_to: tuple[float, float] | None,
    strategy: Strategy,
    delivery_type: str,
    pickup_location_id: str | None,
) -> list[_PreparedSite]:
    """What does not depend on the line, once per site, in location_id order."""
    pickup_only = delivery_type == "pickup" and pickup_location_id is not None
    limit = strategy.max_distance_km
    prepared: list[_PreparedSite] = []
    for site in sorted(sites, key=lambda s: s.location_id):
        if prepared and prepared[-1].site.location_id == site.location_id:
            raise ValueError(f"duplicate location {site.location_id}")
        d = haversine_km(ship_to[0], ship_to[1], site.lat, site.lon) if ship_to else None
        reason: str | None = None
        if pickup_only and site.location_id != pickup_location_id:
            reason = f"not the pickup location {pickup_location_id}"
        elif not site.enabled:
            reason = "location disabled"
        elif site.channel_excluded:
            reason = "excluded for this sales channel"
        elif delivery_type not in site.delivery_types:
            reason = f"does not offer delivery type {delivery_type!r}"
        # the customer chose the pickup store: no distance tolerance; no ship-to: none either
        outside = None
        if not pickup_only and d is not None and limit is not None and d > limit:
            outside = f"outside tolerance: {d:.1f} km > {limit:g} km"
        shown = None if d is None else round(d, 1)
        unstocked = CandidateScore(site.location_id, 0, shown, {}, 0.0, reason or "no stock")
        prepared.append(_PreparedSite(site.location_id, site, d, shown, reason, outside, unstocked))
    return prepared


def score_parts(
    distance_km: float | None,
    atp: int,
    site: Site,
    max_distance_km: float,
    max_atp: int,
    max_cost: float,
    max_priority: int,
) -> dict[str, float]:
    """Normalized score parts in [0, 1], higher is better; maxima over the line's
    candidates within tolerance:

    - distance = 1 - d / d_max          (1 when all are at d = 0; 0 without a ship-to)
    - stock    = atp / atp_max
    - backlog  = max(1 - backlog / daily_capacity, 0)   (0 when the capacity is unknown)
    - cost     = 1 - cost / cost_max    (1 when all are free)
    - priority = priority / priority_max (0 when no candidate has a positive priority)

    score = w_distance*distance + w_stock*stock + w_backlog*backlog + w_cost*cost
            + w_priority*priority; ties go to the smaller location_id.
    """
    if distance_km is None:
        distance = 0.0
    else:
        distance = 1.0 - distance_km / max_distance_km if max_distance_km > 0 else 1.0
    cap, backlog, priority = site.daily_capacity, site.backlog, site.priority
    return {
        "distance": distance,
        "stock": atp / max_atp if max_atp > 0 else 0.0,
        "backlog": 1.0 - backlog / cap if cap > backlog else 0.0,
        "cost": 1.0 - site.cost_per_shipment / max_cost if max_cost > 0 else 1.0,
        "priority": priority / max_priority if max_priority > 0 and priority > 0 else 0.0,
    }


def _evaluate(
    index: int,
    demand: Demand,
    prepared: list[_PreparedSite],
    stock: dict[tuple[str, str], int],
    strategy: Strategy,
) -> EvaluatedLine:
    """Steps 1 and 2 for one line."""
    sku, qty = demand.sku, demand.quantity
    partial_ok = strategy.split_policy == "split_quantities"
    tolerable: list[tuple[_PreparedSite, int]] = []
    rejected: list[CandidateScore] = []
    exists, eligible_atp, nearest_outside = False, 0, None
    get = stock.get
    for p in prepared:  # the hot loop: lines x sites
        loc = p.location_id
        units = get((loc, sku), 0)
        if units <= 0:
            rejected.append(p.unstocked)
            continue
        if p.static_reason is not None:
            reason = p.static_reason
        else:
            eligible_atp += units
            if units < qty and not partial_ok:
                reason = f"not enough stock: {units} < {qty}"
            elif p.outside_reason is not None:
                reason, exists = p.outside_reason, True
                assert p.distance_km is not None
                if nearest_outside is None or p.distance_km < nearest_outside[0]:
                    nearest_outside = (p.distance_km, loc)
            else:
                tolerable.append((p, units))
                exists = True
                continue
        rejected.append(CandidateScore(loc, units, p.shown_km, rejected_reason=reason))

    w_d, w_s, w_b = strategy.w_distance, strategy.w_stock, strategy.w_backlog
    w_c, w_p = strategy.w_cost, strategy.w_priority
    max_d = max((p.distance_km or 0.0 for p, _ in tolerable), default=0.0)
    max_atp = max((units for _, units in tolerable), default=0)
    max_cost = max((p.site.cost_per_shipment for p, _ in tolerable), default=0.0)
    max_prio = max((p.site.priority for p, _ in tolerable), default=0)
    scored: list[CandidateScore] = []
    for p, units in tolerable:
        parts = score_parts(p.distance_km, units, p.site, max_d, max_atp, max_cost, max_prio)
        score = round(
            w_d * parts["distance"]
            + w_s * parts["stock"]
            + w_b * parts["backlog"]
            + w_c * parts["cost"]
            + w_p * parts["priority"],
            SCORE_DIGITS,
        )
        scored.append(CandidateScore(p.site.location_id, units, p.shown_km, parts, score))
    scored.sort(key=lambda c: (-c.score, c.location_id))
    return EvaluatedLine(
        index=index,
        demand=demand,
        scores={c.location_id: c.score for c in scored},
        ranked=[c.location_id for c in scored],
        full={c.location_id for c in scored if c.atp >= qty},
        exists=exists,
        eligible_atp=eligible_atp,
        nearest_outside=nearest_outside,
        explanation=scored + rejected,
    )


# --------------------------------------------------------------------------- entry point


def _rejections(line: EvaluatedLine) -> Counter[str]:
    """Rejected sites of a line by kind ("no stock", "not enough stock", ...)."""
    reasons = (c.rejected_reason for c in line.explanation if c.rejected_reason is not None)
    return Counter(reason.split(":")[0] for reason in reasons)


def _unsourceable(
    lines: list[EvaluatedLine], strategy: Strategy
) -> tuple[Outcome | None, list[str]]:
    """Outcome decided before optimizing: lines without any candidate, SKUs short in
    total, lines whose candidates are all outside tolerance."""
    reasons: list[str] = []
    missing = False
    for ln in lines:
        d = ln.demand
        if not ln.exists:
            missing = True
            why = ", ".join(
                f"{k}: {n}"
                for k, n in sorted(_rejections(ln).items(), key=lambda kv: (-kv[1], kv[0]))
            )
            reasons.append(
                f"line {d.line_id}: no location can supply {d.quantity} x {d.sku} "
                f"({why or 'no locations'})"
            )
    by_sku: dict[str, list[EvaluatedLine]] = {}
    for ln in lines:
        by_sku.setdefault(ln.demand.sku, []).append(ln)
    for sku, group in by_sku.items():
        wanted = sum(ln.demand.quantity for ln in group)
        if all(ln.exists for ln in group) and group[0].eligible_atp < wanted:
            missing = True
            ids = ", ".join(ln.demand.line_id for ln in group)
            reasons.append(
                f"{sku}: {wanted} ordered (lines {ids}), "
                f"only {group[0].eligible_atp} available at eligible locations"
            )
    outside = False
    for ln in lines:
        if ln.exists and not ln.ranked and ln.nearest_outside is not None:
            outside = True
            km, loc = ln.nearest_outside
            n = _rejections(ln)["outside tolerance"]
            reasons.append(
                f"line {ln.demand.line_id}: {n} location(s) have "
                f"{ln.demand.sku} but all beyond {strategy.max_distance_km:g} km "
                f"(nearest {loc} at {km:.1f} km)"
            )
    if missing:
        return "not_announced", reasons
    return ("check_announced" if outside else None), reasons


def _unplaced_reason(line: EvaluatedLine) -> str:
    d = line.demand
    within = sum(c.atp for c in line.explanation if c.rejected_reason is None)
    if within < d.quantity:
        return f"line {d.line_id}: only {within} of {d.quantity} x {d.sku} within tolerance"
    return (
        f"line {d.line_id}: {d.quantity} x {d.sku} no longer fits within tolerance "
        "once the other lines of this order took their stock"
    )


def source_order(
    lines: list[Demand],
    sites: list[Site],
    stock: dict[tuple[str, str], int],
    ship_to: tuple[float, float] | None,
    strategy: Strategy,
    delivery_type: str = "ship",
    pickup_location_id: str | None = None,
) -> SourcingPlan:
    """Source one order: identify, evaluate, optimize (see the module docstring).

    `stock` maps (location_id, sku) to ATP already net of reservations and buffers
    (see `atp`); a missing key is no stock. `ship_to` is (lat, lon) or None (no
    distance part, no distance tolerance). A pickup order with `pickup_location_id`
    considers that store only, without distance tolerance. The plan explains every
    site for every line; the entries are shared between lines, treat them as read-only.
    """
    if not lines:
        raise ValueError("an order needs at least one line")
    if len({d.line_id for d in lines}) < len(lines):
        raise ValueError("duplicate line_id")
    prepared = _prepare(sites, ship_to, strategy, delivery_type, pickup_location_id)
    evaluated = [_evaluate(i, d, prepared, stock, strategy) for i, d in enumerate(lines)]
    explanations = {ln.demand.line_id: ln.explanation for ln in evaluated}

    def plan(
        outcome: Outcome, reasons: list[str], parts: dict[int, list[tuple[str, int]]]
    ) -> SourcingPlan:
        assignments = [
            Assignment(lines[i].line_id, loc, qty) for i in sorted(parts) for loc, qty in parts[i]
        ]
        return SourcingPlan(outcome, assignments, explanations, reasons)

    outcome, reasons = _unsourceable(evaluated, strategy)
    if outcome is not None:
        return plan(outcome, reasons, {})
    planner = Planner(evaluated, stock, EXACT_SEARCH_MAX_COMBINATIONS)
    if strategy.split_policy == "ship_complete":
        loc = planner.ship_complete()
        if loc is None:
            why = (
                f"ship complete: no single location can ship all {len(lines)} lines "
                "(each line on its own has a location: a split shipment could serve it)"
            )
            return plan("check_announced", [why], {})
        return plan("assigned", [], {ln.index: [(loc, ln.demand.quantity)] for ln in evaluated})

    whole = [ln.index for ln in evaluated if ln.full]
    placed = planner.whole_lines(whole)
    parts = {i: [(loc, lines[i].quantity)] for i, loc in placed.items()}
    if strategy.split_policy == "split_quantities":
        chosen = set(placed.values())
        for ln in evaluated:
            if ln.index not in parts:
                split = planner.split(ln.index, chosen)
                if split is not None:
                    parts[ln.index] = split
                    chosen.update(loc for loc, _ in split)
    unplaced = [ln for ln in evaluated if ln.index not in parts]
    if unplaced:
        return plan("check_announced", [_unplaced_reason(ln) for ln in unplaced], {})
    return plan("assigned", [], parts)
