"""The locations and sales channels as the availability read needs them, parsed once and
kept for OMS_CONFIG_CACHE_SECONDS (default 2; then the next question is answered from
them while one read refreshes them, up to twice that age; older, or 0, they are read
again first): a web shop's availability question costs
one stock query, not a read and a validation of every location. A change through this
API process's PUT /v1/locations or /v1/sales-channels clears it at once; other API
processes see a change within that many seconds."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from store import Store
from workflows.model import LocationConfig, SalesChannelConfig


class ConfigCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._locations: dict[str, LocationConfig] | None = None
        self._locations_at = 0.0
        self._channels: dict[str, tuple[float, SalesChannelConfig | None]] = {}
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[dict[str, LocationConfig]] | None = None
        self._generation = 0

    def clear(self) -> None:
        self._generation += 1
        self._locations = None
        self._channels.clear()

    def _fresh(self, at: float) -> bool:
        return self.seconds > 0 and time.monotonic() - at < self.seconds

    async def locations(self, store: Store) -> dict[str, LocationConfig]:
        if self.seconds <= 0:  # no cache: every question reads the store
            return await self._load(store)
        cached = self._locations
        age = time.monotonic() - self._locations_at
        if cached is not None and age < 2 * self.seconds:
            if age >= self.seconds and (self._refresh is None or self._refresh.done()):
                # stale: answered from what is here while one read refreshes it
                self._refresh = asyncio.create_task(self._load(store))
                # a failed refresh (the store away) is tried again by the next question
                self._refresh.add_done_callback(lambda t: t.cancelled() or t.exception())
            return cached
        # nothing here, or too old to answer with (no question came for a while): read
        async with self._lock:  # one read for the requests that find nothing together
            if self._locations is not None and time.monotonic() - self._locations_at < self.seconds:
                return self._locations
            return await self._load(store)

    async def _load(self, store: Store) -> dict[str, LocationConfig]:
        generation = self._generation
        parsed = {
            loc["location_id"]: LocationConfig.model_validate(loc)
            for loc in await store.config.locations()
        }
        if generation == self._generation:  # not cleared by a change meanwhile
            if self.seconds > 0:
                self._locations, self._locations_at = parsed, time.monotonic()
        return parsed

    async def channel(self, store: Store, channel_id: str) -> SalesChannelConfig | None:
        found = self._channels.get(channel_id)
        if found is not None and self._fresh(found[0]):
            return found[1]
        generation = self._generation
        raw = await store.config.channel(channel_id)
        parsed = None if raw is None else SalesChannelConfig.model_validate(raw)
        if self.seconds > 0 and generation == self._generation and len(self._channels) < 10_000:
            self._channels[channel_id] = (time.monotonic(), parsed)
        return parsed


CONFIG_CACHE = web.AppKey("config_cache", ConfigCache)
