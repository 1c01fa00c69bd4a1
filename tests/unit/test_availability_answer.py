"""The text of an availability answer (api/config_cache.py ChannelView.answer) is what
json.dumps wrote for it before: every location that serves the channel and holds a row,
in the order of the location ids, with its buffer and ATP, and the SKU's total."""

from __future__ import annotations

import json
import random
from typing import Any

from activities.availability import channel_atp, safety_buffer, serves
from api.config_cache import ChannelView
from workflows.model import LocationConfig, SalesChannelConfig


def location(location_id: str, **fields: object) -> LocationConfig:
    return LocationConfig.model_validate(
        {"location_id": location_id, "name": location_id, "lat": 52.5, "lon": 13.4, **fields}
    )


def reference(
    rows: list[tuple[str, int, int]],
    locations: dict[str, LocationConfig],
    channel: SalesChannelConfig,
) -> tuple[int, list[dict[str, Any]]]:
    """The answer as the handler built it before: dicts per row, in location order."""
    visible = sorted(
        (r for r in rows if r[0] in locations and serves(locations[r[0]], channel)),
        key=lambda r: list(locations).index(r[0]),
    )
    atps = [channel_atp(locations[r[0]], channel, r[1], r[2]) for r in visible]
    return sum(atps), [
        {
            "location_id": loc,
            "on_hand": on_hand,
            "reserved": reserved,
            "buffer": safety_buffer(locations[loc], channel),
            "atp": atp,
        }
        for (loc, on_hand, reserved), atp in zip(visible, atps, strict=True)
    ]


def answer_text(view: ChannelView, rows: list[tuple[str, int, int]]) -> str:
    total, entries = view.answer(rows)
    return f'{{"sku": "S", "atp": {total}, "locations": {entries}}}'


def test_the_answer_is_the_text_json_dumps_wrote() -> None:
    rng = random.Random(13)
    for case in range(200):
        ids = sorted({f"L{rng.randint(0, 60)}.{rng.choice('ab:_-')}" for _ in range(30)})
        locations = {
            loc: location(
                loc,
                type=rng.choice(["warehouse", "store"]),
                enabled=rng.random() > 0.1,
                channels=rng.choice([[], [], ["web"], ["b2b"], ["web", "b2b"]]),
            )
            for loc in ids
        }
        buffers: dict[str, int] = {"store": rng.randint(-2, 4)}
        buffers |= {loc: rng.randint(-1, 6) for loc in rng.sample(ids, 5)}
        channel = SalesChannelConfig(
            channel_id=rng.choice(["web", "b2b"]),
            excluded_locations=rng.sample(ids, 3),
            safety_buffers=buffers,
        )
        # rows in any order, at known and unknown locations, reserved above on hand too
        rows = [
            (loc, rng.randint(0, 20), rng.randint(0, 25))
            for loc in [*rng.sample(ids, rng.randint(0, len(ids))), "UNKNOWN-1", "ZZ-9"]
        ]
        rng.shuffle(rows)
        total, entries = reference(rows, locations, channel)
        expected = json.dumps({"sku": "S", "atp": total, "locations": entries})
        assert answer_text(ChannelView.of(locations, channel), rows) == expected, case


def test_no_rows_and_nothing_served_answer_an_empty_list() -> None:
    channel = SalesChannelConfig(channel_id="web", excluded_locations=["WH-1"])
    view = ChannelView.of({"WH-1": location("WH-1")}, channel)
    assert view.answer([]) == (0, "[]")
    assert view.answer([("WH-1", 5, 0), ("WH-2", 5, 0)]) == (0, "[]")


def test_ids_are_written_as_json_strings() -> None:
    # ids come from the store as they were written there (the API takes identifiers only)
    odd = ['A"%s\\b', "Ümlaut", "%d"]
    locations = {loc: LocationConfig.model_construct(**location("X").__dict__) for loc in odd}
    for loc, config in locations.items():
        config.location_id = loc
    channel = SalesChannelConfig(channel_id="web", safety_buffers={odd[0]: 1})
    rows = [(loc, 3, 1) for loc in odd]
    total, entries = reference(rows, locations, channel)
    expected = json.dumps({"sku": "S", "atp": total, "locations": entries})
    assert answer_text(ChannelView.of(locations, channel), rows) == expected
    assert json.loads(expected)["locations"][0]["location_id"] == odd[0]
