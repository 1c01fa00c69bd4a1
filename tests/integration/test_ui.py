"""The back office in a real browser: Playwright drives Debian's Chromium against the API
served on loopback (SQLite store, real Temporal dev server and worker).

Chromium comes from the `chromium` Debian package (`.ci/run` installs it when missing); no
browser is downloaded at run time. Without it the tests skip, except under CI
(OMS_REQUIRE_POSTGRES=1), where they must run. A failing test leaves a screenshot of the
page in tests/artifacts/. OMS_UI_DOCS_SCREENSHOTS=1 also writes the README's screenshots
into docs/."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.conftest import Stack, order_body, unique_sku
from tests.integration.gates import eventually
from tests.integration.test_transfers import network, pickup_order

# the browser tests run against the SQLite store; click and collect on PostgreSQL too
SQLITE = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
BOTH_DATABASES = pytest.mark.parametrize("stack", ["sqlite", "postgresql"], indirect=True)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS = ROOT / "docs"
TIMEOUT_MS = 30_000

try:
    from playwright.async_api import Browser, Page, async_playwright
    from playwright.async_api import expect as pw_expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = _chromium()
    if executable is None or async_playwright is None:
        why = "Debian's chromium is not installed" if executable is None else "no playwright"
        if os.environ.get("OMS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"browser tests must run under CI: {why}")
        pytest.skip(why)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


class Ui:
    """Browser sessions against one stack, each in its own context (its own cookies)."""

    def __init__(self, stack: Stack, browser: Browser) -> None:
        self.stack = stack
        self.browser = browser
        self.base = str(stack.http.make_url("")).rstrip("/")

    def url(self, path: str) -> str:
        return self.base + path

    @asynccontextmanager
    async def signed_in(self, who: str, name: str) -> AsyncIterator[Page]:
        """A phone-sized page signed in with `who`'s key; a screenshot if the block fails."""
        context = await self.browser.new_context(viewport={"width": 420, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        try:
            await page.goto(self.url("/ui/login"))
            await page.fill("input[name=api_key]", self.stack.keys[who])
            await page.click("button[type=submit]")
            await page.wait_for_load_state()
            yield page
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            raise
        finally:
            await context.close()


@pytest.fixture
async def ui(stack: Stack, browser: Browser) -> Ui:
    return Ui(stack, browser)


async def docs_screenshot(page: Page, name: str) -> None:
    if os.environ.get("OMS_UI_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        await page.set_viewport_size({"width": 1100, "height": 900})
        await page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)
        await page.set_viewport_size({"width": 420, "height": 900})


def card(page: Page, order_id: str) -> Any:
    return page.locator(f'article[data-order="{order_id}"]')


@SQLITE
async def test_approver_approves_a_b2b_order_in_the_inbox(stack: Stack, ui: Ui) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(
        order_body(channel="b2b", sku=sku, quantity=3, price="120.00"), key="b2b"
    )
    await stack.wait_status(order_id, "AWAITING_APPROVAL")

    async with ui.signed_in("alice", "approver-inbox") as page:
        assert page.url.endswith("/ui/approvals")
        order = card(page, order_id)
        await pw_expect(order).to_be_visible()
        await pw_expect(order.locator(".total")).to_have_text("360.00 EUR")
        await pw_expect(order).to_contain_text("credit-check")
        await pw_expect(order).to_contain_text(sku)
        await pw_expect(order).to_contain_text("C-1")
        await docs_screenshot(page, "approvals-inbox")
        await order.locator("textarea[name=comment]").fill("credit line checked")
        await order.locator("button[value=approve]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text(
            f"credit-check approved for {order_id}"
        )
        await pw_expect(card(page, order_id)).to_have_count(0)
        decided = page.locator("table.decided tr", has_text=order_id)
        await pw_expect(decided).to_contain_text("credit line checked")

    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    approval = view["approvals"][0]
    assert (approval["status"], approval["decided_by"]) == ("approved", "alice")
    assert approval["comment"] == "credit line checked"


@SQLITE
async def test_ops_assigns_a_check_announced_order_through_the_form(stack: Stack, ui: Ui) -> None:
    channel = await stack.make_channel("ui", split_policy="ship_complete")
    sku_a, sku_b = unique_sku(), unique_sku()
    await stack.set_stock(
        [("WH-BERLIN", sku_a, 5), ("WH-MUNICH", sku_b, 5), ("WH-LONDON", sku_a, 1)]
    )
    body = order_body(channel=channel, sku=sku_a, quantity=1)
    body["lines"].append({"line_id": "2", "sku": sku_b, "quantity": 1, "unit_price": "19.99"})
    body["payment"]["amount"] = "39.98"
    order_id = await stack.create_order(body, key="ops")
    await stack.wait_status(order_id, "CHECK_ANNOUNCED")

    async with ui.signed_in("ops", "ops-assign") as page:
        assert page.url.endswith("/ui/ops")
        order = page.locator("#queue-check_announced").locator(f'article[data-order="{order_id}"]')
        await pw_expect(order).to_be_visible()
        await order.locator("details.routing summary").click()
        await pw_expect(order.locator("details.routing")).to_contain_text("WH-BERLIN")
        form = order.locator("form.assign")
        await form.locator("select[name=location_1]").select_option("WH-BERLIN")
        await form.locator("select[name=location_2]").select_option("WH-MUNICH")
        await form.locator("input[name=comment]").fill("two parcels are fine")
        await form.locator("button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text(
            "line 1 at WH-BERLIN, line 2 at WH-MUNICH"
        )
        view = await stack.wait_status(order_id, "IN_FULFILLMENT")
        lines = {line["line_id"]: line["location_id"] for line in view["lines"]}
        assert lines == {"1": "WH-BERLIN", "2": "WH-MUNICH"}

        # the order page shows what happened, with the workflow's link
        await page.goto(ui.url(f"/ui/orders/{order_id.replace('@', '%40')}"))
        await pw_expect(page.locator("h1")).to_contain_text(order_id)
        await pw_expect(page.locator(".timeline")).to_contain_text("assigned manually")
        link = page.locator("a.ext")
        assert re.search(
            r"/namespaces/default/workflows/order-", await link.get_attribute("href") or ""
        )


@SQLITE
async def test_store_picks_short_and_the_other_location_ships(stack: Stack, ui: Ui) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 2), ("WH-MUNICH", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2), key="web")
    first = await stack.current_shipment(order_id, "WH-BERLIN")

    async with ui.signed_in("WH-BERLIN", "store-short-pick") as page:
        work_order = page.locator(f'article[data-shipment="{first}"]')
        await pw_expect(work_order).to_be_visible()
        await work_order.locator("input[name=picked_1]").fill("1")
        await work_order.locator("form.pick button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text("short on line 1")
        # the picked unit ships from Berlin
        work_order = page.locator(f'article[data-shipment="{first}"]')
        await work_order.locator("input[name=carrier]").fill("DHL")
        await work_order.locator("input[name=tracking_number]").fill("BER-1")
        await work_order.locator("form.ship button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text("shipped")

    second = await stack.current_shipment(order_id, "WH-MUNICH")
    async with ui.signed_in("WH-MUNICH", "store-rerouted") as page:
        work_order = page.locator(f'article[data-shipment="{second}"]')
        await pw_expect(work_order).to_contain_text(order_id)
        await pw_expect(work_order.locator("input[name=picked_1]")).to_have_value("1")
        await work_order.locator("form.pick button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text("picked")
        work_order = page.locator(f'article[data-shipment="{second}"]')
        await work_order.locator("input[name=carrier]").fill("UPS")
        await work_order.locator("input[name=tracking_number]").fill("MUC-2")
        await work_order.locator("form.ship button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text(f"{second} shipped")

    view = await stack.wait_status(order_id, "SHIPPED")
    shipped = {(s["location_id"], s["quantity"], s["tracking_number"]) for s in view["shipments"]}
    assert {("WH-BERLIN", 1, "BER-1"), ("WH-MUNICH", 1, "MUC-2")} <= shipped


@SQLITE
async def test_roles_csrf_and_revoked_keys_are_refused(stack: Stack, ui: Ui) -> None:
    # a web shop's key opens its orders, not the operations or approval pages
    async with ui.signed_in("web", "webshop-forbidden") as page:
        assert page.url.endswith("/ui/orders")
        for path in ("/ui/ops", "/ui/approvals", "/ui/inventory", "/ui/reports"):
            response = await page.goto(ui.url(path))
            assert response is not None and response.status == 403, path
            await pw_expect(page.locator("h1")).to_contain_text("403")

    # a form posted without this session's CSRF token changes nothing
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku), key="web")
    await stack.wait_status(order_id, "IN_FULFILLMENT")
    name = f"ui-ops-{uuid.uuid4().hex[:6]}"
    key = f"test-{name}-{uuid.uuid4().hex}"
    status, entry = await stack.call(
        "PUT", "/v1/api-keys", json={"key": key, "name": name, "role": "ops", "identity": "ops"}
    )
    assert status == 200, entry
    stack.keys[name] = key
    async with ui.signed_in(name, "csrf-refused") as page:
        path = f"/ui/orders/{order_id.replace('@', '%40')}/cancel"
        for form in ({"reason": "no token"}, {"reason": "forged", "csrf_token": "0" * 40}):
            response = await page.request.post(ui.url(path), form=form, max_redirects=0)
            assert response.status == 403, await response.text()
            assert "csrf_failed" in await response.text()
        # with the token, text no database stores is refused like the API refuses it
        await page.goto(ui.url(f"/ui/orders/{order_id.replace('@', '%40')}"))
        token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
        response = await page.request.post(
            ui.url(path), form={"reason": "nul\x00byte", "csrf_token": token or ""}
        )
        assert response.status == 200 and "cannot be stored" in await response.text()
        assert (await stack.order(order_id))["status"] != "CANCELLED"

        # the key revoked: the session ends on the next page
        status, _ = await stack.call("POST", f"/v1/api-keys/{entry['id']}/revoke")
        assert status == 200
        await page.goto(ui.url("/ui/ops"))
        assert "/ui/login" in page.url


@SQLITE
async def test_reports_page_json_and_csv_agree(stack: Stack, ui: Ui) -> None:
    order_id = await stack.create_order(order_body(sku=unique_sku()), key="web")
    await stack.wait_status(order_id, "NOT_ANNOUNCED", "CANCELLED")
    status, summary = await stack.call("GET", "/v1/reports/summary", key="ops")
    assert status == 200, summary
    assert summary["orders"] >= 1 and sum(summary["by_status"].values()) == summary["orders"]
    assert summary["per_day"] and summary["per_day"][-1]["orders"] >= 1
    status, err = await stack.call("GET", "/v1/reports/summary?from=2026-02-30", key="ops")
    assert status == 400 and err["error"]["code"] == "invalid_query"
    status, err = await stack.call("GET", "/v1/reports/summary", key="web")
    assert status == 403

    async with ui.signed_in("ops", "reports") as page:
        await page.goto(ui.url("/ui/reports"))
        await pw_expect(page.locator(".figure").first).to_contain_text("Orders")
        await pw_expect(page.locator("svg.chart").first).to_be_visible()
        await docs_screenshot(page, "reports")
        async with page.expect_download() as download_info:
            await page.click("a.download")
        download = await download_info.value
        text = Path(await download.path()).read_text()
        assert text.splitlines()[0] == "section,name,value"
        assert "orders,total," in text

        # the other ops pages: inventory with each channel's ATP after its buffers; a
        # channel whose stored configuration no longer validates (written straight into
        # the store) is left out, not a 500
        broken = await stack.make_channel("ui-broken")
        config = await stack.store.config.channel(broken)
        assert config is not None
        await stack.store.config.upsert_channels([{**config, "return_window_days": 100000}])
        sku = unique_sku()
        await stack.set_stock([("ST-HAMBURG", sku, 5)])
        response = await page.goto(ui.url(f"/ui/inventory?sku={sku}"))
        assert response is not None and response.status == 200
        row = page.locator("table.stock tbody tr", has_text="ST-HAMBURG")
        # the web channel holds 2 units of every store back (workers/seed.py)
        cells = await row.locator("td").all_inner_texts()
        assert cells[:5] == [sku, "ST-HAMBURG", "5", "0", "5"], cells
        headers = await page.locator("table.stock thead th").all_inner_texts()
        web = next(i for i, h in enumerate(headers) if h.startswith("ATP web"))
        assert cells[web].split() == ["3", "\u22122"], cells[web]
        assert not any(broken in h for h in headers), headers
        for path in ("/ui/orders?status=DELIVERED", "/ui/work-orders?location=WH-MUNICH"):
            response = await page.goto(ui.url(path))
            assert response is not None and response.status == 200, path


@SQLITE
async def test_ops_resumes_a_held_order_with_a_corrected_payment(stack: Stack, ui: Ui) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    body = order_body(sku=sku, quantity=1)
    body["payment"]["authorized"] = False
    order_id = await stack.create_order(body, key="web")
    await stack.wait_status(order_id, "ON_HOLD")

    async with ui.signed_in("ops", "ops-resume") as page:
        order = page.locator("#queue-on_hold").locator(f'article[data-order="{order_id}"]')
        await pw_expect(order.locator(".reasons")).to_contain_text("authoriz")
        form = order.locator("form.resume")
        await form.locator("summary").click()
        await form.locator("input[name=correct_payment]").check()
        await form.locator("input[name=comment]").fill("card authorized by phone")
        await form.locator("button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text(f"{order_id} resumed")

    await stack.wait_status(order_id, "IN_FULFILLMENT")


@SQLITE
async def test_location_receives_a_return_through_the_form(stack: Stack, ui: Ui) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=1), key="web")
    await stack.fulfil(await stack.current_shipment(order_id, "WH-BERLIN"), "WH-BERLIN", {"1": 1})
    await stack.wait_status(order_id, "DELIVERED")
    status, parcel = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/returns",
        key="web",
        json={"lines": [{"line_id": "1", "quantity": 1}], "reason_code": "changed_mind"},
    )
    assert status == 201, parcel

    async with ui.signed_in("WH-BERLIN", "location-receive") as page:
        card = page.locator(f'article[data-return="{parcel["return_id"]}"]')
        await pw_expect(card).to_contain_text(sku)
        await card.locator("select[name=condition_1]").select_option("opened")
        await card.locator("button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text(
            f"{parcel['return_id']} received (1 unit,"
        )

    status, answer = await stack.call("GET", f"/v1/returns/{parcel['return_id']}", key="ops")
    assert status == 200 and answer["status"] in ("RECEIVED", "DONE"), answer
    assert answer["received"][0]["condition"] == "opened"


