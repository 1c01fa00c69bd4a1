"""GET /v1/reports/summary on both stores: one channel's orders counted by status and
day, the moments of their audit trail turned into percentiles (in SQL on PostgreSQL,
from the fetched durations on SQLite), the same figures either way."""

from __future__ import annotations

from tests.integration.conftest import Stack, order_body, unique_sku


async def test_summary_counts_a_channels_orders_and_their_timings(stack: Stack) -> None:
    channel = await stack.make_channel(
        "rep",
        approval_reasons=[{"reason": "check", "rank": 1, "approvers": ["alice"]}],
        auto_cancel_not_announced=True,
    )
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    shipped = await stack.create_order(order_body(channel=channel, sku=sku), key="ops")
    await stack.wait_status(shipped, "AWAITING_APPROVAL")
    status, body = await stack.call(
        "POST",
        f"/v1/orders/{shipped}/approvals",
        key="alice",
        json={"reason": "check", "decision": "approve"},
    )
    assert status == 200, body
    await stack.fulfil(await stack.current_shipment(shipped, "WH-BERLIN"), "WH-BERLIN", {"1": 2})
    await stack.wait_status(shipped, "DELIVERED")
    unroutable = await stack.create_order(order_body(channel=channel, sku=unique_sku()), key="ops")
    await stack.wait_status(unroutable, "AWAITING_APPROVAL", "CANCELLED")

    status, summary = await stack.call(
        "GET", f"/v1/reports/summary?sales_channel={channel}", key="ops"
    )
    assert status == 200, summary
    assert summary["orders"] == 2
    assert summary["by_channel"] == {channel: summary["by_status"]}
    assert summary["by_status"]["DELIVERED"] == 1
    assert summary["per_day"][-1]["orders"] == 2 and len(summary["per_day"]) == 30
    assert summary["backorder_rate"] == 0
    for name in ("order_to_ship", "order_to_delivery", "approval_lead_time"):
        timing = summary[name]
        assert timing["count"] == 1, (name, timing)
        assert 0 <= timing["p50"] <= timing["p90"] < 600, (name, timing)
    assert summary["order_to_ship"]["p50"] <= summary["order_to_delivery"]["p50"]

    # a period without the orders, and periods the API refuses
    status, empty = await stack.call(
        "GET",
        f"/v1/reports/summary?sales_channel={channel}&from=2020-01-01&to=2020-01-31",
        key="ops",
    )
    assert status == 200 and empty["orders"] == 0 and empty["cancel_rate"] is None
    assert empty["order_to_ship"] == {"count": 0, "p50": None, "p90": None}
    for bad in ("from=2020-02-01&to=2020-01-01", "from=2019-01-01&to=2020-06-01", "to=tomorrow"):
        status, err = await stack.call("GET", f"/v1/reports/summary?{bad}", key="ops")
        assert status == 400 and err["error"]["code"] == "invalid_query", (bad, err)
