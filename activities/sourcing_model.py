"""Sourcing engine types: what goes into `activities.sourcing.source_order` and what
comes out, plus the evaluated line that the engine hands from scoring (steps 1 and 2,
`activities.sourcing`) to the optimizer (step 3, `activities.sourcing_optimizer`).

Kept apart so both steps can import them without importing each other. Import the
public names from `activities.sourcing`; they are re-exported there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SiteType = Literal["warehouse", "store"]
SplitPolicy = Literal["ship_complete", "split_lines", "split_quantities"]
Outcome = Literal["assigned", "check_announced", "not_announced"]

# Scores are rounded so that float noise never beats the location_id tie-break.
SCORE_DIGITS = 9


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


@dataclass(slots=True)
class EvaluatedLine:
    """One line after steps 1 and 2: what the optimizer (step 3) works from."""

    index: int
    demand: Demand
    scores: dict[str, float]  # candidates within tolerance -> score
    ranked: list[str]  # the same, best first
    full: set[str]  # ... of them, those with ATP >= quantity
    exists: bool  # some candidate, maybe outside tolerance
    eligible_atp: int  # ATP of the SKU over all sites eligible apart from stock
    nearest_outside: tuple[float, str] | None
    explanation: list[CandidateScore]
