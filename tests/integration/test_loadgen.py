"""`oms loadgen` against the running stack's API: it places orders at a rate for a few
seconds and plays the locations and the approver until every order is delivered, showing
its progress and a summary."""

from __future__ import annotations

import json
from urllib.parse import quote

from tests.integration.conftest import WAIT_SECONDS, Stack, unique_sku
from tests.integration.test_cli import oms


async def test_loadgen_places_orders_at_a_rate_and_delivers_them(stack: Stack) -> None:
    sku = unique_sku()  # stocked by the loadgen itself at the two warehouses it plays
    result = await oms(
        stack,
        "loadgen",
        "--rate",
        "5",
        "--duration",
        "3",
        "--mix",
        "web=0.8,b2b=0.2",
        "--sku",
        sku,
        "--location",
        "WH-BERLIN",
        "--location",
        "WH-MUNICH",
        "--stock",
        "100",
        "--drain",
        str(WAIT_SECONDS * 2),
        "--poll",
        "0.1",
        "--seed",
        "3",  # draws 3 b2b orders of the 15
        "--json",
    )
    assert result.stdout.startswith("{"), (result.stdout, result.stderr, result.exception)
    summary = json.loads(result.stdout)
    assert result.exit_code == 0, json.dumps(summary)
    assert summary["placed"] == 15, summary
    assert summary["delivered"] == 15 and summary["in_flight"] == 0, summary
    assert summary["errors"] == 0 and summary["refused"] == 0, summary["errors_by_kind"]
    assert summary["reports"] == 15 * 3  # pick, ship and deliver per order
    assert summary["latency_seconds"]["p50"] > 0 and summary["orders_per_second"] > 0
    # the progress line, last shown at the end
    assert "placed 15  in flight 0  delivered 15  errors 0" in result.stderr

    # what the API shows: every order DELIVERED, the b2b ones approved by alice
    status, listing = await stack.call(
        "GET", "/v1/orders?customer_id=LOADGEN-b2b&limit=100", key="ops"
    )
    assert status == 200, listing
    b2b = [o for o in listing["orders"] if o["order_id"].startswith(summary["prefix"])]
    assert summary["approved"] == len(b2b) > 0
    for row in b2b:
        view = await stack.order(quote(row["order_id"], safe=""))
        assert view["status"] == "DELIVERED", view["status"]
        assert [(a["status"], a["decided_by"]) for a in view["approvals"]] == [
            ("approved", "alice")
        ]
    status, listing = await stack.call(
        "GET", "/v1/orders?customer_id=LOADGEN-web&limit=100", key="ops"
    )
    web = [o for o in listing["orders"] if o["order_id"].startswith(summary["prefix"])]
    assert len(web) + len(b2b) == 15
    assert {o["status"] for o in web} == {"DELIVERED"}


async def test_loadgen_refuses_a_bad_mix_and_a_key_that_may_not_read_orders(
    stack: Stack,
) -> None:
    result = await oms(stack, "loadgen", "--rate", "1", "--duration", "1", "--mix", "web=x")
    assert result.exit_code == 2 and "web: 'x' is not a number" in result.stderr
    result = await oms(stack, "loadgen", "--rate", "1", "--duration", "1", key="web")
    assert result.exit_code == 1 and "HTTP 403 forbidden" in result.stderr
