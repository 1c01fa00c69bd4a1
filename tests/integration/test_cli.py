"""The `oms` operator CLI against the running stack's API (real HTTP on loopback): keys,
stock loads, held orders, the store's migrations, and what an operator sees when the API
is unreachable. The CLI is synchronous: it runs in a thread so the API can answer."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from click.testing import CliRunner, Result

from oms.cli import EXIT_API_ERROR, EXIT_UNREACHABLE, cli
from store import migrations
from tests.integration.conftest import Stack, order_body, unique_sku


async def oms(stack: Stack | None, *args: str, key: str | None = "admin", **env: str) -> Result:
    variables: dict[str, str | None] = {
        "OMS_API_URL": str(stack.http.make_url("")) if stack else None,
        "OMS_API_KEY": (stack.keys[key] if stack and key else key),
        "OMS_TEMPORAL_UI_URL": None,
        "OMS_TEMPORAL_NAMESPACE": None,
        **env,
    }
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli, list(args), env=variables)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


async def test_keys_create_list_rotate_revoke(stack: Stack) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = json.loads(
        ok(
            await oms(
                stack,
                "keys",
                "create",
                "--name",
                name,
                "--role",
                "ops",
                "--identity",
                name,
                "--json",
            )
        ).stdout
    )
    stack.keys[name] = created["key"]
    status, _ = await stack.call("GET", "/v1/orders?limit=1", key=name)
    assert status == 200

    listed = ok(await oms(stack, "keys", "list")).stdout
    row = next(line for line in listed.splitlines() if line.startswith(created["id"]))
    assert name in row and "ops" in row and created["key"][-4:] in row

    rotated = json.loads(
        ok(
            await oms(stack, "--json", "keys", "rotate", created["id"], "--overlap-seconds", "0")
        ).stdout
    )
    assert rotated["replaces"]["id"] == created["id"]
    status, body = await stack.call("GET", "/v1/orders?limit=1", key=name)
    assert status == 401, body
    stack.keys[name] = rotated["key"]
    status, _ = await stack.call("GET", "/v1/orders?limit=1", key=name)
    assert status == 200

    revoked = ok(await oms(stack, "keys", "revoke", rotated["id"])).stdout
    assert f"revoked {rotated['id']} ({name})" in revoked
    status, body = await stack.call("GET", "/v1/orders?limit=1", key=name)
    assert status == 401, body
    listing = json.loads(ok(await oms(stack, "keys", "list", "--json")).stdout)
    entry = next(k for k in listing["api_keys"] if k["id"] == rotated["id"])
    assert entry["revoked_at"] is not None and entry["active"] is False

    # an ops key may not manage keys: the API's code and message, exit code 1
    result = await oms(stack, "keys", "list", key="ops")
    assert result.exit_code == EXIT_API_ERROR
    assert "HTTP 403 forbidden" in result.stderr


async def test_inventory_load_streams_a_file_all_or_nothing(stack: Stack, tmp_path: Path) -> None:
    sku = unique_sku()
    feed = tmp_path / "snapshot.csv"
    feed.write_text(
        "location_id,sku,on_hand\n" + "".join(f"WH-BERLIN,{sku}-{i},{i}\n" for i in range(3000))
    )
    result = await oms(stack, "inventory", "load", str(feed), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["loaded"] == 3000
    stock = await stack.store.inventory.stock([f"{sku}-2999"])
    assert [r.on_hand for r in stock] == [2999]

    bad = tmp_path / "bad.ndjson"
    bad.write_text(
        json.dumps({"location_id": "WH-BERLIN", "sku": f"{sku}-1", "on_hand": 50})
        + "\n"
        + json.dumps({"location_id": "WH-NOWHERE", "sku": f"{sku}-1", "on_hand": 5})
        + "\n"
    )
    result = await oms(stack, "inventory", "load", str(bad))
    assert result.exit_code == EXIT_API_ERROR, result.output
    assert "line 2: unknown location WH-NOWHERE" in result.stderr
    assert "nothing loaded" in result.stdout
    stock = await stack.store.inventory.stock([f"{sku}-1"])
    assert [r.on_hand for r in stock] == [1]  # line 1 was not applied either


async def test_inventory_load_reports_bad_rows_and_loads_the_rest(
    stack: Stack, tmp_path: Path
) -> None:
    sku, other = unique_sku(), unique_sku()
    feed = tmp_path / "stock.csv"
    feed.write_text(
        "location_id,sku,on_hand\n"
        f"WH-BERLIN,{sku},7\n"
        f"WH-MUNICH,{sku},3\n"
        f"WH-BERLIN,{other},many\n"  # line 4: not a number
        f"WH-NOWHERE,{other},5\n"  # line 5: the API knows no such location
        f"WH-MUNICH,{other},2\n"
    )
    result = await oms(stack, "inventory", "load", str(feed), "--partial", "--batch-size", "2")
    assert result.exit_code == EXIT_API_ERROR, result.output
    assert "line 4: on_hand 'many' is not a whole number" in result.stderr
    assert "line 5:" in result.stderr and "WH-NOWHERE" in result.stderr
    assert "3 stock levels loaded from 5 rows, 2 rejected" in result.stdout
    atp = await stack.atp(sku)
    assert (atp["WH-BERLIN"], atp["WH-MUNICH"]) == (7, 3)
    assert (await stack.atp(other))["WH-MUNICH"] == 2

    lines = tmp_path / "stock.jsonl"
    lines.write_text(
        json.dumps({"location_id": "WH-BERLIN", "sku": other, "on_hand": 4})
        + "\n\n"  # line 2 is blank; line 3: a sku the API refuses
        + json.dumps({"location_id": "WH-BERLIN", "sku": "no spaces please", "on_hand": 1})
        + "\n"
        + json.dumps({"location_id": "WH-BERLIN", "sku": sku, "on_hand": 1})
        + "\n"
    )
    result = await oms(stack, "inventory", "load", str(lines), "--partial", "--json")
    assert result.exit_code == EXIT_API_ERROR, result.output
    summary = json.loads(result.stdout)
    assert summary["loaded"] == 2 and summary["rows"] == 3
    assert [r["line"] for r in summary["rejected"]] == [3]
    assert summary["rejected"][0]["problem"].startswith("sku: ")
    assert (await stack.atp(other))["WH-BERLIN"] == 4
    assert (await stack.atp(sku))["WH-BERLIN"] == 1


async def test_held_orders_shown_resumed_and_cancelled(stack: Stack, tmp_path: Path) -> None:
    sku = unique_sku()  # no location has it: the order is NOT_ANNOUNCED
    waiting = await stack.create_order(order_body(sku=sku, quantity=1))
    unpaid_body = order_body(quantity=1)
    unpaid_body["payment"]["authorized"] = False
    unpaid = await stack.create_order(unpaid_body)
    await stack.wait_status(waiting, "NOT_ANNOUNCED")
    await stack.wait_status(unpaid, "ON_HOLD")

    held = json.loads(ok(await oms(stack, "orders", "held", "--json", key="ops")).stdout)
    reasons = {o["order_id"]: (o["status"], o["hold_reasons"]) for o in held["orders"]}
    assert reasons[unpaid] == ("ON_HOLD", ["payment is not authorized"])
    assert reasons[waiting][0] == "NOT_ANNOUNCED" and sku in reasons[waiting][1][0]
    table = ok(await oms(stack, "orders", "held", "--status", "ON_HOLD", key="ops")).stdout
    row = next(line for line in table.splitlines() if line.startswith(unpaid))
    assert "ON_HOLD" in row and "payment is not authorized" in row
    assert waiting not in table

    shown = ok(
        await oms(
            stack, "orders", "show", unpaid, key="ops", OMS_TEMPORAL_UI_URL="http://ui.test:8233/"
        )
    ).stdout
    assert "status    ON_HOLD" in shown
    assert "held      payment is not authorized" in shown
    workflow_path = quote("order-" + unpaid, safe="")
    assert f"http://ui.test:8233/namespaces/default/workflows/{workflow_path}" in shown
    assert "status_on_hold" in shown or "ON_HOLD" in shown.split("Last events")[1]
    view = json.loads(ok(await oms(stack, "orders", "show", waiting, "--json", key="ops")).stdout)
    assert view["status"] == "NOT_ANNOUNCED"
    assert view["temporal_ui_url"] == (
        f"http://localhost:8233/namespaces/default/workflows/{quote('order-' + waiting, safe='')}"
    )

    # stock arrives (loaded by the CLI), the operator resumes: the order is routed there
    feed = tmp_path / "arrived.csv"
    feed.write_text(f"location_id,sku,on_hand\nWH-MUNICH,{sku},1\n")
    ok(await oms(stack, "inventory", "load", str(feed)))
    resumed = ok(
        await oms(stack, "orders", "resume", waiting, "--comment", "stock arrived", key="ops")
    )
    assert f"resumed {waiting}: order is" in resumed.stdout
    view = await stack.wait_status(waiting, "IN_FULFILLMENT")
    assert view["lines"][0]["location_id"] == "WH-MUNICH"

    cancelled = ok(
        await oms(stack, "orders", "cancel", unpaid, "--reason", "customer gave up", key="ops")
    )
    assert f"cancelled {unpaid}: order is" in cancelled.stdout
    view = await stack.wait_status(unpaid, "CANCELLED")
    # a second resume of a closed order: the API's refusal, exit code 1
    again = await oms(stack, "orders", "resume", unpaid, key="ops")
    assert again.exit_code == EXIT_API_ERROR
    assert "HTTP 409" in again.stderr
    missing = await oms(stack, "orders", "show", f"NOPE-{uuid.uuid4().hex[:6]}", key="ops")
    assert missing.exit_code == EXIT_API_ERROR
    assert "HTTP 404 order_not_found" in missing.stderr


async def test_unreachable_api_and_missing_key(stack: Stack) -> None:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await oms(stack, "keys", "list", OMS_API_URL=f"http://127.0.0.1:{port}")
    assert result.exit_code == EXIT_UNREACHABLE
    assert f"the OMS API at http://127.0.0.1:{port} is unreachable" in result.stderr
    assert "Traceback" not in result.output
    result = await oms(stack, "keys", "list", key=None)
    assert result.exit_code == 2
    assert "no API key: set OMS_API_KEY" in result.stderr


async def test_db_upgrade(stack: Stack, tmp_path: Path) -> None:
    fresh = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    first = ok(await oms(None, "db", "upgrade", "--database-url", fresh, key=None))
    assert "applied revision 0001: initial schema" in first.stdout
    assert f"store at revision {migrations.head()}" in first.stdout
    again: dict[str, Any] = json.loads(
        ok(await oms(None, "db", "upgrade", "--json", key=None, OMS_DATABASE_URL=fresh)).stdout
    )
    assert again["applied"] == []
    # the stack's own store (SQLite or PostgreSQL) is up to date
    current = ok(
        await oms(None, "db", "upgrade", key=None, OMS_DATABASE_URL=stack.settings.database_url)
    )
    assert "up to date" in current.stdout
    shown = ok(await oms(None, "db", "current", key=None, OMS_DATABASE_URL=fresh))
    assert shown.stdout.strip() == f"store at revision {migrations.head()}: this release's head"
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    behind = ok(await oms(None, "db", "current", key=None, OMS_DATABASE_URL=empty))
    assert behind.stdout.strip() == (
        f"store at no revision (an empty store): behind this release's {migrations.head()}: "
        "run `oms db upgrade`"
    )
