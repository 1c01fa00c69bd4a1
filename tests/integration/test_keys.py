"""API keys over the API (issue 9, point 3): create, list without secrets, revoke (401 at
once), rotate with an overlap window, refuse blank keys; migration 5 keeps the keys of a
store from before; an admin deciding an approval for an approver is recorded as both."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from alembic import command
from sqlalchemy import text

from api.app import init_app
from store import Store, migrations
from store.migrations import legacy
from tests.integration.conftest import Stack, _postgres_database, order_body, unique_sku
from tests.integration.gates import eventually

LIFECYCLE_COLUMNS = (
    "key_id",
    "created_at",
    "created_by",
    "last4",
    "revoked_at",
    "expires_at",
    "replaced_by",
)


async def call(
    stack: Stack, method: str, path: str, key: str, json_body: Any = None
) -> tuple[int, Any]:
    """A request with a raw key (stack.call takes names of known keys)."""
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {key}"}}
    if json_body is not None:
        kwargs["json"] = json_body
    resp = await stack.http.request(method, path, **kwargs)
    body = await resp.json() if "json" in resp.headers.get("Content-Type", "") else None
    return resp.status, body


async def create(stack: Stack, role: str = "ops", identity: str = "ops") -> dict[str, Any]:
    status, body = await stack.call(
        "POST",
        "/v1/api-keys",
        json={"name": f"key {uuid.uuid4().hex[:6]}", "role": role, "identity": identity},
    )
    assert status == 201, body
    return dict(body)


async def works(stack: Stack, key: str) -> int:
    """The status an ops-readable request gets with this key."""
    status, _ = await call(stack, "GET", "/v1/sales-channels", key)
    return status


async def listed(stack: Stack, key_id: str) -> dict[str, Any]:
    status, body = await stack.call("GET", "/v1/api-keys")
    assert status == 200, body
    return dict(next(k for k in body["api_keys"] if k["id"] == key_id))


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


async def test_created_key_is_random_shown_once_and_listed_without_secrets(stack: Stack) -> None:
    made = await create(stack)
    key = made["key"]
    # 32 random bytes, urlsafe base64: 43 characters of A-Z a-z 0-9 - _
    assert len(key) >= 43 and all(c.isalnum() or c in "-_" for c in key), key
    assert made["role"] == "ops" and made["identity"] == "ops" and made["active"] is True
    assert made["created_at"] and made["revoked_at"] is None and made["last4"] == key[-4:]
    assert made["created_by"] == "admin"
    assert await works(stack, key) == 200
    assert (await create(stack))["key"] != key

    status, body = await stack.call("GET", "/v1/api-keys")
    assert status == 200
    raw = json.dumps(body)
    assert key not in raw and hashlib.sha256(key.encode()).hexdigest() not in raw
    # at rest: the SHA-256 of the key, never the key
    async with stack.store.db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_keys"))).mappings().all()
    stored = [dict(r) for r in rows if r["key_id"] == made["id"]]
    assert len(stored) == 1 and stored[0]["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert not any(key in str(value) for r in rows for value in r.values())
    entry = await listed(stack, made["id"])
    assert set(entry) == {
        "id",
        "name",
        "role",
        "identity",
        "created_at",
        "created_by",
        "last4",
        "revoked_at",
        "expires_at",
        "replaced_by",
        "active",
    }
    assert entry["last4"] == key[-4:] and entry["active"] is True
    # keys from before (the demo keys) are listed too, with an id and no characters of
    # a short key
    demo = [k for k in body["api_keys"] if k["name"] == "approver alice"]
    assert len(demo) == 1 and demo[0]["id"] and demo[0]["last4"] is None


async def test_key_routes_are_for_admins_only(stack: Stack) -> None:
    made = await create(stack)
    for method, path, body in (
        ("GET", "/v1/api-keys", None),
        ("POST", "/v1/api-keys", {"name": "x", "role": "admin", "identity": "x"}),
        ("POST", f"/v1/api-keys/{made['id']}/revoke", None),
        ("POST", f"/v1/api-keys/{made['id']}/rotate", {}),
    ):
        for who in ("ops", "web", "alice", "WH-BERLIN"):
            status, answer = await stack.call(method, path, key=who, json=body)
            assert status == 403, (method, path, who, answer)
    assert await works(stack, made["key"]) == 200


async def test_revoked_key_gets_401_at_once(stack: Stack) -> None:
    made = await create(stack)
    assert await works(stack, made["key"]) == 200
    status, body = await stack.call("POST", f"/v1/api-keys/{made['id']}/revoke")
    assert status == 200, body
    assert body["revoked_at"] and body["active"] is False
    # the very next request, no wait
    status, answer = await call(stack, "GET", "/v1/sales-channels", made["key"])
    assert status == 401 and answer["error"]["code"] == "unauthorized", answer
    # repeated: the same answer
    again, body2 = await stack.call("POST", f"/v1/api-keys/{made['id']}/revoke")
    assert again == 200 and body2["revoked_at"] == body["revoked_at"]
    entry = await listed(stack, made["id"])
    assert entry["revoked_at"] == body["revoked_at"] and entry["active"] is False
    # PUT does not bring a revoked key back
    status, body = await stack.call(
        "PUT",
        "/v1/api-keys",
        json={"key": made["key"], "name": "again", "role": "admin", "identity": "admin"},
    )
    assert status == 409 and body["error"]["code"] == "key_revoked", body
    assert await works(stack, made["key"]) == 401

    for missing in ("key_doesnotexist", "x" * 300):
        status, body = await stack.call("POST", f"/v1/api-keys/{missing}/revoke")
        assert status == 404 and body["error"]["code"] == "api_key_not_found", body


async def test_rotation_keeps_the_old_key_for_the_overlap_then_401(stack: Stack) -> None:
    made = await create(stack, role="webshop", identity="web")
    status, rotated = await stack.call(
        "POST", f"/v1/api-keys/{made['id']}/rotate", json={"overlap_seconds": 3}
    )
    assert status == 201, rotated
    new_key = rotated["key"]
    assert new_key != made["key"] and len(new_key) >= 43
    assert (rotated["name"], rotated["role"], rotated["identity"]) == (
        made["name"],
        "webshop",
        "web",
    )
    assert rotated["replaces"]["id"] == made["id"]
    assert rotated["replaces"]["replaced_by"] == rotated["id"]
    expires = when(rotated["replaces"]["expires_at"])
    assert expires - when(rotated["created_at"]) == timedelta(seconds=3)
    # both work inside the window (the window is 3 s: ask only while it is open)
    status, _ = await call(stack, "GET", "/v1/availability?sku=SKU-1", made["key"])
    if datetime.now(expires.tzinfo) < expires - timedelta(seconds=0.5):
        assert status == 200
    status, _ = await call(stack, "GET", "/v1/availability?sku=SKU-1", new_key)
    assert status == 200

    async def old_refused() -> bool | None:
        status, _ = await call(stack, "GET", "/v1/availability?sku=SKU-1", made["key"])
        return True if status == 401 else None

    await eventually(old_refused, "the old key refused after the overlap")
    assert datetime.now(expires.tzinfo) >= expires
    status, _ = await call(stack, "GET", "/v1/availability?sku=SKU-1", new_key)
    assert status == 200
    entry = await listed(stack, made["id"])
    assert entry["active"] is False and entry["replaced_by"] == rotated["id"]
    assert (await listed(stack, rotated["id"]))["active"] is True


async def test_rotation_window_default_bounds_and_refusals(stack: Stack) -> None:
    made = await create(stack)
    status, rotated = await stack.call("POST", f"/v1/api-keys/{made['id']}/rotate")
    assert status == 201, rotated
    overlap = when(rotated["replaces"]["expires_at"]) - when(rotated["created_at"])
    assert overlap == timedelta(hours=24)
    assert await works(stack, made["key"]) == 200 and await works(stack, rotated["key"]) == 200
    # the old one again: it has a successor already
    status, body = await stack.call("POST", f"/v1/api-keys/{made['id']}/rotate", json={})
    assert status == 409 and body["error"]["code"] == "not_rotatable", body

    other = await create(stack)
    for bad in (-1, 30 * 24 * 3600 + 1, "soon", 1.5):
        status, body = await stack.call(
            "POST", f"/v1/api-keys/{other['id']}/rotate", json={"overlap_seconds": bad}
        )
        assert status == 422, (bad, body)
    status, body = await stack.call(
        "POST", f"/v1/api-keys/{other['id']}/rotate", json={"overlap": 5}
    )
    assert status == 422, body
    status, body = await stack.call(
        "POST", f"/v1/api-keys/{other['id']}/rotate", json={"overlap_seconds": 30 * 24 * 3600}
    )
    assert status == 201, body
    assert when(body["replaces"]["expires_at"]) - when(body["created_at"]) == timedelta(days=30)

    # overlap 0: the old key stops at once
    third = await create(stack)
    status, body = await stack.call(
        "POST", f"/v1/api-keys/{third['id']}/rotate", json={"overlap_seconds": 0}
    )
    assert status == 201, body
    assert await works(stack, third["key"]) == 401 and await works(stack, body["key"]) == 200

    revoked = await create(stack)
    await stack.call("POST", f"/v1/api-keys/{revoked['id']}/revoke")
    status, body = await stack.call("POST", f"/v1/api-keys/{revoked['id']}/rotate")
    assert status == 409 and body["error"]["code"] == "not_rotatable", body
    status, body = await stack.call("POST", "/v1/api-keys/key_unknown/rotate")
    assert status == 404, body


async def test_put_refuses_blank_keys_and_keeps_working(stack: Stack) -> None:
    good = f"test-put-{uuid.uuid4().hex}"
    for bad in (
        " " * 20,
        "\t" * 20,
        f" {good}",
        f"{good} ",
        f"test put {uuid.uuid4().hex}",
        "",
        "short",
    ):
        status, body = await stack.call(
            "PUT", "/v1/api-keys", json={"key": bad, "name": "n", "role": "ops", "identity": "ops"}
        )
        assert status == 422 and body["error"]["code"] == "validation_error", (bad, body)
    for name, identity in ((" ", "ops"), ("n", "   ")):
        status, body = await stack.call(
            "PUT",
            "/v1/api-keys",
            json={"key": good, "name": name, "role": "ops", "identity": identity},
        )
        assert status == 422, (name, identity, body)
    assert await works(stack, good) == 401  # nothing was stored

    status, body = await stack.call(
        "PUT",
        "/v1/api-keys",
        json={"key": good, "name": "put key", "role": "ops", "identity": "ops"},
    )
    assert status == 200, body
    assert (body["name"], body["role"], body["identity"]) == ("put key", "ops", "ops")
    assert body["last4"] == good[-4:] and "key" not in body
    assert await works(stack, good) == 200
    # the same key again changes it (and keeps its id)
    status, again = await stack.call(
        "PUT",
        "/v1/api-keys",
        json={"key": good, "name": "renamed", "role": "webshop", "identity": "web"},
    )
    assert status == 200 and again["id"] == body["id"] and again["name"] == "renamed"
    assert await works(stack, good) == 403  # a web shop may not read the channels

    status, body = await stack.call(
        "POST", "/v1/api-keys", json={"name": "  ", "role": "ops", "identity": "ops"}
    )
    assert status == 422, body
    status, body = await stack.call(
        "POST", "/v1/api-keys", json={"name": "n", "role": "root", "identity": "ops"}
    )
    assert status == 422, body
    status, body = await stack.call(
        "POST", "/v1/api-keys", json={"name": "n", "role": "ops", "identity": "o", "key": good}
    )
    assert status == 422, body  # a generated key is not chosen by the caller


# -- a store of the test's own -----------------------------------------------------------------


@asynccontextmanager
async def own_store(stack: Stack, tmp_path: Path) -> AsyncIterator[tuple[str, Store]]:
    """A fresh store on the stack's backend (no keys), closed and dropped at the end."""
    drop: Callable[[], Awaitable[None]] | None = None
    if stack.backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'own.db'}"
    else:
        found = await _postgres_database()
        assert found is not None
        url, drop = found
    store = await Store.open(url)
    try:
        yield url, store
    finally:
        await store.close()
        if drop is not None:
            await drop()


