"""The availability read's cache of locations (api/config_cache.py) over a real SQLite
store: a change made elsewhere shows within twice the cache's seconds even when no
question came meanwhile, 0 seconds reads the store every time, and a set read again
unchanged keeps its parse (and the channels' views of it)."""

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


async def test_an_unchanged_set_read_again_keeps_its_parse_and_views(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}")
    try:
        await store.config.upsert_locations([location("before")])
        await store.config.upsert_channels([{"channel_id": "web", "name": "Web"}])
        cache = ConfigCache(2.0)
        locations = await cache.locations(store)
        channel = await cache.channel(store, "web")
        assert channel is not None
        view = await cache.view(store, channel)
        assert [*view.served] == ["WH-CACHE"]

        later = time.monotonic() + 3600
        monkeypatch.setattr(time, "monotonic", lambda: later)
        # read again (too old to answer with), nothing changed: the same objects
        assert await cache.locations(store) is locations
        assert await cache.channel(store, "web") is channel
        assert await cache.view(store, channel) is view

        await store.config.upsert_locations([location("after"), other_location()])
        monkeypatch.setattr(time, "monotonic", lambda: later + 3600)
        changed = await cache.locations(store)
        assert changed is not locations and changed["WH-CACHE"].name == "after"
        assert [*(await cache.view(store, channel)).served] == ["WH-CACHE", "WH-OTHER"]
    finally:
        await store.close()


def other_location() -> dict[str, Any]:
    return LocationConfig(location_id="WH-OTHER", name="other", lat=52.5, lon=13.4).model_dump(
        mode="json"
    )
