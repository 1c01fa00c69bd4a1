"""Inventory, availability and configuration routes."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel

from activities.availability import channel_atp, safety_buffer, serves
from api import query
from api.auth import require
from api.context import STORE
from api.errors import ApiError, parse, read_json
from api.schemas import LocationConfigIn, SalesChannelConfigIn
from workflows.model import Identifier, LocationConfig, SalesChannelConfig

routes = web.RouteTableDef()

MAX_AVAILABILITY_SKUS = 200  # one availability question names at most this many skus


class StockLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location_id: Identifier
    sku: Identifier
    on_hand: int = Field(ge=0, le=1_000_000_000)


class StockSnapshot(RootModel[list[StockLevel]]):
    pass


@routes.put("/v1/inventory")
async def put_inventory(request: web.Request) -> web.Response:
    require(request)  # admin only
    body = await read_json(request)
    if isinstance(body, dict) and set(body) == {"items"}:
        body = body["items"]
    snapshot = parse(StockSnapshot, body).root
    store = request.app[STORE]
    await check_locations(request, {s.location_id for s in snapshot})
    count = await store.inventory.set_stock([(s.location_id, s.sku, s.on_hand) for s in snapshot])
    return web.json_response({"updated": count})


class StockAdjustment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    adjustment_id: str | None = Field(default=None, min_length=1, max_length=200)
    location_id: Identifier
    sku: Identifier
    delta: int = Field(ge=-1_000_000_000, le=1_000_000_000)
    reason: str = Field(default="", max_length=500)


class StockAdjustments(RootModel[list[StockAdjustment]]):
    pass


async def check_locations(request: web.Request, location_ids: set[str]) -> None:
    """422 unknown_location unless every location exists."""
    known = {loc["location_id"] for loc in await request.app[STORE].config.locations()}
    unknown = sorted(location_ids - known)
    if unknown:
        raise ApiError(
            422,
            "unknown_location",
            f"unknown locations: {', '.join(unknown)}",
            [
                {
                    "field": "location_id",
                    "message": f"unknown location {loc}",
                    "type": "unknown_location",
                }
                for loc in unknown
            ],
        )


@routes.post("/v1/inventory/adjustments")
async def post_adjustments(request: web.Request) -> web.Response:
    """Stock deltas (receipts, counts, damages); an adjustment_id makes a delta count once."""
    require(request)
    body = await read_json(request)
    if isinstance(body, dict) and set(body) == {"items"}:
        body = body["items"]
    items = parse(StockAdjustments, body).root
    await check_locations(request, {a.location_id for a in items})
    results = await request.app[STORE].inventory.adjust(
        [(a.adjustment_id, a.location_id, a.sku, a.delta, a.reason) for a in items]
    )
    return web.json_response(
        {
            "items": [
                {"location_id": loc, "sku": sku, "on_hand": on_hand, "applied": applied}
                for loc, sku, on_hand, applied in results
            ]
        }
    )


@routes.get("/v1/availability")
async def availability(request: web.Request) -> web.Response:
    principal = require(request, "webshop", "ops")
    skus = list(
        dict.fromkeys(s for raw in request.query.getall("sku", []) for s in raw.split(",") if s)
    )
    if not skus:
        raise query.invalid("sku", "at least one sku is required", "missing")
    if len(skus) > MAX_AVAILABILITY_SKUS:
        raise query.invalid("sku", f"at most {MAX_AVAILABILITY_SKUS} skus", "too_long")
    malformed = [s for s in skus if query.IDENTIFIER.fullmatch(s) is None]
    if malformed:
        raise query.invalid(
            "sku", "each sku is 1 to 64 of the characters A-Z a-z 0-9 . _ : -", "identifier"
        )
    channel_id = request.query.get("sales_channel")
    if principal.role == "webshop":
        channel_id = principal.identity
    store = request.app[STORE]
    channel = SalesChannelConfig(channel_id="-")  # no channel: plain ATP
    if channel_id:
        # a malformed id is simply not found (channel ids are at most 64 characters)
        raw = await store.config.channel(channel_id) if len(channel_id) <= 64 else None
        if raw is None:
            raise ApiError(404, "sales_channel_not_found", f"no sales channel {channel_id[:64]}")
        channel = SalesChannelConfig.model_validate(raw)
    locations = {
        loc["location_id"]: LocationConfig.model_validate(loc)
        for loc in await store.config.locations()
    }
    rows = await store.inventory.stock(skus)
    result: list[dict[str, object]] = []
    for sku in skus:
        visible = [
            r
            for r in rows
            if r.sku == sku
            and r.location_id in locations
            and serves(locations[r.location_id], channel)
        ]
        atps = [
            channel_atp(locations[r.location_id], channel, r.on_hand, r.reserved) for r in visible
        ]
        result.append(
            {
                "sku": sku,
                "atp": sum(atps),
                "locations": [
                    {
                        "location_id": r.location_id,
                        "on_hand": r.on_hand,
                        "reserved": r.reserved,
                        "buffer": safety_buffer(locations[r.location_id], channel),
                        "atp": atp,
                    }
                    for r, atp in zip(visible, atps, strict=True)
                ],
            }
        )
    return web.json_response({"sales_channel": channel_id, "items": result})


@routes.get("/v1/locations")
async def get_locations(request: web.Request) -> web.Response:
    require(request, "ops", "webshop", "location")
    return web.json_response({"locations": await request.app[STORE].config.locations()})


# writes are validated with the strict API schemas (api/schemas.py); what is stored is
# read back with the tolerant types of workflows/model.py
class LocationList(RootModel[Annotated[list[LocationConfigIn], Field(max_length=10_000)]]):
    pass


class ChannelList(RootModel[Annotated[list[SalesChannelConfigIn], Field(max_length=1000)]]):
    pass


@routes.put("/v1/locations")
async def put_locations(request: web.Request) -> web.Response:
    require(request)
    locations = parse(LocationList, await read_json(request)).root
    await request.app[STORE].config.upsert_locations([loc.model_dump() for loc in locations])
    return web.json_response({"updated": len(locations)})


@routes.get("/v1/sales-channels")
async def get_channels(request: web.Request) -> web.Response:
    require(request, "ops")
    return web.json_response({"sales_channels": await request.app[STORE].config.channels()})


@routes.put("/v1/sales-channels")
async def put_channels(request: web.Request) -> web.Response:
    require(request)
    channels = parse(ChannelList, await read_json(request)).root
    known = {loc["location_id"] for loc in await request.app[STORE].config.locations()}
    problems = [
        {"field": f"{i}.{name}", "message": f"unknown location {ref}", "type": "unknown_location"}
        for i, channel in enumerate(channels)
        for name, refs in (
            ("excluded_locations", channel.excluded_locations),
            ("safety_buffers", list(channel.safety_buffers)),
        )
        for ref in refs
        if ref not in known and not (name == "safety_buffers" and ref in ("warehouse", "store"))
    ]
    if problems:
        raise ApiError(
            422, "validation_error", "the sales channels refer to unknown things", problems
        )
    await request.app[STORE].config.upsert_channels([c.model_dump(mode="json") for c in channels])
    return web.json_response({"updated": len(channels)})
