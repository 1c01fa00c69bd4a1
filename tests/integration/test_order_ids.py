"""Order ids are unique per sales channel (issue 9, point 4): two channels may both have
an order "1001"; the OMS's id (`1001@web`) and the workflow id name the channel; the
answer to a duplicate says nothing about another channel's orders; an order placed
before ids were scoped keeps its plain id; migration 8 carries a store from before."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from alembic import command
from sqlalchemy import text

from api.messages import OrderRequest
from api.orders import request_hash
from oms.ids import channel_order_id, order_key
from store import Store, migrations
from store.migrations import legacy
from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.test_keys import own_store


async def _placed(stack: Stack, shop_id: str, channel: str, customer: str) -> dict[str, object]:
    body = order_body(order_id=shop_id, channel=channel, sku=unique_sku())
    body["customer"] = {"id": customer}
    status, answer = await stack.call("POST", "/v1/orders", key=channel, json=body)
    assert status == 201, answer
    return answer


async def test_two_channels_may_use_the_same_order_id(stack: Stack) -> None:
    shop_id = f"SAME-{uuid.uuid4().hex[:8]}"
    web = await _placed(stack, shop_id, "web", "C-WEB")
    b2b = await _placed(stack, shop_id, "b2b", "C-B2B")
    assert web["order_id"] == f"{shop_id}@web" and b2b["order_id"] == f"{shop_id}@b2b"
    assert web["channel_order_id"] == b2b["channel_order_id"] == shop_id
    assert web["workflow_id"] == f"order-{shop_id}@web"
    assert b2b["workflow_id"] == f"order-{shop_id}@b2b"
    for key, customer in (("web", "C-WEB"), ("b2b", "C-B2B")):
        # each web shop reaches its own order by its own id, and by the OMS's id
        for path_id in (shop_id, f"{shop_id}@{key}"):
            status, view = await stack.call("GET", f"/v1/orders/{path_id}", key=key)
            assert status == 200, view
            assert view["customer_id"] == customer and view["channel_order_id"] == shop_id
        # and never the other channel's, even by its OMS id
        other = "b2b" if key == "web" else "web"
        status, body = await stack.call("GET", f"/v1/orders/{shop_id}@{other}", key=key)
        assert (status, body["error"]["code"]) == (404, "order_not_found")
    # both run, each as its own workflow
    for answer in (web, b2b):
        await stack.client.get_workflow_handle(str(answer["workflow_id"])).describe()
    # operations see both: the channel's id alone names two orders
    status, body = await stack.call("GET", f"/v1/orders/{shop_id}", key="ops")
    assert (status, body["error"]["code"]) == (409, "ambiguous_order_id"), body
    assert (
        f"{shop_id}@web" in body["error"]["message"]
        and f"{shop_id}@b2b" in body["error"]["message"]
    )
    status, view = await stack.call("GET", f"/v1/orders/{shop_id}@b2b", key="ops")
    assert status == 200 and view["customer_id"] == "C-B2B", view
    status, listed = await stack.call("GET", "/v1/orders?customer_id=C-WEB&limit=500", key="ops")
    assert status == 200
    mine = [o for o in listed["orders"] if o["channel_order_id"] == shop_id]
    assert [(o["order_id"], o["sales_channel"]) for o in mine] == [(f"{shop_id}@web", "web")]


async def test_a_duplicate_answers_within_its_own_channel_only(stack: Stack) -> None:
    shop_id = f"DUP-{uuid.uuid4().hex[:8]}"
    body = order_body(order_id=shop_id, channel="web", sku=unique_sku())
    status, first = await stack.call("POST", "/v1/orders", key="web", json=body)
    assert status == 201, first
    # the same body again: the same order (a retry), never a second one
    status, again = await stack.call("POST", "/v1/orders", key="web", json=body)
    assert status == 200 and again["order_id"] == first["order_id"], again
    # another body under the same id in the same channel: a conflict
    changed = {**body, "customer": {"id": "C-OTHER"}}
    status, answer = await stack.call("POST", "/v1/orders", key="web", json=changed)
    assert (status, answer["error"]["code"]) == (409, "order_conflict"), answer
    # another channel's order with that id is its own order: a 201 that tells it nothing
    other = {**changed, "sales_channel": "b2b"}
    status, answer = await stack.call("POST", "/v1/orders", key="b2b", json=other)
    assert status == 201 and answer["order_id"] == f"{shop_id}@b2b", answer


async def test_an_order_from_before_keeps_its_plain_id(stack: Stack) -> None:
    # an order written before ids were scoped: the store row under its plain id, with its
    # workflow id `order-<id>`; the API wrote the row, then died before the start
    shop_id = f"OLD-{uuid.uuid4().hex[:8]}"
    body = order_body(order_id=shop_id, channel="web", sku=unique_sku(), quantity=1)
    request = OrderRequest.model_validate(body)
    await stack.store.orders.create(
        order_id=shop_id,
        sales_channel="web",
        customer_id="C-1",
        total=request.total,
        currency="EUR",
        request_hash=request_hash(request),
        workflow_id=f"order-{shop_id}",
        lines=[("1", request.lines[0].sku, 1, Decimal("19.99"))],
    )
    # the web shop's retry of the same body starts that order, under its old id
    status, answer = await stack.call("POST", "/v1/orders", key="web", json=body)
    assert status == 200, answer
    assert answer["order_id"] == shop_id and answer["workflow_id"] == f"order-{shop_id}"
    await stack.client.get_workflow_handle(f"order-{shop_id}").describe()
    status, view = await stack.call("GET", f"/v1/orders/{shop_id}", key="web")
    assert status == 200 and view["order_id"] == shop_id, view
    assert view["channel_order_id"] == shop_id
    # another channel may now use that id for an order of its own
    status, answer = await stack.call(
        "POST", "/v1/orders", key="b2b", json={**body, "sales_channel": "b2b"}
    )
    assert status == 201 and answer["order_id"] == f"{shop_id}@b2b", answer
    status, cancelled = await stack.call("POST", f"/v1/orders/{shop_id}/cancel", key="web", json={})
    assert status in (200, 202), cancelled


def test_the_oms_id_keeps_both_parts() -> None:
    assert order_key("A:1.b-2", "shop:eu") == "A:1.b-2@shop:eu"
    assert channel_order_id("A:1.b-2@shop:eu") == "A:1.b-2"
    assert channel_order_id("legacy-1") == "legacy-1"


async def test_migration_8_carries_the_orders_of_an_older_store(
    stack: Stack, tmp_path: Path
) -> None:
    async with own_store(stack, tmp_path) as (url, store):
        # back to a store of the runner from before Alembic at its step 7: the revisions
        # after 0001 undone, then no channel_order_id, 64-character ids
        async with store.db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(migrations.config(c), "0001"))
            await conn.execute(text("DROP INDEX ux_orders_channel_order_id"))
            await conn.execute(text("DROP INDEX ix_orders_channel_order_id"))
            await conn.execute(text("ALTER TABLE orders DROP COLUMN channel_order_id"))
            if stack.backend != "sqlite":
                await conn.execute(
                    text("ALTER TABLE orders ALTER COLUMN order_id TYPE VARCHAR(64)")
                )
                await conn.execute(
                    text("ALTER TABLE order_lines ALTER COLUMN order_id TYPE VARCHAR(64)")
                )
            await conn.execute(text("DROP TABLE alembic_version"))
            await conn.run_sync(lambda c: legacy.make(c, 7))
            await conn.execute(
                text(
                    "INSERT INTO orders (order_id, sales_channel, customer_id, status, total, "
                    "currency, request_hash, workflow_id, created_at, updated_at) VALUES "
                    "('OLD-1', 'web', 'C-1', 'DELIVERED', 10, 'EUR', 'h', 'order-OLD-1', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        await store.close()

        migrated = await Store.open(url)  # runs its step 8, then stamps revision 0001
        try:
            [old] = await migrated.orders.find("OLD-1", "web")
            assert (old.order_id, old.channel_order_id) == ("OLD-1", "OLD-1")
            assert await migrated.orders.find("OLD-1", "b2b") == []
            # the longest OMS id fits, with its lines
            longest = order_key("x" * 64, "y" * 64)
            created, row = await migrated.orders.create(
                order_id=longest,
                channel_order_id="x" * 64,
                sales_channel="y" * 64,
                customer_id="C-1",
                total=Decimal("1.00"),
                currency="EUR",
                request_hash="h",
                workflow_id=f"order-{longest}",
                lines=[("1", "SKU-1", 1, Decimal("1.00"))],
            )
            assert created and row.channel_order_id == "x" * 64
            assert len(await migrated.orders.lines(longest)) == 1
        finally:
            await migrated.close()
