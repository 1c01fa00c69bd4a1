"""Inventory, availability and configuration routes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel

from activities.availability import serves
from api import query, receivers
from api.auth import require
from api.config_cache import CONFIG_CACHE
from api.context import DIRECT_READS, SETTINGS, STORE
from api.errors import ApiError, parse, read_json
from api.schemas import LocationConfigIn, SalesChannelConfigIn
from store import ingest
from store.ingest import FeedKind
from store.receivers import approval_receiver, callback_receiver, location_receiver
from workflows.model import Identifier, LocationConfig, SalesChannelConfig

routes = web.RouteTableDef()

MAX_AVAILABILITY_SKUS = 200  # one availability question names at most this many skus
NO_CHANNEL = SalesChannelConfig(channel_id="-")  # availability without a channel: plain ATP


class StockLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location_id: Identifier
    sku: Identifier
    on_hand: int = Field(ge=0, le=1_000_000_000)


class StockSnapshot(RootModel[list[StockLevel]]):
    pass


# a stock feed streamed as it comes (store/ingest.py); JSON is read whole as before
FEED_TYPES: dict[str, FeedKind] = {
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
}


@routes.put("/v1/inventory")
async def put_inventory(request: web.Request) -> web.Response:
    """Set absolute on-hand stock (reservations are kept).

    `application/json`: `[{location_id, sku, on_hand}]` (or `{"items": [...]}`).
    `text/csv` (header `location_id,sku,on_hand`) or `application/x-ndjson` (one JSON
    object a line): streamed into the store as it arrives, any size up to
    OMS_INVENTORY_MAX_BYTES (413 `feed_too_large` beyond), applied whole or not at all:
    422 `invalid_feed` lists the bad lines (`line`, `field`, `message`: unknown location,
    an id that is not an identifier, on_hand not a whole number from 0 to 1000000000, a
    line that cannot be read) and how many there are. A feed that repeats a (location,
    sku) keeps its last line. Another Content-Type is 415 `unsupported_media_type`."""
    require(request)  # admin only
    kind = FEED_TYPES.get(request.content_type)
    if kind is not None:
        return await _put_feed(request, kind)
    if request.can_read_body and request.content_type not in ("application/json", ""):
        if request.content_type != "application/octet-stream":  # aiohttp's "none given"
            raise ApiError(
                415,
                "unsupported_media_type",
                f"{request.content_type}: send application/json, text/csv or application/x-ndjson",
            )
    body = await read_json(request)
    if isinstance(body, dict) and set(body) == {"items"}:
        body = body["items"]
    snapshot = parse(StockSnapshot, body).root
    store = request.app[STORE]
    await check_locations(request, {s.location_id for s in snapshot})
    count = await store.inventory.set_stock([(s.location_id, s.sku, s.on_hand) for s in snapshot])
    return web.json_response({"updated": count})


async def _put_feed(request: web.Request, kind: FeedKind) -> web.Response:
    """A snapshot streamed from the body into the store: all of it or, with any bad
    line, nothing (422 invalid_feed with the lines)."""
    store = request.app[STORE]
    limit = request.app[SETTINGS].inventory_max_bytes
    chunks = ingest.limited(request.content.iter_chunked(256 * 1024), limit)
    try:
        count = await ingest.load_stock(store.db, store.inventory, chunks, kind)
    except ingest.FeedTooLarge as err:
        raise ApiError(
            413, "feed_too_large", f"the feed is larger than {err.limit} bytes (nothing applied)"
        ) from err
    except ingest.FeedRefused as err:
        raise ApiError(
            422,
            "invalid_feed",
            f"{err.total} problem(s) in the feed, the first on line {err.problems[0].line}; "
            "nothing was applied",
            [p.as_json() for p in err.problems],
        ) from err
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
    cache = request.app[CONFIG_CACHE]
    channel = NO_CHANNEL  # plain ATP
    if channel_id:
        # a malformed id is simply not found (channel ids are at most 64 characters)
        found = await cache.channel(store, channel_id) if len(channel_id) <= 64 else None
        if found is None:
            raise ApiError(404, "sales_channel_not_found", f"no sales channel {channel_id[:64]}")
        channel = found
    view = await cache.view(store, channel)
    stock = await stock_rows(request, skus)
    # the answer's JSON as json.dumps would write it (ChannelView.answer)
    items = []
    for sku in skus:
        total, entries = view.answer(stock.get(sku, ()))
        items.append(f'{{"sku": {json.dumps(sku)}, "atp": {total}, "locations": {entries}}}')
    body = f'{{"sales_channel": {json.dumps(channel_id)}, "items": [{", ".join(items)}]}}'
    return web.Response(text=body, content_type="application/json")


async def stock_rows(
    request: web.Request, skus: list[str]
) -> Mapping[str, Sequence[Sequence[Any]]]:
    """Each SKU's stock rows as (location_id, on_hand, reserved): on PostgreSQL one
    statement on the API's direct pool (store/direct.py), on SQLite the repository."""
    direct = request.app.get(DIRECT_READS)
    if direct is not None:
        return await direct.stock(skus)
    found: dict[str, list[tuple[str, int, int]]] = {}
    for row in await request.app[STORE].inventory.stock(skus):
        found.setdefault(row.sku, []).append((row.location_id, row.on_hand, row.reserved))
    return found


