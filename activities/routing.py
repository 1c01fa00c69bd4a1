"""Routing stage: nearest location with enough stock per line, reserved atomically.

The pure part (`rank_candidates`) decides the order in which locations are tried;
the activity reserves in that order, so a location that lost its stock to a racing
order is skipped with the reason recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from temporalio import activity

from store import Store
from workflows.model import Candidate, RouteOrderInput, RouteOrderResult, RoutingDecision

EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@dataclass(frozen=True)
class LocationStock:
    location_id: str
    lat: float
    lon: float
    atp: int
    enabled: bool = True
    excluded: bool = False


def rank_candidates(
    locations: list[LocationStock], quantity: int, lat: float | None, lon: float | None
) -> list[Candidate]:
    """All locations as candidates: eligible ones first, nearest first; others rejected
    with the reason."""
    candidates: list[Candidate] = []
    for loc in locations:
        distance = (
            round(haversine_km(lat, lon, loc.lat, loc.lon), 1)
            if lat is not None and lon is not None
            else None
        )
        reason = None
        if not loc.enabled:
            reason = "location disabled"
        elif loc.excluded:
            reason = "excluded for this sales channel"
        elif loc.atp < quantity:
            reason = f"not enough stock: {loc.atp} < {quantity}"
        candidates.append(
            Candidate(
                location_id=loc.location_id,
                atp=loc.atp,
                distance_km=distance,
                rejected_reason=reason,
                score=None if distance is None else -distance,
            )
        )
    candidates.sort(
        key=lambda c: (
            c.rejected_reason is not None,
            c.distance_km if c.distance_km is not None else math.inf,
            c.location_id,
        )
    )
    return candidates


class RoutingActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="route_order")
    async def route_order(self, input: RouteOrderInput) -> RouteOrderResult:
        locations = {loc["location_id"]: loc for loc in await self.store.config.locations()}
        channel = await self.store.config.channel(input.sales_channel) or {}
        excluded = set(channel.get("excluded_locations", []))
        stock = await self.store.inventory.stock({line.sku for line in input.lines})
        atp = {(row.location_id, row.sku): row.atp for row in stock}
        decisions: list[RoutingDecision] = []
        for line in input.lines:
            reservation_id = f"{input.order_id}:{line.line_id}:{line.attempt}"
            existing = await self.store.inventory.get_reservation(reservation_id)
            pool = [
                LocationStock(
                    loc_id,
                    loc["lat"],
                    loc["lon"],
                    atp.get((loc_id, line.sku), 0),
                    enabled=loc["enabled"],
                    excluded=loc_id in excluded or loc_id in line.exclude_locations,
                )
                for loc_id, loc in locations.items()
            ]
            candidates = rank_candidates(pool, line.quantity, input.ship_to.lat, input.ship_to.lon)
            decision = RoutingDecision(
                line_id=line.line_id,
                attempt=line.attempt,
                quantity=line.quantity,
                candidates=candidates,
            )
            reused = existing is not None and existing.status != "RELEASED"
            for cand in candidates:
                if reused:
                    # a retry of this activity: the reservation was made before
                    assert existing is not None
                    if cand.location_id == existing.location_id:
                        cand.rejected_reason = None
                        decision.location_id = existing.location_id
                        break
                    continue
                if cand.rejected_reason is not None:
                    continue
                reserved = await self.store.inventory.reserve(
                    reservation_id=reservation_id,
                    order_id=input.order_id,
                    line_id=line.line_id,
                    location_id=cand.location_id,
                    sku=line.sku,
                    quantity=line.quantity,
                )
                if reserved:
                    decision.location_id = cand.location_id
                    break
                cand.rejected_reason = "stock taken by another order meanwhile"
            if decision.location_id:
                chosen = next(c for c in candidates if c.location_id == decision.location_id)
                for cand in candidates:
                    if cand is not chosen and cand.rejected_reason is None:
                        cand.rejected_reason = f"not chosen: {chosen.location_id} is nearer"
                decision.reservation_id = reservation_id
                decision.reason = f"{decision.location_id}: nearest with stock" + (
                    f" ({chosen.distance_km} km)" if chosen.distance_km is not None else ""
                )
                if not reused:  # a reused reservation is already out of the ATP read
                    atp[(decision.location_id, line.sku)] = chosen.atp - line.quantity
            else:
                decision.reason = f"no location has {line.quantity} x {line.sku}"
            decisions.append(decision)
        activity.logger.info(
            "routed %s: %s", input.order_id, "; ".join(d.reason for d in decisions)
        )
        return RouteOrderResult(decisions=decisions)