async def test_the_last_admin_key_that_works_is_not_revoked(stack: Stack, tmp_path: Path) -> None:
    async with own_store(stack, tmp_path) as (url, store):
        first = f"first-admin-{uuid.uuid4().hex}"
        await store.config.upsert_api_key(first, name="first", role="admin", identity="admin")
        settings = replace(stack.settings, database_url=url)
        http = TestClient(TestServer(init_app(settings, store=store, client=stack.client)))
        await http.start_server()
        try:
            own = Stack(
                http=http,
                store=store,
                client=stack.client,
                settings=settings,
                backend=stack.backend,
                keys={"admin": first},
            )
            status, body = await own.call("GET", "/v1/api-keys")
            assert status == 200 and len(body["api_keys"]) == 1, body
            first_id = body["api_keys"][0]["id"]
            status, body = await own.call("POST", f"/v1/api-keys/{first_id}/revoke")
            assert status == 409 and body["error"]["code"] == "last_admin_key", body
            assert await works(own, first) == 200

            second = await create(own, role="admin", identity="admin")
            status, body = await own.call("POST", f"/v1/api-keys/{first_id}/revoke")
            assert status == 200, body
            assert await works(own, first) == 401
            own.keys["admin"] = second["key"]
            status, body = await own.call("POST", f"/v1/api-keys/{second['id']}/revoke")
            assert status == 409 and body["error"]["code"] == "last_admin_key", body
            # a rotated admin key: the new one counts, so the old may go
            status, rotated = await own.call("POST", f"/v1/api-keys/{second['id']}/rotate")
            assert status == 201, rotated
            own.keys["admin"] = rotated["key"]
            status, body = await own.call("POST", f"/v1/api-keys/{second['id']}/revoke")
            assert status == 200, body
            assert await works(own, second["key"]) == 401
            assert await works(own, rotated["key"]) == 200
        finally:
            await http.close()