@routes.get("/v1/locations")
async def get_locations(request: web.Request) -> web.Response:
    """Locations as the caller may see them: ops and admin every one (with whether its
    webhook has a secret, never the secret), a location key itself only, a web shop
    those that serve its channel with their id, name, type and delivery types."""
    principal = require(request, "ops", "webshop", "location")
    store = request.app[STORE]
    if principal.role == "location":
        locations = await store.config.locations([principal.identity])
    else:
        locations = await store.config.locations()
    if principal.role == "webshop":
        raw = await store.config.channel(principal.identity)
        channel = (
            SalesChannelConfig.model_validate(raw)
            if raw is not None
            else SalesChannelConfig(channel_id=principal.identity)
        )
        locations = [
            loc for loc in locations if serves(LocationConfig.model_validate(loc), channel)
        ]
        secrets: dict[str, dict[str, Any]] = {}
    else:
        secrets = await store.config.secrets.status(
            [location_receiver(loc["location_id"]) for loc in locations]
        )
    return web.json_response(
        {
            "locations": [
                receivers.location_view(
                    loc, principal, secrets.get(location_receiver(loc["location_id"]))
                )
                for loc in locations
            ]
        }
    )


# writes are validated with the strict API schemas (api/schemas.py); what is stored is
# read back with the tolerant types of workflows/model.py
class LocationList(RootModel[Annotated[list[LocationConfigIn], Field(max_length=10_000)]]):
    pass


class ChannelList(RootModel[Annotated[list[SalesChannelConfigIn], Field(max_length=1000)]]):
    pass


@routes.put("/v1/locations")
async def put_locations(request: web.Request) -> web.Response:
    """Create or change locations. A webhook URL set for the first time gets its own
    secret, answered here once (`webhook_secrets`); the host must be public unless
    OMS_OUTGOING_ALLOW permits it (422 forbidden_target)."""
    require(request)
    body = receivers.without_secret_status(await read_json(request), channels=False)
    locations = parse(LocationList, body).root
    receivers.check_targets(
        request, [(f"{i}.webhook_url", loc.webhook_url) for i, loc in enumerate(locations)]
    )
    made = await request.app[STORE].config.upsert_locations([loc.model_dump() for loc in locations])
    request.app[CONFIG_CACHE].clear()
    return web.json_response(
        {
            "updated": len(locations),
            "webhook_secrets": [
                {"location_id": location_id, "secret": secret}
                for location_id, secret in made.items()
            ],
        }
    )


@routes.get("/v1/sales-channels")
async def get_channels(request: web.Request) -> web.Response:
    """Every sales channel's configuration, with whether its callback and each approval
    reason's webhook have a secret (never the secret)."""
    require(request, "ops")
    store = request.app[STORE]
    channels = await store.config.channels()
    wanted = [callback_receiver(c["channel_id"]) for c in channels] + [
        approval_receiver(c["channel_id"], r["reason"])
        for c in channels
        for r in c.get("approval_reasons") or []
    ]
    secrets = await store.config.secrets.status(wanted)
    shown = [
        {
            **channel,
            "callback_secret": secrets[callback_receiver(channel["channel_id"])],
            "approval_reasons": [
                {
                    **reason,
                    "webhook_secret": secrets[
                        approval_receiver(channel["channel_id"], reason["reason"])
                    ],
                }
                for reason in channel.get("approval_reasons") or []
            ],
        }
        for channel in channels
    ]
    return web.json_response({"sales_channels": shown})


