"""Documents stage: the PDFs a location prints for a release, stored for download.

Per release (one location's share of an order) and kind:
- delivery note and return note (A4): the location's and the customer's addresses, the
  order id and the work order reference as Code128 barcodes, one row per line (line id,
  SKU, description when the line has one, quantity), numbered pages ("Page 2 of 7") with
  the table header repeated on each;
- return label (4 x 6 inch): the return reference as a Code128 barcode, the receiving
  location (the one that ships the parcel) as addressee, the customer as sender.

Which kinds a location gets: its own `document_kinds` when set, else its channel's.
Bytes are deterministic (reportlab's invariant mode, no clock), so a retried activity
writes the same files.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.pagesizes import A4, inch
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas
from temporalio import activity

from store import Store
from workflows.model import (
    Address,
    DocumentsInput,
    DocumentsResult,
    DocumentView,
    LocationConfig,
    OrderInput,
)

TITLES = {
    "delivery_note": "Delivery note",
    "return_note": "Return note",
    "return_label": "Return label",
}
LABEL_SIZE = (4 * inch, 6 * inch)  # 288 x 432 points, portrait

FONT = "Helvetica"
BOLD = "Helvetica-Bold"

# A4 note layout (points; origin bottom left)
MARGIN = 50
ROW = 14  # one table row
FOOTER_Y = 30
TABLE_BOTTOM = 60  # the last row's baseline stays above this
FIRST_TABLE_TOP = 540  # the header row's baseline on page 1 (below addresses, barcodes)
NEXT_TABLE_TOP = 770  # on later pages (below a one-line running header)


@dataclass(frozen=True)
class Party:
    """A name and postal address as printed."""

    name: str
    lines: tuple[str, ...]


def location_party(location: LocationConfig) -> Party:
    city = " ".join(p for p in (location.postal_code, location.city) if p)
    lines = (location.address_line1, location.address_line2, city, location.country)
    return Party(name=location.name, lines=tuple(p for p in lines if p))


def customer_party(order: OrderInput) -> Party:
    ship: Address = order.ship_to
    name = ship.name or order.customer.name or order.customer.id
    lines = (ship.line1, ship.line2, f"{ship.postal_code} {ship.city}", ship.country)
    return Party(name=name, lines=tuple(p for p in lines if p))


def fit(text: str, font: str, size: float, width: float) -> str:
    """`text` cut (with an ellipsis) to fit `width` points."""
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def draw_barcode(
    pdf: canvas.Canvas,
    value: str,
    x: float,
    y: float,
    max_width: float,
    bar_height: float,
    *,
    fill: bool = False,
) -> None:
    """A Code128 barcode of `value` with its text under the bars, its quiet zones
    included at most `max_width` wide (bars get thinner for long values; `fill`: as wide
    as that, centred); (x, y) is the bottom left of its left quiet zone."""
    code = Code128(value, barHeight=bar_height, barWidth=1.0, humanReadable=True)
    if fill or code.width > max_width:
        code = Code128(
            value, barHeight=bar_height, barWidth=max_width / code.width, humanReadable=True
        )
    code.fontName = FONT
    code.fontSize = 9
    code.drawOn(pdf, x + (max_width - code.width) / 2 if fill else x, y)


def draw_party(
    pdf: canvas.Canvas, heading: str, party: Party, x: float, y: float, width: float
) -> None:
    pdf.setFont(BOLD, 9)
    pdf.drawString(x, y, heading.upper())
    pdf.setFont(BOLD, 11)
    pdf.drawString(x, y - 15, fit(party.name, BOLD, 11, width))
    pdf.setFont(FONT, 10)
    for i, text in enumerate(party.lines):
        pdf.drawString(x, y - 29 - i * 13, fit(text, FONT, 10, width))


# --------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class NoteRow:
    line_id: str
    sku: str
    description: str
    quantity: int


def note_rows(
    order: OrderInput, line_ids: Sequence[str], quantities: Mapping[str, int] | None = None
) -> list[NoteRow]:
    """One row per line of the release; `quantities` are the release's units per line
    (a split or re-released line ships part of the ordered quantity), else the line's."""
    quantities = quantities or {}
    lines = {line.line_id: line for line in order.lines}
    rows = []
    for line_id in line_ids:
        line = lines[line_id]
        description = line.description or ""
        quantity = quantities.get(line_id, line.quantity)
        rows.append(NoteRow(line.line_id, line.sku, str(description), quantity))
    return rows