async def test_migration_5_keeps_the_keys_of_an_older_store(stack: Stack, tmp_path: Path) -> None:
    async with own_store(stack, tmp_path) as (url, store):
        # back to a store of the runner from before Alembic at its step 4 (api_keys without
        # the lifecycle columns), with two keys written as they were then: only their hash
        old_admin, old_ops = f"old-admin-{uuid.uuid4().hex}", f"old-ops-{uuid.uuid4().hex}"
        async with store.db.engine.begin() as conn:
            # the revisions after 0001 undone first (0001 is the old runner's last shape)
            await conn.run_sync(lambda c: command.downgrade(migrations.config(c), "0001"))
            await conn.execute(text("DROP INDEX ix_api_keys_key_id"))
            for column in LIFECYCLE_COLUMNS:
                await conn.execute(text(f"ALTER TABLE api_keys DROP COLUMN {column}"))
            await conn.execute(text("DROP TABLE alembic_version"))
            await conn.run_sync(lambda c: legacy.make(c, 4))
            for key, role in ((old_admin, "admin"), (old_ops, "ops")):
                await conn.execute(
                    text(
                        "INSERT INTO api_keys (key_hash, name, role, identity) "
                        "VALUES (:h, :n, :r, :r)"
                    ),
                    {"h": hashlib.sha256(key.encode()).hexdigest(), "n": f"old {role}", "r": role},
                )
        await store.close()

        migrated = await Store.open(url)  # runs its steps 5 to 8, then stamps revision 0001
        settings = replace(stack.settings, database_url=url)
        http = TestClient(TestServer(init_app(settings, store=migrated, client=stack.client)))
        await http.start_server()
        try:
            own = Stack(
                http=http,
                store=migrated,
                client=stack.client,
                settings=settings,
                backend=stack.backend,
                keys={"admin": old_admin},
            )
            status, body = await own.call("GET", "/v1/api-keys")
            assert status == 200, body
            entries = {k["name"]: k for k in body["api_keys"]}
            assert set(entries) == {"old admin", "old ops"}
            ids = {k["id"] for k in entries.values()}
            assert len(ids) == 2 and all(i.startswith("key_") for i in ids), ids
            for entry in entries.values():
                assert entry["created_at"] and entry["last4"] is None and entry["active"], entry
            assert await works(own, old_ops) == 200
            status, body = await own.call("POST", f"/v1/api-keys/{entries['old ops']['id']}/revoke")
            assert status == 200, body
            assert await works(own, old_ops) == 401
            # a second start finds the store at head and changes nothing
            await migrated.close()
            migrated = await Store.open(url)
            again = {k["name"]: k["id"] for k in await migrated.config.api_keys()}
            assert again == {name: entry["id"] for name, entry in entries.items()}
            assert (await migrated.db.schema_state()).revision == migrations.head()
        finally:
            await http.close()
            await migrated.close()


