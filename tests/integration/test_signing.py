"""Signed outgoing messages (issue 9 point 2): every receiver (a location's webhook, a
channel's callback, an approval reason's webhook) has a secret of its own, made when its
URL is first set and answered once; the configuration lists say only that it is set and
since when. Messages carry `X-OMS-Signature: t=<unix seconds>,v1=<hmac>` over the
timestamp and the body. Rotating a secret answers the new one; during the overlap
messages are signed with both. Receivers from before per-receiver secrets are signed
with OMS_WEBHOOK_SECRET until their secret is rotated. The receivers are real HTTP
servers on loopback."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import delete

from oms import webhooks
from store.receivers import location_receiver
from store.tables import ReceiverSecret
from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import eventually


@dataclass
class Receiver:
    """A partner's endpoint: answers 200 and keeps every message (headers, raw body)."""

    server: TestServer
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return str(self.server.make_url(path))

    def messages(self, order_id: str, kind: str | None = None) -> list[tuple[str, bytes]]:
        """(signature header, raw body) of the messages about `order_id`."""
        found = []
        for headers, raw in self.received:
            message = json.loads(raw)
            if message.get("order_id") == order_id and kind in (None, message.get("type")):
                found.append((headers.get(webhooks.SIGNATURE_HEADER, ""), raw))
        return found

    async def message(self, order_id: str, kind: str | None = None) -> tuple[str, bytes]:
        async def probe() -> tuple[str, bytes] | None:
            found = self.messages(order_id, kind)
            return found[0] if found else None

        return await eventually(probe, f"a {kind or 'message'} about {order_id}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async def hook(request: web.Request) -> web.Response:
        found.received.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    server = TestServer(app)
    await server.start_server()
    found = Receiver(server=server)
    try:
        yield found
    finally:
        await server.close()


async def hooked_location(stack: Stack, url: str) -> tuple[str, dict[str, Any]]:
    """A new location near Berlin with this webhook; returns its id and the PUT answer."""
    location_id = f"WH-SIGN-{uuid.uuid4().hex[:6]}"
    status, body = await stack.call(
        "PUT",
        "/v1/locations",
        json=[
            {
                "location_id": location_id,
                "name": "Signing warehouse",
                "lat": 52.5,
                "lon": 13.4,
                "webhook_url": url,
            }
        ],
    )
    assert status == 200, body
    return location_id, body


async def order_at(stack: Stack, location_id: str, channel: str = "web") -> str:
    sku = unique_sku()
    await stack.set_stock([(location_id, sku, 1)])
    return await stack.create_order(
        order_body(channel=channel, sku=sku, quantity=1), key="ops" if channel != "web" else None
    )


def header_parts(header: str) -> tuple[int, list[str]]:
    parsed = webhooks.parse(header)
    assert parsed is not None, header
    return parsed


async def listed_location(stack: Stack, location_id: str) -> tuple[dict[str, Any], str]:
    resp = await stack.http.get(
        "/v1/locations", headers={"Authorization": f"Bearer {stack.keys['ops']}"}
    )
    text = await resp.text()
    assert resp.status == 200, text
    (found,) = [loc for loc in json.loads(text)["locations"] if loc["location_id"] == location_id]
    return found, text


async def test_a_location_webhook_gets_its_own_secret_once(
    stack: Stack, receiver: Receiver
) -> None:
    location_id, answer = await hooked_location(stack, receiver.url("/a"))
    (made,) = answer["webhook_secrets"]
    assert made["location_id"] == location_id
    secret = made["secret"]
    assert secret.startswith("whsec_") and len(secret) >= 40
    assert secret != stack.settings.webhook_secret

    # never shown again: the list says it is set and since when
    listed, text = await listed_location(stack, location_id)
    assert listed["webhook_secret"]["secret_set"] is True
    assert listed["webhook_secret"]["created_at"]
    assert listed["webhook_secret"]["previous_valid_until"] is None
    assert secret not in text
    # a location key reading itself does not see it either
    await stack.add_key(location_id, "location", location_id)
    status, mine = await stack.call("GET", "/v1/locations", key=location_id)
    assert status == 200 and secret not in json.dumps(mine)

    # writing the location again (even with another URL) keeps the secret: none answered
    status, again = await stack.call(
        "PUT",
        "/v1/locations",
        json=[
            {
                "location_id": location_id,
                "name": "Signing warehouse",
                "lat": 52.5,
                "lon": 13.4,
                "webhook_url": receiver.url("/b"),
            }
        ],
    )
    assert status == 200 and again["webhook_secrets"] == [], again
    # what GET answers can be written back as it is (the secret's status is read-only)
    status, echoed = await stack.call("PUT", "/v1/locations", json=[listed])
    assert status == 200 and echoed["webhook_secrets"] == [], echoed
    relisted, _ = await listed_location(stack, location_id)
    assert relisted["webhook_secret"] == listed["webhook_secret"]
    # but a secret cannot be set by writing one
    status, refused = await stack.call(
        "PUT", "/v1/locations", json=[{**listed, "webhook_secret": {"secret": "mine"}}]
    )
    assert status == 422 and refused["error"]["details"][0]["field"] == "0.webhook_secret"

    # the work order is signed with the location's secret, over the time and the body
    order_id = await order_at(stack, location_id)
    header, raw = await receiver.message(order_id, "work_order")
    timestamp, signatures = header_parts(header)
    assert abs(time.time() - timestamp) < 120
    assert len(signatures) == 1
    assert webhooks.verify(secret, header, raw)
    assert not webhooks.verify(stack.settings.webhook_secret, header, raw)
    # a replay five minutes later is refused by the receiver's check
    assert not webhooks.verify(secret, header, raw, now=timestamp + 301)


async def test_each_location_has_a_different_secret(stack: Stack, receiver: Receiver) -> None:
    """A location cannot forge messages to another: their secrets differ."""
    _, answer_1 = await hooked_location(stack, receiver.url("/one"))
    second, answer_2 = await hooked_location(stack, receiver.url("/two"))
    secret_1 = answer_1["webhook_secrets"][0]["secret"]
    secret_2 = answer_2["webhook_secrets"][0]["secret"]
    assert secret_1 != secret_2
    order_id = await order_at(stack, second)
    header, raw = await receiver.message(order_id, "work_order")
    assert webhooks.verify(secret_2, header, raw)
    assert not webhooks.verify(secret_1, header, raw)


async def test_the_order_response_is_signed_with_the_callback_secret(
    stack: Stack, receiver: Receiver
) -> None:
    channel = f"sign-{uuid.uuid4().hex[:8]}"
    status, answer = await stack.call(
        "PUT",
        "/v1/sales-channels",
        json=[{"channel_id": channel, "callback_url": receiver.url("/callback")}],
    )
    assert status == 200, answer
    (made,) = answer["secrets"]
    assert made["channel_id"] == channel and made["receiver"] == "callback"
    secret = made["secret"]

    status, listed = await stack.call("GET", "/v1/sales-channels", key="ops")
    assert status == 200
    (shown,) = [c for c in listed["sales_channels"] if c["channel_id"] == channel]
    assert shown["callback_secret"]["secret_set"] is True
    assert secret not in json.dumps(listed)

    order_id = await order_at(stack, "WH-BERLIN", channel)
    header, raw = await receiver.message(order_id, "order_response")
    assert webhooks.verify(secret, header, raw)
    assert not webhooks.verify(stack.settings.webhook_secret, header, raw)


async def test_rotating_a_location_secret_signs_with_both_during_the_overlap(
    stack: Stack, receiver: Receiver
) -> None:
    location_id, answer = await hooked_location(stack, receiver.url("/rotate"))
    old = answer["webhook_secrets"][0]["secret"]
    path = f"/v1/locations/{location_id}/webhook-secret/rotate"

    status, rotated = await stack.call("POST", path)
    assert status == 200, rotated
    new = rotated["secret"]
    assert new != old and rotated["location_id"] == location_id
    assert rotated["previous_valid_until"] is not None
    listed, text = await listed_location(stack, location_id)
    assert listed["webhook_secret"]["previous_valid_until"] == rotated["previous_valid_until"]
    assert new not in text and old not in text

    order_id = await order_at(stack, location_id)
    header, raw = await receiver.message(order_id, "work_order")
    assert len(header_parts(header)[1]) == 2
    assert webhooks.verify(new, header, raw)
    assert webhooks.verify(old, header, raw)  # receivers still on the old secret

    # no overlap: the old secret stops at once
    status, rotated = await stack.call("POST", path, json={"overlap_seconds": 0})
    assert status == 200, rotated
    newest = rotated["secret"]
    assert rotated["previous_valid_until"] is None
    order_id = await order_at(stack, location_id)
    header, raw = await receiver.message(order_id, "work_order")
    assert len(header_parts(header)[1]) == 1
    assert webhooks.verify(newest, header, raw)
    assert not webhooks.verify(new, header, raw)


async def test_rotation_answers_for_unknown_receivers_roles_and_bad_overlaps(
    stack: Stack,
) -> None:
    status, body = await stack.call("POST", "/v1/locations/NOPE-404/webhook-secret/rotate")
    assert status == 404 and body["error"]["code"] == "location_not_found"
    # WH-BERLIN has no webhook: nothing to sign for
    status, body = await stack.call("POST", "/v1/locations/WH-BERLIN/webhook-secret/rotate")
    assert status == 409 and body["error"]["code"] == "no_webhook_url"
    status, body = await stack.call(
        "POST", "/v1/locations/WH-BERLIN/webhook-secret/rotate", key="ops"
    )
    assert status == 403
    for overlap in (-1, 31 * 24 * 3600, "soon"):
        status, body = await stack.call(
            "POST",
            "/v1/locations/WH-BERLIN/webhook-secret/rotate",
            json={"overlap_seconds": overlap},
        )
        assert status == 422, (overlap, body)
    status, body = await stack.call(
        "POST", "/v1/sales-channels/no-such-channel/callback-secret/rotate"
    )
    assert status == 404 and body["error"]["code"] == "sales_channel_not_found"
    status, body = await stack.call("POST", "/v1/sales-channels/web/callback-secret/rotate")
    assert status == 409 and body["error"]["code"] == "no_callback_url"
    status, body = await stack.call(
        "POST", "/v1/sales-channels/web/approval-reasons/nope/webhook-secret/rotate"
    )
    assert status == 404 and body["error"]["code"] == "approval_reason_not_found"


async def test_callback_and_approval_secrets_rotate(stack: Stack, receiver: Receiver) -> None:
    channel = f"rot-{uuid.uuid4().hex[:8]}"
    config = {
        "channel_id": channel,
        "callback_url": receiver.url("/callback"),
        "approval_reasons": [
            {"reason": "credit", "approvers": ["ann"], "webhook_url": receiver.url("/ap")},
            {"reason": "fraud", "approvers": ["ann"]},
        ],
    }
    status, answer = await stack.call("PUT", "/v1/sales-channels", json=[config])
    assert status == 200, answer
    made = {(m["receiver"], m.get("reason")): m["secret"] for m in answer["secrets"]}
    assert set(made) == {("callback", None), ("approval", "credit")}
    assert made[("callback", None)] != made[("approval", "credit")]

    base = f"/v1/sales-channels/{channel}"
    status, rotated = await stack.call("POST", f"{base}/callback-secret/rotate")
    assert status == 200 and rotated["channel_id"] == channel, rotated
    assert rotated["secret"] not in made.values()
    status, rotated = await stack.call(
        "POST", f"{base}/approval-reasons/credit/webhook-secret/rotate", json={}
    )
    assert status == 200 and rotated["reason"] == "credit", rotated
    assert rotated["secret"] not in made.values()
    status, body = await stack.call("POST", f"{base}/approval-reasons/fraud/webhook-secret/rotate")
    assert status == 409 and body["error"]["code"] == "no_webhook_url"

    status, listed = await stack.call("GET", "/v1/sales-channels", key="ops")
    (shown,) = [c for c in listed["sales_channels"] if c["channel_id"] == channel]
    credit, fraud = shown["approval_reasons"]
    assert credit["webhook_secret"]["secret_set"] is True
    assert credit["webhook_secret"]["previous_valid_until"] is not None
    assert fraud["webhook_secret"]["secret_set"] is False
    assert shown["callback_secret"]["previous_valid_until"] is not None
    assert rotated["secret"] not in json.dumps(listed)
    # the channel read can be written back as it is
    status, echoed = await stack.call("PUT", "/v1/sales-channels", json=[shown])
    assert status == 200 and echoed["secrets"] == [], echoed


async def test_a_receiver_from_before_is_signed_with_the_shared_secret_until_rotated(
    stack: Stack, receiver: Receiver
) -> None:
    location_id, _ = await hooked_location(stack, receiver.url("/legacy"))
    # as if the location had been set up before secrets per receiver (migration 6)
    async with stack.store.db.transaction() as session:
        await session.execute(
            delete(ReceiverSecret).where(ReceiverSecret.receiver == location_receiver(location_id))
        )
    listed, _ = await listed_location(stack, location_id)
    assert listed["webhook_secret"]["secret_set"] is False
    shared = stack.settings.webhook_secret

    order_id = await order_at(stack, location_id)
    header, raw = await receiver.message(order_id, "work_order")
    assert webhooks.verify(shared, header, raw)

    # its first own secret; the shared one is still signed with during the overlap
    status, rotated = await stack.call(
        "POST", f"/v1/locations/{location_id}/webhook-secret/rotate", json={"overlap_seconds": 60}
    )
    assert status == 200, rotated
    order_id = await order_at(stack, location_id)
    header, raw = await receiver.message(order_id, "work_order")
    assert webhooks.verify(rotated["secret"], header, raw)
    assert webhooks.verify(shared, header, raw)
