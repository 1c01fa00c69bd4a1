"""The availability read's cache of locations (api/config_cache.py) over a real SQLite
store: a change made elsewhere shows within twice the cache's seconds even when no
question came meanwhile, and 0 seconds reads the store every time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from api.config_cache import ConfigCache
from store import Store
from workflows.model import LocationConfig


def location(name: str) -> dict[str, Any]:
    return LocationConfig(location_id="WH-CACHE", name=name, lat=52.5, lon=13.4).model_dump(
        mode="json"
    )


async def test_an_old_set_is_read_again_before_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}")
    try:
        await store.config.upsert_locations([location("before")])
        cache = ConfigCache(2.0)
        assert (await cache.locations(store))["WH-CACHE"].name == "before"
        # another API process changes it; no question comes for a long time
        await store.config.upsert_locations([location("after")])
        later = time.monotonic() + 3600
        monkeypatch.setattr(time, "monotonic", lambda: later)
        assert (await cache.locations(store))["WH-CACHE"].name == "after"
    finally:
        await store.close()


async def test_zero_seconds_is_no_cache(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}")
    try:
        await store.config.upsert_locations([location("before")])
        cache = ConfigCache(0)
        assert (await cache.locations(store))["WH-CACHE"].name == "before"
        await store.config.upsert_locations([location("after")])
        assert (await cache.locations(store))["WH-CACHE"].name == "after"
    finally:
        await store.close()
