"""Channel ATP: buffers by location over type, exclusions, channel-restricted locations."""

from __future__ import annotations

from activities.availability import channel_atp, delivery_types, safety_buffer, serves
from workflows.model import LocationConfig, SalesChannelConfig


def location(location_id: str = "WH-1", **fields: object) -> LocationConfig:
    return LocationConfig.model_validate(
        {"location_id": location_id, "name": location_id, "lat": 52.5, "lon": 13.4, **fields}
    )


def test_atp_is_on_hand_less_reserved_less_the_buffer_never_negative() -> None:
    channel = SalesChannelConfig(channel_id="web", safety_buffers={"warehouse": 2})
    assert channel_atp(location(), channel, on_hand=10, reserved=3) == 5
    assert channel_atp(location(), channel, on_hand=4, reserved=3) == 0


def test_a_location_buffer_wins_over_its_type() -> None:
    channel = SalesChannelConfig(channel_id="web", safety_buffers={"store": 5, "ST-1": 1})
    assert safety_buffer(location("ST-1", type="store"), channel) == 1
    assert safety_buffer(location("ST-2", type="store"), channel) == 5
    assert safety_buffer(location("WH-1"), channel) == 0


def test_excluded_disabled_and_foreign_locations_contribute_nothing() -> None:
    channel = SalesChannelConfig(channel_id="web", excluded_locations=["WH-X"])
    assert channel_atp(location("WH-X"), channel, 10, 0) == 0
    assert channel_atp(location("WH-D", enabled=False), channel, 10, 0) == 0
    assert channel_atp(location("WH-B", channels=["b2b"]), channel, 10, 0) == 0
    assert serves(location("WH-W", channels=["web", "b2b"]), channel)


def test_stores_offer_pickup_by_default() -> None:
    assert delivery_types(location("ST-1", type="store")) == {"ship", "pickup"}
    assert delivery_types(location("WH-1")) == {"ship"}
    assert delivery_types(location("WH-2", delivery_types=["pickup"])) == {"pickup"}
