"""Documents a warehouse prints: delivery note, return note (A4) and return label (4x6
inch), read back through a PDF text extractor as a person or a scanner would see them."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from pydantic import ValidationError
from pypdf import PageObject, PdfReader

from activities.documents import DocumentActivities, render_pdf
from workflows.model import (
    DocumentsInput,
    LocationConfig,
    OrderInput,
    OrderLineInput,
    ReleasePlan,
)

ORDER_ID = "T-doc-7f3a2b"
REFERENCE = f"{ORDER_ID}-WO1"
SHIPMENT = f"{ORDER_ID}-S1"
NOTES = ("delivery_note", "return_note")
KINDS = (*NOTES, "return_label")

BERLIN = LocationConfig(
    location_id="WH-BERLIN",
    name="Berlin warehouse",
    lat=52.52,
    lon=13.405,
    address_line1="Lagerstraße 12",
    address_line2="Tor 3",
    postal_code="10115",
    city="Berlin",
    country="DE",
)
CUSTOMER = ("Ada Lovelace", "Hauptstraße 1", "Hinterhaus", "80331 München", "DE")


def order(lines: int) -> OrderInput:
    return OrderInput.model_validate(
        {
            "order_id": ORDER_ID,
            "sales_channel": "web",
            "customer": {"id": "C-1", "name": "Ada"},
            "ship_to": {
                "name": "Ada Lovelace",
                "line1": "Hauptstraße 1",
                "line2": "Hinterhaus",
                "postal_code": "80331",
                "city": "München",
                "country": "DE",
            },
            "lines": [
                {"line_id": f"L{i}", "sku": f"SKU-{i:04d}", "quantity": i, "unit_price": "1.00"}
                for i in range(1, lines + 1)
            ],
            "payment": {"method": "card", "amount": "1.00", "currency": "EUR"},
        }
    )


def render(kind: str, lines: int, location: LocationConfig = BERLIN) -> bytes:
    body = order(lines)
    ids = [line.line_id for line in body.lines]
    return render_pdf(body, kind, location, ids, REFERENCE, SHIPMENT)


def pages(content: bytes) -> list[PageObject]:
    return list(PdfReader(io.BytesIO(content)).pages)


def texts(page: PageObject) -> list[str]:
    """The page's text, one drawn string a line (as reportlab writes them)."""
    return [t.strip() for t in page.extract_text().splitlines() if t.strip()]


def bars(page: PageObject) -> int:
    """Filled rectangles on the page: a barcode's bars (nothing else draws any)."""
    return len(re.findall(rb" re f", page.get_contents().get_data()))  # type: ignore[union-attr]


def rows(page: PageObject) -> list[tuple[str, str, str]]:
    """(line id, SKU, quantity) of the table rows on a note's page."""
    words = texts(page)
    found = []
    for i, word in enumerate(words[:-2]):
        if re.fullmatch(r"L\d+", word) and words[i + 1].startswith("SKU-"):
            found.append((word, words[i + 1], words[i + 2]))
    return found


@pytest.mark.parametrize("kind", NOTES)
@pytest.mark.parametrize("lines", [1, 500])
def test_note_lists_every_line_on_numbered_pages_with_the_header_repeated(
    kind: str, lines: int
) -> None:
    doc = pages(render(kind, lines))
    if lines == 1:
        assert len(doc) == 1
    else:
        assert 2 < len(doc) < 500 // 20  # the table breaks across pages, many rows a page
    listed = []
    for number, page in enumerate(doc, start=1):
        words = texts(page)
        assert f"Page {number} of {len(doc)}" in words
        assert {"Line", "SKU", "Description"} <= set(words)  # the table header, every page
        assert ("Quantity" if kind == "delivery_note" else "Delivered") in words
        listed.extend(rows(page))
    assert listed == [(f"L{i}", f"SKU-{i:04d}", str(i)) for i in range(1, lines + 1)]
    total = lines * (lines + 1) // 2
    assert f"Total units: {total}" in texts(doc[-1])
    assert all(p.mediabox.width == pytest.approx(595.28, abs=0.01) for p in doc)  # A4