@routes.put("/v1/sales-channels")
async def put_channels(request: web.Request) -> web.Response:
    """Create or change sales channels. A callback or approval webhook URL set for the
    first time gets its own secret, answered here once (`secrets`); hosts must be
    public unless OMS_OUTGOING_ALLOW permits them (422 forbidden_target)."""
    require(request)
    body = receivers.without_secret_status(await read_json(request), channels=True)
    channels = parse(ChannelList, body).root
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
    receivers.check_targets(
        request,
        [(f"{i}.callback_url", c.callback_url) for i, c in enumerate(channels)]
        + [
            (f"{i}.approval_reasons.{j}.webhook_url", r.webhook_url)
            for i, c in enumerate(channels)
            for j, r in enumerate(c.approval_reasons)
        ],
    )
    made = await request.app[STORE].config.upsert_channels(
        [c.model_dump(mode="json") for c in channels]
    )
    request.app[CONFIG_CACHE].clear()
    return web.json_response(
        {
            "updated": len(channels),
            "secrets": [
                {"channel_id": channel_id, "receiver": "callback", "secret": secret}
                if reason is None
                else {
                    "channel_id": channel_id,
                    "receiver": "approval",
                    "reason": reason,
                    "secret": secret,
                }
                for channel_id, reason, secret in made
            ],
        }
    )


def _rotated(secret: str, status: dict[str, Any], **names: str) -> web.Response:
    return web.json_response(
        {
            **names,
            "secret": secret,
            "created_at": status["created_at"],
            "previous_valid_until": status["previous_valid_until"],
        }
    )


@routes.post("/v1/locations/{location_id}/webhook-secret/rotate")
async def rotate_location_secret(request: web.Request) -> web.Response:
    """A new secret for the location's webhook, answered once; messages are signed with
    the old one too for `overlap_seconds` (default a day)."""
    require(request)
    location_id = request.match_info["location_id"]
    overlap = await receivers.rotation(request)
    store = request.app[STORE]
    found = await store.config.locations([location_id]) if len(location_id) <= 64 else []
    if not found:
        raise ApiError(404, "location_not_found", f"no location {location_id[:64]}")
    if not found[0].get("webhook_url"):
        raise ApiError(409, "no_webhook_url", f"location {location_id} has no webhook URL")
    secret, status = await store.config.secrets.rotate(location_receiver(location_id), overlap)
    return _rotated(secret, status, location_id=location_id)


async def _channel(request: web.Request) -> dict[str, Any]:
    channel_id = request.match_info["channel_id"]
    found = await request.app[STORE].config.channel(channel_id) if len(channel_id) <= 64 else None
    if found is None:
        raise ApiError(404, "sales_channel_not_found", f"no sales channel {channel_id[:64]}")
    return found


@routes.post("/v1/sales-channels/{channel_id}/callback-secret/rotate")
async def rotate_callback_secret(request: web.Request) -> web.Response:
    """A new secret for the channel's callback, answered once; messages are signed with
    the old one too for `overlap_seconds` (default a day)."""
    require(request)
    overlap = await receivers.rotation(request)
    channel = await _channel(request)
    channel_id = channel["channel_id"]
    if not channel.get("callback_url"):
        raise ApiError(409, "no_callback_url", f"sales channel {channel_id} has no callback URL")
    secret, status = await request.app[STORE].config.secrets.rotate(
        callback_receiver(channel_id), overlap
    )
    return _rotated(secret, status, channel_id=channel_id)


@routes.post("/v1/sales-channels/{channel_id}/approval-reasons/{reason}/webhook-secret/rotate")
async def rotate_approval_secret(request: web.Request) -> web.Response:
    """A new secret for an approval reason's webhook, answered once; messages are signed
    with the old one too for `overlap_seconds` (default a day)."""
    require(request)
    overlap = await receivers.rotation(request)
    channel = await _channel(request)
    channel_id = channel["channel_id"]
    name = request.match_info["reason"]
    reason = next((r for r in channel.get("approval_reasons") or [] if r["reason"] == name), None)
    if reason is None:
        raise ApiError(
            404,
            "approval_reason_not_found",
            f"sales channel {channel_id} has no approval reason {name[:64]}",
        )
    if not reason.get("webhook_url"):
        raise ApiError(409, "no_webhook_url", f"approval reason {name} has no webhook URL")
    secret, status = await request.app[STORE].config.secrets.rotate(
        approval_receiver(channel_id, name), overlap
    )
    return _rotated(secret, status, channel_id=channel_id, reason=name)