async def test_admin_deciding_for_an_approver_is_recorded_as_both(stack: Stack) -> None:
    channel = await stack.make_channel(
        "aud",
        approval_reasons=[
            {"reason": "credit", "rank": 1, "approvers": ["alice"]},
            {"reason": "margin", "rank": 1, "approvers": ["alice"]},
        ],
    )
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku), key="ops")
    await stack.wait_status(order_id, "AWAITING_APPROVAL")

    # a caller may not name who decided
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key="admin",
        json={
            "reason": "credit",
            "decision": "approve",
            "approver": "alice",
            "decided_by": "alice",
        },
    )
    assert status == 422, body
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key="alice",
        json={"reason": "credit", "decision": "approve", "decided_by": "someone"},
    )
    assert status == 422, body

    status, body = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key="admin",
        json={"reason": "credit", "decision": "approve", "approver": "alice", "comment": "ok"},
    )
    assert status == 200, body
    decided = {a["reason"]: a["decided_by"] for a in body["approvals"]}
    assert decided["credit"] == "admin for alice", body
    # the same decision again is the same decision (not a conflict)
    status, again = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key="admin",
        json={"reason": "credit", "decision": "approve", "approver": "alice", "comment": "ok"},
    )
    assert status == 200, again

    # alice herself is recorded as alice
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/approvals",
        key="alice",
        json={"reason": "margin", "decision": "approve"},
    )
    assert status == 200, body

    def recorded(view: dict[str, Any]) -> bool:
        details = [e["detail"] for e in view["events"] if e["type"] == "approval_approved"]
        return len(details) == 2

    view = await stack.wait_for(order_id, recorded, "both decisions in the audit trail")
    details = sorted(e["detail"] for e in view["events"] if e["type"] == "approval_approved")
    assert details == ["credit by admin for alice: ok", "margin by alice"], details
    by = {a["reason"]: a["decided_by"] for a in view["approvals"]}
    assert by == {"credit": "admin for alice", "margin": "alice"}, view["approvals"]
    status, body = await stack.call("GET", f"/v1/orders/{order_id}", key="alice")
    assert status == 200
    assert {a["reason"]: a["decided_by"] for a in body["approvals"]} == by
