"""Routing: distances and the order in which candidate locations are tried."""

from __future__ import annotations

import pytest

from activities.routing import LocationStock, haversine_km, rank_candidates

BERLIN = (52.52, 13.405)
MUNICH = (48.1351, 11.582)
HAMBURG = (53.5511, 9.9937)
POTSDAM = (52.3906, 13.0645)


def loc(location_id: str, at: tuple[float, float], atp: int = 10, **kw: bool) -> LocationStock:
    return LocationStock(location_id, at[0], at[1], atp, **kw)


def test_berlin_to_munich_is_about_504_km():
    assert haversine_km(*BERLIN, *MUNICH) == pytest.approx(504, abs=5)


def test_distance_is_symmetric_and_zero_to_itself():
    assert haversine_km(*BERLIN, *BERLIN) == 0
    assert haversine_km(*BERLIN, *HAMBURG) == pytest.approx(haversine_km(*HAMBURG, *BERLIN))


def test_nearest_eligible_location_comes_first():
    ranked = rank_candidates(
        [loc("MUC", MUNICH), loc("HAM", HAMBURG), loc("POT", POTSDAM)], 2, *BERLIN
    )
    assert [c.location_id for c in ranked] == ["POT", "HAM", "MUC"]
    assert all(c.rejected_reason is None for c in ranked)
    assert ranked[0].distance_km < ranked[1].distance_km < ranked[2].distance_km
    assert ranked[2].distance_km == pytest.approx(504, abs=5)


def test_location_with_too_little_stock_is_rejected_and_ranked_last():
    ranked = rank_candidates([loc("POT", POTSDAM, atp=1), loc("MUC", MUNICH, atp=5)], 2, *BERLIN)
    assert [c.location_id for c in ranked] == ["MUC", "POT"]
    assert ranked[0].rejected_reason is None
    assert "not enough stock" in ranked[1].rejected_reason
    assert ranked[1].atp == 1


def test_exact_stock_is_enough():
    (only,) = rank_candidates([loc("POT", POTSDAM, atp=2)], 2, *BERLIN)
    assert only.rejected_reason is None


def test_disabled_location_is_rejected():
    ranked = rank_candidates([loc("POT", POTSDAM, enabled=False), loc("MUC", MUNICH)], 1, *BERLIN)
    assert [c.location_id for c in ranked] == ["MUC", "POT"]
    assert ranked[1].rejected_reason == "location disabled"


def test_excluded_location_is_rejected():
    ranked = rank_candidates([loc("POT", POTSDAM, excluded=True), loc("MUC", MUNICH)], 1, *BERLIN)
    assert [c.location_id for c in ranked] == ["MUC", "POT"]
    assert "excluded" in ranked[1].rejected_reason


def test_every_location_is_explained_even_when_none_is_eligible():
    ranked = rank_candidates(
        [loc("MUC", MUNICH, atp=0), loc("POT", POTSDAM, enabled=False)], 1, *BERLIN
    )
    assert [c.location_id for c in ranked] == ["POT", "MUC"]
    assert all(c.rejected_reason for c in ranked)


def test_without_ship_to_coordinates_ranks_by_location_id():
    ranked = rank_candidates([loc("B", MUNICH), loc("A", HAMBURG)], 1, None, None)
    assert [c.location_id for c in ranked] == ["A", "B"]
    assert all(c.distance_km is None for c in ranked)
