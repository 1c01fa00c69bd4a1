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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

SiteType = Literal["warehouse", "store"]
SplitPolicy = Literal["ship_complete", "split_lines", "split_quantities"]
Outcome = Literal["assigned", "check_announced", "not_announced"]

EARTH_RADIUS_KM = 6371.0
# Exhaustive search over combinations of two or more locations runs while the total
# number of combinations stays within this budget (every combination of 12 locations);
# beyond it greedy set cover takes over. Single locations are always tried exhaustively.
EXACT_SEARCH_MAX_COMBINATIONS = 4_095
# Scores are rounded so that float noise never beats the location_id tie-break.
SCORE_DIGITS = 9


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points, in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def atp(on_hand: int, reserved: int, buffer: int = 0) -> int:
    """Available to promise: what is on hand, less reservations and the safety buffer."""
    return max(on_hand - reserved - buffer, 0)


# --------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class Site:
    location_id: str
    type: SiteType
    lat: float
    lon: float
    priority: int = 0  # higher = preferred
    daily_capacity: int = 0  # units per day; 0 = unknown (no backlog credit)
    backlog: int = 0  # units already released there today
    cost_per_shipment: float = 0.0
    enabled: bool = True
    channel_excluded: bool = False
    delivery_types: frozenset[str] = frozenset({"ship"})

    def __post_init__(self) -> None:
        if min(self.daily_capacity, self.backlog, self.cost_per_shipment) < 0:
            raise ValueError(f"{self.location_id}: capacity, backlog and cost must be >= 0")


@dataclass(frozen=True, slots=True)
class Demand:
    line_id: str
    sku: str
    quantity: int

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"line {self.line_id}: quantity must be positive")


@dataclass(frozen=True, slots=True)
class Strategy:
    w_distance: float = 1.0
    w_stock: float = 0.0
    w_backlog: float = 0.0
    w_cost: float = 0.0
    w_priority: float = 0.0
    max_distance_km: float | None = None
    split_policy: SplitPolicy = "split_lines"

    def __post_init__(self) -> None:
        weights = (self.w_distance, self.w_stock, self.w_backlog, self.w_cost, self.w_priority)
        if min(weights) < 0:
            raise ValueError("strategy weights must be >= 0")
        if self.max_distance_km is not None and self.max_distance_km < 0:
            raise ValueError("max_distance_km must be >= 0")
        if self.split_policy not in ("ship_complete", "split_lines", "split_quantities"):
            raise ValueError(f"unknown split policy {self.split_policy!r}")


@dataclass(frozen=True, slots=True)
class CandidateScore:
    """One site as seen by one line: score parts when within tolerance, else the reason."""

    location_id: str
    atp: int
    distance_km: float | None
    parts: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    rejected_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    line_id: str
    location_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class SourcingPlan:
    outcome: Outcome
    assignments: list[Assignment]
    explanations: dict[str, list[CandidateScore]]  # line_id -> scored first (best first)
    reasons: list[str]  # why check/not announced; empty when assigned

    @property
    def locations(self) -> list[str]:
        """Distinct shipping locations, sorted."""
        return sorted({a.location_id for a in self.assignments})


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


