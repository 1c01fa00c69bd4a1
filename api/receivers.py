"""Receivers of outgoing messages in the configuration API: where their URLs may point,
their secrets (shown once, then only whether one is set), and what each role sees of a
location."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.context import SETTINGS
from api.errors import ApiError, parse, read_json
from oms.targets import refused_url
from store.configuration import Principal

DEFAULT_OVERLAP_SECONDS = 24 * 3600
MAX_OVERLAP_SECONDS = 30 * 24 * 3600
# what a web shop sees of a location: enough to offer it for pickup
WEBSHOP_LOCATION_FIELDS = ("location_id", "name", "type", "delivery_types")


class SecretRotation(BaseModel):
    """How long messages are still signed with the secret being replaced as well (in
    seconds; 0: not at all)."""

    model_config = ConfigDict(extra="forbid")
    overlap_seconds: int = Field(default=DEFAULT_OVERLAP_SECONDS, ge=0, le=MAX_OVERLAP_SECONDS)


class RotatedSecret(BaseModel):
    """A receiver's new secret: shown in this answer only. `previous_valid_until`: until
    when messages are signed with the secret before it too (None: not at all)."""

    location_id: str | None = None
    channel_id: str | None = None
    reason: str | None = None
    secret: str
    created_at: str | None
    previous_valid_until: str | None


class LocationSecret(BaseModel):
    location_id: str
    secret: str


class LocationsUpdated(BaseModel):
    """`webhook_secrets`: the secrets made for webhooks set for the first time, shown in
    this answer only."""

    updated: int
    webhook_secrets: list[LocationSecret]


class ChannelSecret(BaseModel):
    channel_id: str
    receiver: Literal["callback", "approval"]
    reason: str | None = None  # the approval reason, for an approval receiver
    secret: str


class ChannelsUpdated(BaseModel):
    """`secrets`: the secrets made for callbacks and approval webhooks set for the first
    time, shown in this answer only."""

    updated: int
    secrets: list[ChannelSecret]


STATUS_FIELDS = frozenset({"secret_set", "created_at", "previous_valid_until"})


def _drop_status(item: Any, key: str) -> Any:
    """`item` without `key` if that holds a secret's status as GET shows it (an object
    of its fields, or null); anything else stays, for the schema to refuse."""
    if isinstance(item, dict) and key in item:
        value = item[key]
        if value is None or (isinstance(value, dict) and set(value) <= STATUS_FIELDS):
            return {k: v for k, v in item.items() if k != key}
    return item


def without_secret_status(body: Any, *, channels: bool) -> Any:
    """A configuration write without the read-only secret status GET adds (a location's
    `webhook_secret`, a channel's `callback_secret` and its approval reasons'
    `webhook_secret`), so that what GET answers can be written back as it is."""
    if not isinstance(body, list):
        return body
    if not channels:
        return [_drop_status(item, "webhook_secret") for item in body]
    cleaned = []
    for item in body:
        item = _drop_status(item, "callback_secret")
        if isinstance(item, dict) and isinstance(item.get("approval_reasons"), list):
            reasons = [_drop_status(r, "webhook_secret") for r in item["approval_reasons"]]
            item = {**item, "approval_reasons": reasons}
        cleaned.append(item)
    return cleaned


async def rotation(request: web.Request) -> timedelta:
    """The overlap a rotate request asks for (an empty body: the default)."""
    if not request.can_read_body:
        return timedelta(seconds=DEFAULT_OVERLAP_SECONDS)
    body = await read_json(request)
    return timedelta(seconds=parse(SecretRotation, body).overlap_seconds)


def check_targets(request: web.Request, urls: list[tuple[str, str | None]]) -> None:
    """422 forbidden_target for each (field, URL) whose host messages may not go to
    (private, loopback, link-local, ... unless OMS_OUTGOING_ALLOW permits it)."""
    allow = request.app[SETTINGS].outgoing_allow_list()
    problems = [
        {"field": name, "message": why, "type": "forbidden_target"}
        for name, url in urls
        if url
        for why in [refused_url(url, allow)]
        if why is not None
    ]
    if problems:
        raise ApiError(
            422,
            "forbidden_target",
            "messages may not be sent to these URLs (set OMS_OUTGOING_ALLOW to permit "
            "private or local hosts)",
            problems,
        )


def location_view(
    location: dict[str, Any], principal: Principal, secret: dict[str, Any] | None
) -> dict[str, Any]:
    """A location as `principal` may see it: a web shop the fields for pickup, the
    others (ops, admin, the location itself) everything but the secret."""
    if principal.role == "webshop":
        return {k: location.get(k) for k in WEBSHOP_LOCATION_FIELDS}
    return {**location, "webhook_secret": secret}