@pytest.mark.parametrize("kind", NOTES)
def test_note_names_both_addresses_and_carries_order_and_reference_barcodes(kind: str) -> None:
    first, *rest = pages(render(kind, 500))
    words = texts(first)
    location = ("Berlin warehouse", "Lagerstraße 12", "Tor 3", "10115 Berlin", "DE")
    # the address blocks, in order: sender (location) and recipient (customer)
    for block in (location, CUSTOMER):
        start = words.index(block[0])
        assert tuple(words[start : start + len(block)]) == block
    heading = ("FROM", "DELIVER TO") if kind == "delivery_note" else ("RETURN TO", "CUSTOMER")
    assert set(heading) <= set(words)
    # each barcode's human-readable text under its label, the bars drawn
    assert words[words.index("ORDER") + 1] == ORDER_ID
    assert words[words.index("REFERENCE") + 1] == REFERENCE
    assert f"Shipment {SHIPMENT}" in words
    assert bars(first) > 2 * 20
    # later pages: a running header naming the document, no barcodes, no addresses
    assert all(bars(page) == 0 for page in rest)
    assert all("Berlin warehouse" not in texts(page) for page in rest)


@pytest.mark.parametrize("lines", [1, 500])
def test_return_label_is_4_by_6_inches_with_the_return_barcode_and_both_addresses(
    lines: int,
) -> None:
    (page,) = pages(render("return_label", lines))
    assert (float(page.mediabox.width), float(page.mediabox.height)) == (288.0, 432.0)
    words = texts(page)
    sender = words.index("FROM (SENDER)")
    assert tuple(words[sender + 1 : sender + 6]) == CUSTOMER
    to = words.index("TO (RETURNS)")
    assert tuple(words[to + 1 : to + 6]) == (
        "Berlin warehouse",
        "Lagerstraße 12",
        "Tor 3",
        "10115 Berlin",
        "DE",
    )
    assert words[words.index("RETURN REFERENCE") + 1] == REFERENCE
    assert bars(page) > 20
    assert f"Order {ORDER_ID}" in words
    assert not any(w.startswith("SKU-") for w in words)  # a label lists no lines


@pytest.mark.parametrize("kind", KINDS)
def test_same_bytes_every_time(kind: str) -> None:
    # an activity retry overwrites the stored document with identical bytes
    assert render(kind, 40) == render(kind, 40)


def test_location_without_address_prints_its_name() -> None:
    bare = LocationConfig(location_id="WH-X", name="Warehouse X", lat=0, lon=0)
    (page,) = pages(render("return_label", 1, bare))
    words = texts(page)
    assert words[words.index("TO (RETURNS)") + 1] == "Warehouse X"
    assert words[words.index("TO (RETURNS)") + 2] == "RETURN REFERENCE"


def test_long_values_stay_on_the_page() -> None:
    long_name = LocationConfig(
        location_id="WH-L", name="N" * 200, lat=0, lon=0, address_line1="A" * 200
    )
    body = order(1)
    body.lines[0].sku = "S" * 64
    content = render_pdf(body, "delivery_note", long_name, ["L1"], "R" * 64, "S" * 64)
    (page,) = pages(content)
    words = texts(page)
    assert any(w.startswith("NNN") and w.endswith("…") for w in words)
    assert any(w.startswith("SSS") and w.endswith("…") for w in words)
    # the 64-character reference still becomes a barcode that fits beside the title
    assert words[words.index("REFERENCE") + 1] == "R" * 64


def test_a_line_description_is_printed_when_the_line_has_one() -> None:
    # the web shop sends it with the line (`description`, optional)
    body = order(2)
    body.lines[0] = body.lines[0].model_copy(update={"description": "Blue mug, 300 ml"})
    for kind in NOTES:
        (page,) = pages(render_pdf(body, kind, BERLIN, ["L1", "L2"], REFERENCE, SHIPMENT))
        words = texts(page)
        assert words[words.index("SKU-0001") + 1 : words.index("SKU-0001") + 3] == [
            "Blue mug, 300 ml",
            "1",
        ]
        assert words[words.index("SKU-0002") + 1] == "2"


