"""API keys (admin): create, list, revoke and rotate. Keys are random when the OMS makes
them, only their SHA-256 is stored, and the store is asked on every request, so a revoked
key gets 401 at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.auth import require
from api.context import STORE
from api.errors import ApiError, parse, read_json
from store.configuration import KeyNotRotatable, LastAdminKey

routes = web.RouteTableDef()

Role = Literal["webshop", "approver", "location", "ops", "admin"]
# a name or identity with something in it (not only spaces)
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True, pattern=r"\S")
]
DEFAULT_OVERLAP_SECONDS = 24 * 3600
MAX_OVERLAP_SECONDS = 30 * 24 * 3600
KEY_ID_LENGTH = 32


class ApiKeyInput(BaseModel):
    """A key chosen by the caller (PUT): printable ASCII without spaces, since a key
    travels in the Authorization header and is compared as sent."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=16, max_length=200, pattern=r"^[!-~]+$")
    name: Label
    role: Role
    identity: Label


class NewApiKey(BaseModel):
    """A key the OMS generates (POST): the answer carries it once."""

    model_config = ConfigDict(extra="forbid")

    name: Label
    role: Role
    identity: Label


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # how long the old key keeps working next to the new one
    overlap_seconds: int = Field(default=DEFAULT_OVERLAP_SECONDS, ge=0, le=MAX_OVERLAP_SECONDS)


@routes.put("/v1/api-keys")
async def put_api_key(request: web.Request) -> web.Response:
    """Create or change an API key with a value of the caller's choosing (only its hash is
    stored); a revoked key stays revoked (409)."""
    principal = require(request)
    item = parse(ApiKeyInput, await read_json(request))
    entry = await request.app[STORE].config.upsert_api_key(
        item.key, name=item.name, role=item.role, identity=item.identity, created_by=principal.name
    )
    if entry["revoked_at"] is not None:
        raise ApiError(409, "key_revoked", f"this key was revoked ({entry['id']})", entry)
    return web.json_response(entry)


@routes.post("/v1/api-keys")
async def create_api_key(request: web.Request) -> web.Response:
    """A new random key (32 random bytes, urlsafe): the answer is the only place it is shown."""
    principal = require(request)
    item = parse(NewApiKey, await read_json(request))
    key, entry = await request.app[STORE].config.create_api_key(
        name=item.name, role=item.role, identity=item.identity, created_by=principal.name
    )
    return web.json_response({**entry, "key": key}, status=201)


@routes.get("/v1/api-keys")
async def list_api_keys(request: web.Request) -> web.Response:
    """Every key: id, name, role, identity, times and its last 4 characters, never the key."""
    require(request)
    return web.json_response({"api_keys": await request.app[STORE].config.api_keys()})


def _key_id(request: web.Request) -> str:
    key_id = request.match_info["key_id"]
    if len(key_id) > KEY_ID_LENGTH:  # too long to be one: simply not found
        raise ApiError(404, "api_key_not_found", f"no API key {key_id[:KEY_ID_LENGTH]}")
    return key_id


@routes.post("/v1/api-keys/{key_id}/revoke")
async def revoke_api_key(request: web.Request) -> web.Response:
    """The key gets 401 from now on (a repeated revoke answers the same)."""
    require(request)
    key_id = _key_id(request)
    try:
        entry = await request.app[STORE].config.revoke_api_key(key_id)
    except KeyError as err:
        raise ApiError(404, "api_key_not_found", f"no API key {key_id}") from err
    except LastAdminKey as err:
        raise ApiError(
            409,
            "last_admin_key",
            "this is the last admin key that works: create or rotate another one first",
        ) from err
    return web.json_response(entry)


@routes.post("/v1/api-keys/{key_id}/rotate")
async def rotate_api_key(request: web.Request) -> web.Response:
    """A new key for the same name, role and identity (shown once); the old one keeps
    working for `overlap_seconds` (default 24 h, at most 30 days), then gets 401."""
    principal = require(request)
    key_id = _key_id(request)
    body: Any = await read_json(request) if request.can_read_body else {}
    rotation = parse(Rotation, body)
    try:
        key, new, old = await request.app[STORE].config.rotate_api_key(
            key_id, overlap=timedelta(seconds=rotation.overlap_seconds), created_by=principal.name
        )
    except KeyError as err:
        raise ApiError(404, "api_key_not_found", f"no API key {key_id}") from err
    except KeyNotRotatable as err:
        raise ApiError(409, "not_rotatable", str(err)) from err
    return web.json_response({**new, "key": key, "replaces": old}, status=201)
