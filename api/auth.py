"""Bearer API keys: each belongs to a role and an identity (channel, approver, location)."""

from __future__ import annotations

from aiohttp import web

from api.context import DIRECT_READS, STORE
from api.docs import PUBLIC_PATHS
from api.errors import ApiError, Handler
from store import Principal

ROLES = ("webshop", "approver", "location", "ops", "admin")
# /docs and the files its page loads (api/docs.py) describe the API like /openapi.json
PUBLIC = {"/health", "/openapi.json", "/metrics", *PUBLIC_PATHS}
PRINCIPAL = web.RequestKey("principal", Principal)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC or request.path == "/ui" or request.path.startswith("/ui/"):
        # the back office (api/ui) signs its people in with a session cookie of its own
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "missing Authorization: Bearer <api key>")
    # asked of the store on every request (no cache): a revoked key fails at once; on
    # PostgreSQL in one statement on the API's direct pool (store/direct.py)
    direct = request.app.get(DIRECT_READS)
    if direct is not None:
        principal = await direct.principal(key.strip())
    else:
        principal = await request.app[STORE].config.principal(key.strip())
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown, revoked or expired API key")
    request[PRINCIPAL] = principal
    return await handler(request)


def require(request: web.Request, *roles: str) -> Principal:
    """The caller, if its role is one of `roles` (admin may do anything)."""
    principal = request[PRINCIPAL]
    if principal.role != "admin" and principal.role not in roles:
        raise ApiError(403, "forbidden", f"role {principal.role} may not do this")
    return principal
