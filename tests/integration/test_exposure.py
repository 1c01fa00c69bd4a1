"""Least exposure (issue 9 point 4): each role sees of the locations what it needs (a
location itself, a web shop what it needs for pickup, never URLs or secrets), and
messages go only to public hosts unless OMS_OUTGOING_ALLOW permits others: refused when
a URL is written (422 forbidden_target) and again when a message is sent (the worker's
TargetForbidden, which nobody retries into the target)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from temporalio.worker import Worker

from activities import all_activities
from api.app import init_app
from oms.targets import AllowList
from tests.integration.conftest import Stack, order_body, unique_sku
from workers.main import WORKFLOWS

REFUSED_HOSTS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://[::1]:8080/hook",
    "http://localhost:8080/hook",
    "http://127.0.0.1:8080/hook",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
]


def location(location_id: str, **fields: Any) -> dict[str, Any]:
    base = {"location_id": location_id, "name": f"Store {location_id}", "lat": 52.5, "lon": 13.4}
    return base | fields


@asynccontextmanager
async def api_allowing(stack: Stack, allow: str) -> AsyncIterator[Stack]:
    """An API of the test's own (same store and Temporal, a task queue of its own and
    no worker) whose OMS_OUTGOING_ALLOW is `allow`."""
    settings = replace(
        stack.settings, task_queue=f"oms-exp-{uuid.uuid4().hex[:8]}", outgoing_allow=allow
    )
    http = TestClient(TestServer(init_app(settings, store=stack.store, client=stack.client)))
    await http.start_server()
    try:
        yield Stack(
            http=http,
            store=stack.store,
            client=stack.client,
            settings=settings,
            backend=stack.backend,
            keys=stack.keys,
        )
    finally:
        await http.close()


# ------------------------------------------------------------------------ who sees what


async def test_a_location_key_sees_only_itself(stack: Stack) -> None:
    status, body = await stack.call("GET", "/v1/locations", key="WH-BERLIN")
    assert status == 200, body
    (berlin,) = body["locations"]
    assert berlin["location_id"] == "WH-BERLIN"
    assert "time_zone" in berlin and "webhook_secret" in berlin


async def test_a_web_shop_sees_names_for_pickup_not_urls(stack: Stack) -> None:
    suffix = uuid.uuid4().hex[:6]
    hooked, elsewhere, off = f"ST-EXP-{suffix}", f"ST-OTHER-{suffix}", f"ST-OFF-{suffix}"
    status, body = await stack.call(
        "PUT",
        "/v1/locations",
        json=[
            location(
                hooked,
                type="store",
                delivery_types=["ship", "pickup"],
                webhook_url="https://wms.example.com/secret-path",
            ),
            location(elsewhere, channels=["b2b"]),  # serves another channel only
            location(off, enabled=False),
        ],
    )
    assert status == 200, body

    resp = await stack.http.get(
        "/v1/locations", headers={"Authorization": f"Bearer {stack.keys['web']}"}
    )
    text = await resp.text()
    assert resp.status == 200, text
    listed = {loc["location_id"]: loc for loc in json.loads(text)["locations"]}
    assert listed[hooked] == {
        "location_id": hooked,
        "name": f"Store {hooked}",
        "type": "store",
        "delivery_types": ["ship", "pickup"],
    }
    assert elsewhere not in listed and off not in listed
    assert all(set(loc) == set(listed[hooked]) for loc in listed.values())
    assert "wms.example.com" not in text and "webhook" not in text and "secret" not in text

    # ops and admin see everything but secrets
    for key in ("ops", "admin"):
        status, body = await stack.call("GET", "/v1/locations", key=key)
        assert status == 200
        full = {loc["location_id"]: loc for loc in body["locations"]}
        assert {hooked, elsewhere, off} <= set(full)
        assert full[hooked]["webhook_url"] == "https://wms.example.com/secret-path"
        assert full[hooked]["webhook_secret"]["secret_set"] is True
        assert "whsec_" not in json.dumps(body)


async def test_an_approver_key_sees_no_locations(stack: Stack) -> None:
    await stack.add_key(f"appr-{uuid.uuid4().hex[:6]}", "approver")
    name = next(k for k in stack.keys if k.startswith("appr-"))
    status, body = await stack.call("GET", "/v1/locations", key=name)
    assert status == 403, body


# ------------------------------------------------------------- where messages may go


@pytest.mark.parametrize("url", REFUSED_HOSTS)
async def test_local_and_private_targets_are_refused_when_written(stack: Stack, url: str) -> None:
    async with api_allowing(stack, "") as own:
        loc = f"WH-T-{uuid.uuid4().hex[:6]}"
        status, body = await own.call("PUT", "/v1/locations", json=[location(loc, webhook_url=url)])
        assert status == 422, body
        assert body["error"]["code"] == "forbidden_target"
        assert body["error"]["details"][0]["field"] == "0.webhook_url"
        assert body["error"]["details"][0]["type"] == "forbidden_target"
        status, body = await own.call(
            "PUT",
            "/v1/sales-channels",
            json=[
                {"channel_id": f"t-{loc}", "callback_url": url},
                {
                    "channel_id": f"u-{loc}",
                    "approval_reasons": [
                        {"reason": "credit", "approvers": ["ann"], "webhook_url": url}
                    ],
                },
            ],
        )
        assert status == 422 and body["error"]["code"] == "forbidden_target", body
        fields = {d["field"] for d in body["error"]["details"]}
        assert fields == {"0.callback_url", "1.approval_reasons.0.webhook_url"}
        # nothing was stored
        assert await own.store.config.locations([loc]) == []
        assert await own.store.config.channel(f"t-{loc}") is None


async def test_file_urls_are_refused_whatever_the_allow_list(stack: Stack) -> None:
    async with api_allowing(stack, "0.0.0.0/0,::/0,localhost") as own:
        status, body = await own.call(
            "PUT",
            "/v1/locations",
            json=[location("WH-FILE", webhook_url="file:///etc/passwd")],
        )
        assert status == 422 and body["error"]["code"] == "validation_error", body
        assert body["error"]["details"][0]["field"] == "0.webhook_url"


async def test_the_allow_list_permits_what_it_names(stack: Stack) -> None:
    allow = "10.0.0.0/8,169.254.169.254/32,::1/128,127.0.0.0/8,localhost,fe80::/10,0.0.0.0/32"
    async with api_allowing(stack, allow) as own:
        for url in REFUSED_HOSTS[:-1]:
            loc = f"WH-OK-{uuid.uuid4().hex[:6]}"
            status, body = await own.call(
                "PUT", "/v1/locations", json=[location(loc, webhook_url=url)]
            )
            assert status == 200, (url, body)
            status, body = await own.call(
                "PUT", "/v1/sales-channels", json=[{"channel_id": f"a-{loc}", "callback_url": url}]
            )
            assert status == 200, (url, body)
        # multicast is not on the list
        status, body = await own.call(
            "PUT", "/v1/locations", json=[location("WH-MC", webhook_url=REFUSED_HOSTS[-1])]
        )
        assert status == 422 and body["error"]["code"] == "forbidden_target", body
    # a public host needs no allow-list
    async with api_allowing(stack, "") as own:
        status, body = await own.call(
            "PUT",
            "/v1/locations",
            json=[location(f"WH-PUB-{uuid.uuid4().hex[:6]}", webhook_url="https://8.8.8.8/h")],
        )
        assert status == 200, body


@asynccontextmanager
async def partner() -> AsyncIterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/hook")), received
    finally:
        await server.close()


@asynccontextmanager
async def strict_worker(stack: Stack) -> AsyncIterator[Stack]:
    """An API and a worker of the test's own whose allow-list is empty: URLs written
    before (through the stack's API, which allows loopback) are refused when sent."""
    async with api_allowing(stack, "") as own:
        worker = Worker(
            own.client,
            task_queue=own.settings.task_queue,
            workflows=WORKFLOWS,
            activities=all_activities(
                own.store,
                webhook_secret=own.settings.webhook_secret,
                outgoing_allow=AllowList.parse(""),
            ),
        )
        async with worker:
            yield own


async def cancel(own: Stack, order_id: str) -> None:
    """Leave nothing running on the test's worker."""
    status, body = await own.call(
        "POST", f"/v1/orders/{order_id}/cancel", key="ops", json={"reason": "test done"}
    )
    assert status == 200, body
    await own.wait_status(order_id, "CANCELLED")
    await own.client.get_workflow_handle(f"order-{order_id}").result()


async def test_a_work_order_to_a_forbidden_target_is_not_sent(stack: Stack) -> None:
    async with partner() as (url, received):
        loc = f"WH-SEND-{uuid.uuid4().hex[:6]}"
        status, body = await stack.call(
            "PUT", "/v1/locations", json=[location(loc, webhook_url=url)]
        )
        assert status == 200, body
        sku = unique_sku()
        await stack.set_stock([(loc, sku, 1)])
        async with strict_worker(stack) as own:
            order_id = await own.create_order(order_body(sku=sku, quantity=1))
            view = await own.wait_for(
                order_id,
                lambda v: any("OMS_OUTGOING_ALLOW" in r for r in v["hold_reasons"]),
                "the work order shown as refused by the allow-list",
            )
            (reason,) = view["hold_reasons"]
            # no retry makes the target allowed: the order waits for an operator
            assert reason.startswith("submission: ") and "refused" in reason, reason
            assert f"{loc}: 127.0.0.1 is a loopback address" in reason, reason
            view = await own.wait_status(order_id, "ON_HOLD")
            (refused,) = [e for e in view["events"] if e["type"] == "work_order_refused"]
            assert "loopback" in refused["detail"]
            assert "work_order_sent" not in [e["type"] for e in view["events"]]
            await cancel(own, order_id)
        assert received == []


async def test_an_order_response_to_a_forbidden_target_holds_the_order(stack: Stack) -> None:
    async with partner() as (url, received):
        channel = await stack.make_channel("fbd", callback_url=url)
        async with strict_worker(stack) as own:
            sku = unique_sku()
            await own.set_stock([("WH-BERLIN", sku, 1)])
            order_id = await own.create_order(
                order_body(channel=channel, sku=sku, quantity=1), key="ops"
            )
            view = await own.wait_status(order_id, "ON_HOLD")
            (reason,) = view["hold_reasons"]
            assert reason.startswith("response: ") and "TargetForbidden" in reason, reason
            assert "loopback" in reason
            await cancel(own, order_id)
        assert received == []
