"""Documents an order's locations print, downloaded over HTTP and read as text."""

from __future__ import annotations

import io
import uuid

from pypdf import PdfReader

from tests.integration.conftest import Stack, order_body, unique_sku


def words(pdf: bytes) -> list[list[str]]:
    """Each page's drawn strings, one an entry."""
    reader = PdfReader(io.BytesIO(pdf))
    return [
        [t.strip() for t in page.extract_text().splitlines() if t.strip()] for page in reader.pages
    ]


def block(text: list[str], heading: str, size: int) -> list[str]:
    start = text.index(heading) + 1
    return text[start : start + size]


async def test_delivery_note_names_the_location_and_the_customer(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    order_id = await stack.create_order(order_body(sku=sku, quantity=2))
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    (note,) = [d for d in view["documents"] if d["kind"] == "delivery_note"]
    assert note["location_id"] == "WH-BERLIN"

    status, pdf = await stack.call("GET", note["url"], key="WH-BERLIN")
    assert status == 200 and pdf.startswith(b"%PDF"), pdf
    (page,) = words(pdf)
    assert page[0] == "Delivery note"
    assert "Page 1 of 1" in page
    # the sender: the location's address from its configuration (the demo seed)
    assert block(page, "FROM", 4) == ["Berlin warehouse", "Lagerstraße 12", "10115 Berlin", "DE"]
    # the recipient: the order's ship-to
    assert block(page, "DELIVER TO", 4) == ["Ada", "Main St 1", "10115 Berlin", "DE"]
    # barcodes' human-readable text: the order id and the work order
    (work_order,) = view["work_orders"]
    assert block(page, "ORDER", 1) == [order_id]
    assert block(page, "REFERENCE", 1) == [work_order["work_order_id"]]
    assert ["1", sku, "2"] == block(page, "Quantity", 3)


async def test_a_location_own_kinds_and_address_set_over_http(stack: Stack) -> None:
    # a channel that asks for delivery notes only, and a location (serving only that
    # channel, with an address) that asks for a return note and a return label instead
    channel = await stack.make_channel("doc", document_kinds=["delivery_note"])
    location_id = f"ST-DOC-{uuid.uuid4().hex[:6]}"
    address = {
        "address_line1": "Rosenthaler Straße 40",
        "address_line2": "Hof 2",
        "postal_code": "10178",
        "city": "Berlin",
        "country": "DE",
    }
    status, body = await stack.call(
        "PUT",
        "/v1/locations",
        json=[
            {
                "location_id": location_id,
                "name": "Mitte store",
                "type": "store",
                "lat": 52.525,
                "lon": 13.402,
                "channels": [channel],
                "document_kinds": ["return_note", "return_label"],
                **address,
            }
        ],
    )
    assert status == 200, body
    status, body = await stack.call("GET", "/v1/locations", key="ops")
    (listed,) = [loc for loc in body["locations"] if loc["location_id"] == location_id]
    assert {k: listed[k] for k in address} == address
    assert listed["document_kinds"] == ["return_note", "return_label"]

    await stack.add_key(location_id, "location")
    await stack.add_key(channel, "webshop")
    sku = unique_sku()
    await stack.set_stock([(location_id, sku, 3)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=1))
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    kinds = {d["kind"]: d for d in view["documents"]}
    assert sorted(kinds) == ["return_label", "return_note"]
    assert {d["location_id"] for d in kinds.values()} == {location_id}

    status, pdf = await stack.call("GET", kinds["return_label"]["url"], key=location_id)
    assert status == 200, pdf
    assert PdfReader(io.BytesIO(pdf)).pages[0].mediabox[2:] == [288, 432]  # 4 x 6 inch
    (label,) = words(pdf)
    assert block(label, "TO (RETURNS)", 5) == [
        "Mitte store",
        "Rosenthaler Straße 40",
        "Hof 2",
        "10178 Berlin",
        "DE",
    ]
    assert block(label, "FROM (SENDER)", 2) == ["Ada", "Main St 1"]

    status, pdf = await stack.call("GET", kinds["return_note"]["url"], key="ops")
    assert status == 200, pdf
    (note,) = words(pdf)
    assert block(note, "RETURN TO", 2) == ["Mitte store", "Rosenthaler Straße 40"]
    # another location's key does not get it
    status, _ = await stack.call("GET", kinds["return_note"]["url"], key="WH-BERLIN")
    assert status == 404


async def test_a_split_line_prints_each_location_its_own_units(stack: Stack) -> None:
    """4 units of one line, 3 in Berlin and 1 in Munich: each delivery note lists the
    units its location ships, not the 4 ordered."""
    channel = await stack.make_channel("doc", split_policy="split_quantities")
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 3), ("WH-MUNICH", sku, 1)])
    order_id = await stack.create_order(order_body(channel=channel, sku=sku, quantity=4), key="ops")
    view = await stack.wait_status(order_id, "IN_FULFILLMENT")
    notes = {d["location_id"]: d for d in view["documents"] if d["kind"] == "delivery_note"}
    assert set(notes) == {"WH-BERLIN", "WH-MUNICH"}, view["documents"]
    for location_id, units in (("WH-BERLIN", "3"), ("WH-MUNICH", "1")):
        status, pdf = await stack.call("GET", notes[location_id]["url"], key=location_id)
        assert status == 200, pdf
        (page,) = words(pdf)
        assert ["1", sku, units] == block(page, "Quantity", 3), (location_id, page)