@SQLITE
async def test_location_ships_a_defective_unit_back_to_the_vendor(stack: Stack, ui: Ui) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=1), key="web")
    await stack.fulfil(await stack.current_shipment(order_id, "WH-BERLIN"), "WH-BERLIN", {"1": 1})
    await stack.wait_status(order_id, "DELIVERED")
    # a second order still to pack: both kinds on the page
    waiting = await stack.create_order(order_body(sku=sku, quantity=1), key="web")
    packaging = await stack.current_shipment(waiting, "WH-BERLIN")
    status, parcel = await stack.call(
        "POST",
        f"/v1/orders/{order_id}/returns",
        key="web",
        json={"lines": [{"line_id": "1", "quantity": 1}], "reason_code": "defective"},
    )
    assert status == 201, parcel
    status, outcome = await stack.call(
        "POST",
        f"/v1/returns/{parcel['return_id']}/receive",
        key="WH-BERLIN",
        json={"lines": [{"line_id": "1", "quantity": 1, "condition": "defective"}]},
    )
    assert status == 200 and outcome["received"][0]["disposition"] == "RETURN_TO_VENDOR"
    listing = "/v1/locations/WH-BERLIN/work-orders?kind=RETURN_TO_VENDOR"

    async def vendor_work_order(status: str) -> str | None:
        code, page = await stack.call("GET", f"{listing}&status={status}", key="WH-BERLIN")
        assert code == 200, page
        found = [w for w in page["work_orders"] if w["return_id"] == parcel["return_id"]]
        return str(found[0]["work_order_id"]) if found else None

    rtv = await eventually(lambda: vendor_work_order("OPEN"), "the return-to-vendor work order")

    async with ui.signed_in("WH-BERLIN", "location-ship-to-vendor") as page:
        await pw_expect(page.locator(f'article[data-shipment="{packaging}"] .kind')).to_have_text(
            "Packaging"
        )
        card = page.locator(f'article[data-work-order="{rtv}"]')
        await pw_expect(card.locator(".kind")).to_have_text("Return to vendor")
        await pw_expect(card).to_contain_text(f"return {parcel['return_id']}")
        await pw_expect(card.locator("tbody tr")).to_have_text(re.compile(rf"1\s*{sku}\s*1"))
        await card.locator("input[name=carrier]").fill("UPS")
        await card.locator("input[name=tracking_number]").fill("1Z-VENDOR")
        await card.locator("button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text(
            f"{rtv} shipped to the vendor (UPS 1Z-VENDOR)"
        )
        await pw_expect(page.locator(f'article[data-work-order="{rtv}"]')).to_have_count(0)

    assert await vendor_work_order("SHIPPED") == rtv