def rows_per_page(top: float) -> int:
    """Rows below the header row at `top` that keep above the footer."""
    return int((top - ROW - TABLE_BOTTOM) // ROW) + 1


def paginate(rows: Sequence[NoteRow]) -> list[Sequence[NoteRow]]:
    """The rows of each page; the last page keeps room for the total row."""
    first, rest = rows_per_page(FIRST_TABLE_TOP), rows_per_page(NEXT_TABLE_TOP)
    slots = len(rows) + 1  # + the total row
    pages = 1 if slots <= first else 1 + math.ceil((slots - first) / rest)
    chunks: list[Sequence[NoteRow]] = [rows[:first]]
    for page in range(1, pages):
        start = first + (page - 1) * rest
        chunks.append(rows[start : start + rest])
    return chunks


# columns: (heading, x, width, right aligned)
NOTE_COLUMNS = {
    "delivery_note": (
        ("Line", MARGIN, 60, False),
        ("SKU", 115, 150, False),
        ("Description", 270, 215, False),
        ("Quantity", 545, 55, True),
    ),
    "return_note": (
        ("Line", MARGIN, 55, False),
        ("SKU", 110, 135, False),
        ("Description", 250, 170, False),
        ("Delivered", 475, 50, True),
        ("Returned", 545, 55, True),
    ),
}


def render_note(
    kind: str,
    order: OrderInput,
    location: LocationConfig,
    line_ids: Sequence[str],
    reference: str,
    shipment: str,
    quantities: Mapping[str, int] | None = None,
    deliver_to: Party | None = None,
) -> bytes:
    """A delivery note or return note for one release, as PDF bytes; `deliver_to`: the
    recipient when not the customer (a transfer's pickup store)."""
    title = TITLES[kind]
    width, height = A4
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4, invariant=True)  # invariant: same bytes on retry
    pdf.setTitle(f"{title} {reference}")
    pdf.setAuthor(location.name)
    pages = paginate(note_rows(order, line_ids, quantities))
    columns = NOTE_COLUMNS[kind]
    sender, customer = location_party(location), customer_party(order)
    recipient = deliver_to or customer
    total = sum(row.quantity for page in pages for row in page)

    for number, rows in enumerate(pages, start=1):
        if number == 1:
            pdf.setFont(BOLD, 18)
            pdf.drawString(MARGIN, height - 60, title)
            pdf.setFont(FONT, 10)
            pdf.drawString(MARGIN, height - 78, fit(f"Order {order.order_id}", FONT, 10, 270))
            pdf.drawString(MARGIN, height - 92, fit(f"Reference {reference}", FONT, 10, 270))
            pdf.drawString(MARGIN, height - 106, fit(f"Shipment {shipment}", FONT, 10, 270))
            pdf.drawString(MARGIN, height - 120, f"Sales channel {order.sales_channel}")
            # barcodes on the right: the order id, then the work order reference
            pdf.setFont(FONT, 8)
            pdf.drawString(345, height - 50, "ORDER")
            draw_barcode(pdf, order.order_id, 345, height - 92, width - MARGIN - 345, 36)
            pdf.setFont(FONT, 8)
            pdf.drawString(345, height - 118, "REFERENCE")
            draw_barcode(pdf, reference, 345, height - 160, width - MARGIN - 345, 36)
            if kind == "delivery_note":
                draw_party(pdf, "From", sender, MARGIN, height - 190, 230)
                draw_party(pdf, "Deliver to", recipient, 310, height - 190, 235)
            else:
                draw_party(pdf, "Customer", customer, MARGIN, height - 190, 230)
                draw_party(pdf, "Return to", sender, 310, height - 190, 235)
                pdf.setFont(FONT, 9)
                pdf.drawString(
                    MARGIN,
                    height - 276,
                    "To return items: enter the quantities under Returned, put this note in "
                    "the parcel and stick the return label on it.",
                )
            top = FIRST_TABLE_TOP
        else:
            pdf.setFont(FONT, 9)
            running = f"{title} {reference} · Order {order.order_id} (continued)"
            pdf.drawString(MARGIN, height - 50, fit(running, FONT, 9, width - 2 * MARGIN))
            top = NEXT_TABLE_TOP

        pdf.setFont(BOLD, 10)
        for heading, x, _, right in columns:
            (pdf.drawRightString if right else pdf.drawString)(x, top, heading)
        pdf.setLineWidth(0.5)
        pdf.line(MARGIN, top - 4, width - MARGIN, top - 4)
        pdf.setFont(FONT, 10)
        y = top - ROW - 2
        for row in rows:
            values = (row.line_id, row.sku, row.description, str(row.quantity), "")
            for (_, x, col_width, right), value in zip(columns, values, strict=False):
                if right:
                    pdf.drawRightString(x, y, value)
                else:
                    pdf.drawString(x, y, fit(value, FONT, 10, col_width - 5))
            if kind == "return_note":
                pdf.line(505, y - 2, 545, y - 2)  # a blank to write the returned quantity
            y -= ROW
        if number == len(pages):
            pdf.line(MARGIN, y + ROW - 4, width - MARGIN, y + ROW - 4)
            pdf.setFont(BOLD, 10)
            pdf.drawString(MARGIN, y - 2, f"Total units: {total}")

        pdf.setFont(FONT, 9)
        pdf.drawString(MARGIN, FOOTER_Y, fit(f"{title} {reference}", FONT, 9, 300))
        pdf.drawRightString(width - MARGIN, FOOTER_Y, f"Page {number} of {len(pages)}")
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


# --------------------------------------------------------------------------- label


