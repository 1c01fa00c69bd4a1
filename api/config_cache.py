"""The locations and sales channels as the availability read needs them, parsed once and
kept for OMS_CONFIG_CACHE_SECONDS (default 2; then the next question is answered from
them while one read refreshes them, up to twice that age; older, or 0, they are read
again first): a web shop's availability question costs
one stock query, not a read and a validation of every location. A change through this
API process's PUT /v1/locations or /v1/sales-channels clears it at once; other API
processes see a change within that many seconds.

For each channel asked about, what the answer needs of those locations is worked out
once per set of locations (`ChannelView`): which of them serve the channel, in the order
of their ids, with each one's safety buffer and the JSON text of its answer entry."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from activities.availability import safety_buffer, serves
from store import Store
from workflows.model import LocationConfig, SalesChannelConfig

# views kept at once (a web shop asks about its own channel, ops about any)
MAX_VIEWS = 64


@dataclass(frozen=True, slots=True)
class ChannelView:
    """The locations serving one channel: by id, each one's place in the store's order of
    location ids (as `ConfigRepository.locations` reads them, the order of an answer),
    its safety buffer, and the text of its answer entry as json.dumps writes it, around
    the numbers: `{"location_id": ..., "on_hand": ` and `, "buffer": ..., "atp": `."""

    served: dict[str, tuple[int, int, str, str]]

    @classmethod
    def of(
        cls, locations: Mapping[str, LocationConfig], channel: SalesChannelConfig
    ) -> ChannelView:
        served: dict[str, tuple[int, int, str, str]] = {}
        for location_id, location in locations.items():
            if serves(location, channel):
                buffer = safety_buffer(location, channel)
                served[location_id] = (
                    len(served),
                    buffer,
                    f'{{"location_id": {json.dumps(location_id)}, "on_hand": ',
                    f', "buffer": {json.dumps(buffer)}, "atp": ',
                )
        return cls(served)

    def answer(self, rows: Iterable[Sequence[Any]]) -> tuple[int, str]:
        """One SKU's ATP over the locations serving the channel, and its `locations` list
        as JSON text, from its stock rows (location_id, on_hand, reserved) in any order;
        the rows of locations that do not serve the channel (or are unknown) count
        nothing. Written out here rather than by json.dumps over a dict per row: the
        same text (tests/unit/test_availability_answer.py) in a third of the time."""
        served = self.served.get
        total = 0
        # each entry in its location's place: rows of a SKU come in no particular order
        entries: list[str | None] = [None] * len(self.served)
        for location_id, on_hand, reserved in rows:
            found = served(location_id)
            if found is None:
                continue
            place, buffer, head, tail = found
            atp = on_hand - reserved - buffer  # activities.sourcing.atp
            if atp < 0:
                atp = 0
            total += atp
            entries[place] = f'{head}{on_hand}, "reserved": {reserved}{tail}{atp}}}'
        return total, "[" + ", ".join(filter(None, entries)) + "]"


class ConfigCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._locations: dict[str, LocationConfig] | None = None
        self._rows: list[dict[str, Any]] = []  # the locations as read, for _locations
        self._locations_at = 0.0
        # channel id -> (read at, parsed, as read)
        self._channels: dict[str, tuple[float, SalesChannelConfig | None, Any]] = {}
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[dict[str, LocationConfig]] | None = None
        self._generation = 0
        # channel id -> (the locations and the channel it was made of, the view)
        self._views: dict[str, tuple[object, object, ChannelView]] = {}

    def clear(self) -> None:
        self._generation += 1
        self._locations = None
        self._channels.clear()
        self._views.clear()

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
        rows = await store.config.locations()
        kept = self._locations
        if kept is not None and rows == self._rows:
            # unchanged: the same parsed set (and the channels' views of it) stays, with
            # no new validation of every location every few seconds
            parsed = kept
        else:
            parsed = {loc["location_id"]: LocationConfig.model_validate(loc) for loc in rows}
        if generation == self._generation:  # not cleared by a change meanwhile
            if self.seconds > 0:
                self._locations, self._locations_at = parsed, time.monotonic()
                self._rows = rows
        return parsed

    async def channel(self, store: Store, channel_id: str) -> SalesChannelConfig | None:
        found = self._channels.get(channel_id)
        if found is not None and self._fresh(found[0]):
            return found[1]
        generation = self._generation
        raw = await store.config.channel(channel_id)
        if found is not None and raw == found[2]:
            parsed = found[1]  # unchanged: the same object (its view stays too)
        else:
            parsed = None if raw is None else SalesChannelConfig.model_validate(raw)
        if self.seconds > 0 and generation == self._generation and len(self._channels) < 10_000:
            self._channels[channel_id] = (time.monotonic(), parsed, raw)
        return parsed

    async def view(self, store: Store, channel: SalesChannelConfig) -> ChannelView:
        """The channel's view of the locations as this cache has them now."""
        locations = await self.locations(store)
        kept = self._views.get(channel.channel_id)
        if kept is not None and kept[0] is locations and kept[1] is channel:
            return kept[2]
        view = ChannelView.of(locations, channel)
        if self.seconds > 0:
            if len(self._views) >= MAX_VIEWS:
                self._views.clear()
            self._views[channel.channel_id] = (locations, channel, view)
        return view


CONFIG_CACHE = web.AppKey("config_cache", ConfigCache)