@BOTH_DATABASES
async def test_click_and_collect_transfer_is_shipped_received_and_handed_over(
    stack: Stack, ui: Ui
) -> None:
    net = await network(stack)
    sku = unique_sku()
    await stack.set_stock([(net.warehouse, sku, 3)])  # the pickup store has none
    order_id = await stack.create_order(pickup_order(net, sku, quantity=1), key="ops")
    transfer = await stack.current_shipment(order_id, net.warehouse)
    handover = f"{transfer}-H"
    order_page = ui.url(f"/ui/orders/{quote(order_id, safe='')}")

    # the store sees what is coming, with nothing to do until the warehouse ships it
    async with ui.signed_in(net.store, "transfer-store-waits") as page:
        work_order = page.locator(f'article[data-shipment="{handover}"]')
        await pw_expect(work_order.locator(".kind")).to_have_text("Pickup hand-over")
        await pw_expect(work_order.locator("header .status")).to_have_text("awaiting transfer")
        await pw_expect(work_order.locator(".steps")).to_have_text(
            "Steps: receive the transfer \u2192 hand over"
        )
        await pw_expect(work_order.locator(".transfer")).to_contain_text(f"from {net.warehouse}")
        await pw_expect(work_order).to_contain_text("Not shipped yet")
        await pw_expect(work_order.locator("form")).to_have_count(0)

    async with ui.signed_in(net.warehouse, "transfer-warehouse") as page:
        await page.goto(ui.url("/ui/work-orders?kind=TRANSFER"))
        work_order = page.locator(f'article[data-shipment="{transfer}"]')
        await pw_expect(work_order.locator(".kind")).to_have_text("Transfer")
        await pw_expect(work_order.locator(".destination")).to_have_text(f"to {net.store}")
        await pw_expect(work_order.locator(".steps")).to_have_text(
            "Steps: pick \u2192 ship to the store"
        )
        await work_order.locator("form.pick button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text("picked")
        work_order = page.locator(f'article[data-shipment="{transfer}"]')
        await work_order.locator("input[name=carrier]").fill("DHL")
        await work_order.locator("input[name=tracking_number]").fill("TR-9")
        await work_order.locator("form.ship button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text("shipped")
        # still the transfer list; the warehouse neither delivers nor receives it
        assert "kind=TRANSFER" in page.url
        work_order = page.locator(f'article[data-shipment="{transfer}"]')
        await pw_expect(work_order.locator("header .status")).to_have_text("shipped")
        await pw_expect(work_order).to_contain_text(f"On its way to {net.store}")
        await pw_expect(work_order.locator("form")).to_have_count(0)
        # a step the work order does not take is refused like the API refuses it
        token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
        response = await page.request.post(
            ui.url(f"/ui/shipments/{quote(transfer, safe='')}/receive"),
            form={"csrf_token": token or "", "back": "/ui/work-orders"},
        )
        assert response.ok and "wrong_step" in await response.text()
        response = await page.goto(ui.url("/ui/work-orders?kind=PARCEL"))
        assert response is not None and response.status == 400
        await page.goto(ui.url("/ui/work-orders?kind=RETURN_TO_VENDOR"))
        await pw_expect(page.locator(".empty")).to_have_text(
            "No returned units to send back to the vendor."
        )
        await pw_expect(page.locator(f'article[data-shipment="{transfer}"]')).to_have_count(0)

    async with ui.signed_in(net.store, "transfer-store") as page:
        work_order = page.locator(f'article[data-shipment="{handover}"]')
        await pw_expect(work_order.locator("header .status")).to_have_text("awaiting transfer")
        await pw_expect(work_order.locator(".transfer")).to_contain_text("shipped (DHL TR-9)")
        await pw_expect(work_order.locator("form.pick, form.ship")).to_have_count(0)
        await work_order.locator("form.receive button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text(
            f"{handover} received: ready for pickup"
        )
        work_order = page.locator(f'article[data-shipment="{handover}"]')
        await pw_expect(work_order.locator("header .status")).to_have_text("ready for pickup")
        await pw_expect(work_order.locator("form.receive")).to_have_count(0)
        await stack.wait_status(order_id, "READY_FOR_PICKUP")

        async with ui.signed_in("ops", "transfer-order-ready") as ops:
            await ops.goto(order_page)
            await pw_expect(ops.locator(".order-head .status")).to_have_text("ready for pickup")
            await pw_expect(ops.locator("table.lines .status")).to_have_text("ready for pickup")
            # nothing left to cancel: the units left the warehouse
            await pw_expect(ops.locator("form.cancel")).to_have_count(0)

        await work_order.locator("form.deliver button[type=submit]").click()
        await pw_expect(page.locator(".flash.ok")).to_contain_text(
            f"{handover} handed over to the customer"
        )

    await stack.wait_status(order_id, "DELIVERED")
    async with ui.signed_in("ops", "transfer-order-delivered") as page:
        await page.goto(order_page)
        await pw_expect(page.locator(".order-head .status")).to_have_text("delivered")
        rows = page.locator("table.work-orders tbody tr")
        await pw_expect(rows).to_have_count(2)
        moved = page.locator('table.work-orders tr[data-kind="TRANSFER"]')
        await pw_expect(moved.locator(".wo-kind")).to_have_text(f"transfer to {net.store}")
        await pw_expect(moved).to_contain_text(net.warehouse)
        handed = page.locator('table.work-orders tr[data-work-order$="-H"]')
        await pw_expect(handed.locator(".wo-kind")).to_have_text("pickup hand-over")
        await pw_expect(handed).to_contain_text(net.store)
        await pw_expect(rows.locator(".status")).to_have_text(["delivered", "delivered"])