@dataclass(slots=True)
class _Line:
    index: int
    demand: Demand
    scores: dict[str, float]  # candidates within tolerance -> score
    ranked: list[str]  # the same, best first
    full: set[str]  # ... of them, those with ATP >= quantity
    exists: bool  # some candidate, maybe outside tolerance
    eligible_atp: int  # ATP of the SKU over all sites eligible apart from stock
    nearest_outside: tuple[float, str] | None
    explanation: list[CandidateScore]


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
) -> _Line:
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
    return _Line(
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


# --------------------------------------------------------------------------- step 3


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class _Planner:
    """Step 3: locations for the whole order. `used` counts the units already taken per
    (location, sku), so lines of the same SKU share one location's ATP."""

    def __init__(self, lines: list[_Line], stock: dict[tuple[str, str], int]) -> None:
        self.lines = lines
        self.stock = stock
        self.used: Counter[tuple[str, str]] = Counter()
        self.shared_skus = len({ln.demand.sku for ln in lines}) < len(lines)
        # location -> bit mask of the lines it can ship in full
        self.masks: dict[str, int] = {}
        for ln in lines:
            for loc in ln.full:
                self.masks[loc] = self.masks.get(loc, 0) | (1 << ln.index)

    def left(self, loc: str, sku: str) -> int:
        return max(self.stock.get((loc, sku), 0), 0) - self.used[(loc, sku)]

    def _take(self, i: int, loc: str, qty: int) -> None:
        self.used[(loc, self.lines[i].demand.sku)] += qty

    def _total(self, plan: dict[int, str]) -> float:
        return round(sum(self.lines[i].scores[loc] for i, loc in plan.items()), SCORE_DIGITS)

    def ship_complete(self) -> str | None:
        """The best-scored location that ships every line in full, if any."""
        everything = (1 << len(self.lines)) - 1
        per_sku = Counter[str]()
        for ln in self.lines:
            per_sku[ln.demand.sku] += ln.demand.quantity
        feasible = [
            loc
            for loc, mask in self.masks.items()
            if mask == everything and all(self.left(loc, s) >= n for s, n in per_sku.items())
        ]
        if not feasible:
            return None

        def total(loc: str) -> float:
            return round(sum(ln.scores[loc] for ln in self.lines), SCORE_DIGITS)

        return min(feasible, key=lambda loc: (-total(loc), loc))

    def whole_lines(self, indices: list[int]) -> dict[int, str]:
        """Each line wholly from one location: fewest locations, then best total score.
        Lines missing from the result could not be placed."""
        target = sum(1 << i for i in indices)
        masks = {loc: m & target for loc, m in self.masks.items() if m & target}
        plan = self._exact(target, masks)
        if plan is None:
            return self._greedy(target, masks)
        for i, loc in plan.items():
            self._take(i, loc, self.lines[i].demand.quantity)
        return plan

    def _best_within(
        self, combo: tuple[str, ...], target: int, masks: dict[str, int]
    ) -> dict[int, str]:
        plan: dict[int, str] = {}
        for i in _bits(target):
            scores = self.lines[i].scores
            plan[i] = min(
                (loc for loc in combo if masks[loc] >> i & 1), key=lambda loc: (-scores[loc], loc)
            )
        return plan

    def _fit(
        self, combo: tuple[str, ...], target: int, masks: dict[str, int]
    ) -> dict[int, str] | None:
        """Best-scored placement within `combo` that respects shared ATP (greedy: the
        most constrained lines first), or None."""
        options = {i: [loc for loc in combo if masks[loc] >> i & 1] for i in _bits(target)}
        order = sorted(options, key=lambda i: (len(options[i]), -self.lines[i].demand.quantity, i))
        taken: Counter[tuple[str, str]] = Counter()
        plan: dict[int, str] = {}
        for i in order:
            d, scores = self.lines[i].demand, self.lines[i].scores
            for loc in sorted(options[i], key=lambda loc: (-scores[loc], loc)):
                if self.left(loc, d.sku) - taken[(loc, d.sku)] >= d.quantity:
                    taken[(loc, d.sku)] += d.quantity
                    plan[i] = loc
                    break
            else:
                return None
        return plan

    def _exact(self, target: int, masks: dict[str, int]) -> dict[int, str] | None:
        """Combinations by increasing size while within the search budget."""
        universe = sorted(masks)
        spent = 0
        for size in range(1, len(universe) + 1):
            if size > 1:
                spent += math.comb(len(universe), size)
                if spent > EXACT_SEARCH_MAX_COMBINATIONS:
                    return None
            covering: list[tuple[float, tuple[str, ...], dict[int, str]]] = []
            for combo in combinations(universe, size):
                covered = 0
                for loc in combo:
                    covered |= masks[loc]
                if covered == target:
                    plan = self._best_within(combo, target, masks)
                    covering.append((-self._total(plan), combo, plan))
            covering.sort(key=lambda c: (c[0], c[1]))
            for _, combo, plan in covering:
                if not self.shared_skus:
                    return plan
                fitted = self._fit(combo, target, masks)
                if fitted is not None:
                    return fitted
        return None

    def _greedy(self, target: int, masks: dict[str, int]) -> dict[int, str]:
        """Greedy set cover: the location covering most open lines (then best score sum,
        then location_id), taking stock as it goes; then drop and re-assign."""
        masks = dict(masks)
        open_lines, plan = target, {}
        while open_lines:
            best, tied = 0, []
            for loc, mask in masks.items():
                n = (mask & open_lines).bit_count()
                if n > best:
                    best, tied = n, [loc]
                elif n == best and n:
                    tied.append(loc)
            if not best:
                break

            loc = tied[0] if len(tied) == 1 else min(tied, key=self._gain(masks, open_lines))
            for i in _bits(masks[loc] & open_lines):
                d = self.lines[i].demand
                if self.left(loc, d.sku) >= d.quantity:
                    self._take(i, loc, d.quantity)
                    plan[i] = loc
                    open_lines &= ~(1 << i)
                else:  # an earlier line of this order took the stock
                    masks[loc] &= ~(1 << i)
        self._improve(plan)
        return plan

    def _gain(self, masks: dict[str, int], open_lines: int) -> Callable[[str], tuple[float, str]]:
        """Tie-break among locations covering equally many open lines."""

        def key(loc: str) -> tuple[float, str]:
            total = sum(self.lines[i].scores[loc] for i in _bits(masks[loc] & open_lines))
            return (-round(total, SCORE_DIGITS), loc)

        return key

    def _move(self, plan: dict[int, str], i: int, to: str) -> None:
        d = self.lines[i].demand
        self.used[(plan[i], d.sku)] -= d.quantity
        self.used[(to, d.sku)] += d.quantity
        plan[i] = to

    def _improve(self, plan: dict[int, str]) -> None:
        """Drop locations whose lines fit at the other chosen ones, then move each line
        to its best-scored chosen location."""
        chosen = set(plan.values())
        load = Counter(plan.values())
        for loc in sorted(chosen, key=lambda loc: (load[loc], loc)):
            others = chosen - {loc}
            moved: list[tuple[int, str]] = []
            for i in [i for i, at in plan.items() if at == loc]:
                to = self._better(i, others, plan[i], any_score=True)
                if to is None:
                    break
                moved.append((i, loc))
                self._move(plan, i, to)
            else:
                chosen = others
                continue
            for i, back in reversed(moved):
                self._move(plan, i, back)
        for i in sorted(plan):
            to = self._better(i, chosen, plan[i], any_score=False)
            if to is not None:
                self._move(plan, i, to)

    def _better(self, i: int, chosen: set[str], current: str, any_score: bool) -> str | None:
        """The best-scored location in `chosen` other than `current` that can ship line i
        in full; with any_score False only one scoring better than `current`."""
        ln = self.lines[i]
        for loc in ln.ranked:
            if loc == current:
                if not any_score:
                    return None
                continue
            if (
                loc in chosen
                and loc in ln.full
                and self.left(loc, ln.demand.sku) >= ln.demand.quantity
            ):
                return loc
        return None

    def split(self, i: int, chosen: set[str]) -> list[tuple[str, int]] | None:
        """Line i in parts: from locations already shipping first, then best-scored."""
        ln = self.lines[i]
        need = ln.demand.quantity
        order = [loc for loc in ln.ranked if loc in chosen]
        order += [loc for loc in ln.ranked if loc not in chosen]
        parts: list[tuple[str, int]] = []
        for loc in order:
            n = min(need, self.left(loc, ln.demand.sku))
            if n > 0:
                parts.append((loc, n))
                self._take(i, loc, n)
                need -= n
                if need == 0:
                    return parts
        for loc, n in parts:
            self._take(i, loc, -n)
        return None


# --------------------------------------------------------------------------- entry point


def _rejections(line: _Line) -> Counter[str]:
    """Rejected sites of a line by kind ("no stock", "not enough stock", ...)."""
    reasons = (c.rejected_reason for c in line.explanation if c.rejected_reason is not None)
    return Counter(reason.split(":")[0] for reason in reasons)


def _unsourceable(lines: list[_Line], strategy: Strategy) -> tuple[Outcome | None, list[str]]:
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
    by_sku: dict[str, list[_Line]] = {}
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


def _unplaced_reason(line: _Line) -> str:
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
    planner = _Planner(evaluated, stock)
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