class FakeConfig:
    def __init__(self, locations: list[LocationConfig]) -> None:
        self.rows = {loc.location_id: loc.model_dump() for loc in locations}

    async def locations(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        return [self.rows[i] for i in ids or list(self.rows) if i in self.rows]


class FakeOrders:
    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}

    async def save_document(self, **document: Any) -> None:
        self.saved[document["document_id"]] = document


class FakeStore:
    def __init__(self, locations: list[LocationConfig]) -> None:
        self.config = FakeConfig(locations)
        self.orders = FakeOrders()


def plan(seq: int, location_id: str) -> ReleasePlan:
    return ReleasePlan(
        seq=seq,
        location_id=location_id,
        line_ids=["L1"],
        release_key=f"{ORDER_ID}-R{seq}",
        shipment_key=f"{ORDER_ID}-S{seq}",
        work_order_id=f"{ORDER_ID}-WO{seq}",
    )


async def test_a_location_own_document_kinds_replace_the_channel() -> None:
    own = BERLIN.model_copy(update={"location_id": "ST-OWN", "document_kinds": ["return_label"]})
    none = BERLIN.model_copy(update={"location_id": "ST-NONE", "document_kinds": []})
    store = FakeStore([BERLIN, own, none])
    activities = DocumentActivities(store)  # type: ignore[arg-type]
    result = await activities.create_documents(
        DocumentsInput(
            order=order(1),
            kinds=["delivery_note", "return_note"],
            releases=[plan(1, "WH-BERLIN"), plan(2, "ST-OWN"), plan(3, "ST-NONE")],
        )
    )
    assert [(d.location_id, d.kind) for d in result.documents] == [
        ("WH-BERLIN", "delivery_note"),
        ("WH-BERLIN", "return_note"),
        ("ST-OWN", "return_label"),
    ]
    label = store.orders.saved[f"{ORDER_ID}-WO2-return_label"]
    assert label["location_id"] == "ST-OWN"
    assert float(pages(label["content"])[0].mediabox.height) == 432.0
    assert result.documents[0].url == f"/v1/documents/{ORDER_ID}-WO1-delivery_note"


def test_a_line_description_is_one_printable_line() -> None:
    line = {"line_id": "L1", "sku": "S", "quantity": 1, "unit_price": "1.00"}
    assert OrderLineInput.model_validate({**line, "description": "Mug"}).description == "Mug"
    for bad in ("two\nlines", "x" * 201):
        with pytest.raises(ValidationError):
            OrderLineInput.model_validate({**line, "description": bad})


def test_location_address_and_document_kinds_are_checked_on_write() -> None:
    from pydantic import ValidationError

    from api.schemas import LocationConfigIn

    base = {"location_id": "WH-A", "name": "A", "lat": 1, "lon": 1}
    plain = LocationConfigIn.model_validate(base)
    assert (plain.address_line1, plain.country, plain.document_kinds) == (None, None, None)
    full = LocationConfigIn.model_validate(
        {
            **base,
            "address_line1": "Lagerstraße 12",
            "address_line2": None,
            "postal_code": "E16 2AA",
            "city": "London",
            "country": "GB",
            "document_kinds": [],
        }
    )
    assert full.document_kinds == []
    for bad in (
        {"country": "de"},
        {"country": "DEU"},
        {"address_line1": ""},
        {"address_line1": "x" * 201},
        {"address_line2": "line\nbreak"},
        {"postal_code": "1" * 21},
        {"city": "c" * 101},
        {"document_kinds": ["delivery_note", "delivery_note"]},
        {"document_kinds": ["invoice"]},
    ):
        with pytest.raises(ValidationError):
            LocationConfigIn.model_validate({**base, **bad})