def render_label(order: OrderInput, location: LocationConfig, return_id: str) -> bytes:
    """A 4 x 6 inch return label: the customer sends the parcel to the location."""
    width, height = LABEL_SIZE
    margin = 14
    inner = width - 2 * margin
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=LABEL_SIZE, invariant=True)
    pdf.setTitle(f"Return label {return_id}")
    pdf.setAuthor(location.name)
    pdf.setFont(BOLD, 22)
    pdf.drawString(margin, height - 36, "RETURN")
    pdf.setFont(FONT, 8)
    pdf.drawRightString(width - margin, height - 26, "Return label")
    pdf.drawRightString(
        width - margin, height - 36, fit(f"Order {order.order_id}", FONT, 8, inner - 100)
    )
    pdf.setLineWidth(1)
    pdf.line(margin, height - 46, width - margin, height - 46)

    customer = customer_party(order)
    pdf.setFont(BOLD, 7)
    pdf.drawString(margin, height - 60, "FROM (SENDER)")
    pdf.setFont(FONT, 8)
    for i, text in enumerate((customer.name, *customer.lines)):
        pdf.drawString(margin, height - 71 - i * 10, fit(text, FONT, 8, inner))
    pdf.line(margin, height - 124, width - margin, height - 124)

    receiver = location_party(location)
    pdf.setFont(BOLD, 8)
    pdf.drawString(margin, height - 140, "TO (RETURNS)")
    pdf.setFont(BOLD, 14)
    pdf.drawString(margin, height - 158, fit(receiver.name, BOLD, 14, inner))
    pdf.setFont(FONT, 12)
    for i, text in enumerate(receiver.lines):
        pdf.drawString(margin, height - 175 - i * 15, fit(text, FONT, 12, inner))
    pdf.line(margin, height - 246, width - margin, height - 246)

    pdf.setFont(BOLD, 8)
    pdf.drawString(margin, height - 262, "RETURN REFERENCE")
    draw_barcode(pdf, return_id, margin, 70, inner, 80, fill=True)
    pdf.setFont(FONT, 7)
    pdf.drawString(margin, 24, fit(f"Sales channel {order.sales_channel}", FONT, 7, inner))
    pdf.showPage()
    pdf.save()
    return buf.getvalue()


def render_pdf(
    order: OrderInput,
    kind: str,
    location: LocationConfig,
    line_ids: Sequence[str],
    reference: str,
    shipment: str = "",
    quantities: Mapping[str, int] | None = None,
    deliver_to: Party | None = None,
) -> bytes:
    if kind == "return_label":
        return render_label(order, location, reference)
    return render_note(
        kind, order, location, line_ids, reference, shipment or reference, quantities, deliver_to
    )


def pickup_party(store: LocationConfig, order: OrderInput) -> Party:
    """A transfer's recipient: the pickup store, for the customer who collects there."""
    party = location_party(store)
    customer = order.ship_to.name or order.customer.name or order.customer.id
    return Party(name=f"{party.name} (pickup: {customer})", lines=party.lines)


def unknown_location(location_id: str) -> LocationConfig:
    """A location no longer in the configuration: printed by its id, without address."""
    return LocationConfig(location_id=location_id, name=location_id, lat=0, lon=0)


class DocumentActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="create_documents")
    async def create_documents(self, input: DocumentsInput) -> DocumentsResult:
        wanted = sorted(
            {plan.location_id for plan in input.releases}
            | {plan.transfer_to for plan in input.releases if plan.transfer_to}
        )
        locations = {
            row["location_id"]: LocationConfig.model_validate(row)
            for row in await self.store.config.locations(wanted)
        }
        docs: list[DocumentView] = []
        for plan in input.releases:
            location = locations.get(plan.location_id) or unknown_location(plan.location_id)
            # the location's own kinds when it has them, else the channel's
            kinds = input.kinds if location.document_kinds is None else location.document_kinds
            deliver_to = None
            if plan.transfer_to:
                store = locations.get(plan.transfer_to) or unknown_location(plan.transfer_to)
                deliver_to = pickup_party(store, input.order)
            for kind in kinds:
                document_id = f"{plan.work_order_id}-{kind}"
                content = render_pdf(
                    input.order,
                    kind,
                    location,
                    plan.line_ids,
                    plan.work_order_id,
                    plan.shipment_key,
                    plan.quantities,
                    deliver_to,
                )
                await self.store.orders.save_document(
                    document_id=document_id,
                    order_id=input.order.order_id,
                    location_id=plan.location_id,
                    kind=kind,
                    content=content,
                )
                if activity.in_activity():
                    # alive: a worker that dies mid-way is noticed within the heartbeat
                    # timeout, not the whole start-to-close, so the order's lock is free
                    activity.heartbeat(document_id)
                docs.append(
                    DocumentView(
                        document_id=document_id,
                        location_id=plan.location_id,
                        kind=kind,
                        url=f"/v1/documents/{document_id}",
                    )
                )
        return DocumentsResult(documents=docs)
