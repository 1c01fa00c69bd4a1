"""Available to promise per sales channel: pure functions shared by routing and the API.

ATP for a channel at a location = on hand - reserved - the channel's safety buffer for
that location (or its type), never below 0; a location the channel may not use
(disabled, excluded, or serving other channels only) contributes nothing.
"""

from __future__ import annotations

from activities.sourcing import Site, atp
from workflows.model import LocationConfig, SalesChannelConfig


def serves(location: LocationConfig, channel: SalesChannelConfig) -> bool:
    return (
        location.enabled
        and location.location_id not in channel.excluded_locations
        and (not location.channels or channel.channel_id in location.channels)
    )


def safety_buffer(location: LocationConfig, channel: SalesChannelConfig) -> int:
    buffers = channel.safety_buffers
    # never negative: a buffer holds units back, it cannot promise units that are not there
    return max(buffers.get(location.location_id, buffers.get(location.type, 0)), 0)


def channel_atp(
    location: LocationConfig, channel: SalesChannelConfig, on_hand: int, reserved: int
) -> int:
    if not serves(location, channel):
        return 0
    return atp(on_hand, reserved, safety_buffer(location, channel))


def delivery_types(location: LocationConfig) -> frozenset[str]:
    if location.delivery_types:
        return frozenset(location.delivery_types)
    return frozenset({"ship", "pickup"} if location.type == "store" else {"ship"})


def site(location: LocationConfig, channel: SalesChannelConfig, backlog: int) -> Site:
    return Site(
        location_id=location.location_id,
        type=location.type,
        lat=location.lat,
        lon=location.lon,
        priority=location.priority,
        daily_capacity=location.daily_capacity,
        backlog=backlog,
        cost_per_shipment=location.cost_per_shipment,
        enabled=location.enabled,
        channel_excluded=not serves(location, channel),
        delivery_types=delivery_types(location),
    )
