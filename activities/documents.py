"""Documents stage: a real PDF per location and kind (reportlab), stored for download."""

from __future__ import annotations

import io

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
from temporalio import activity

from store import Store
from workflows.model import DocumentsInput, DocumentsResult, DocumentView, OrderInput

TITLES = {
    "delivery_note": "Delivery note",
    "return_note": "Return note",
    "return_label": "Return label",
}


def render_pdf(
    order: OrderInput, kind: str, location_id: str, line_ids: list[str], reference: str
) -> bytes:
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4, invariant=True)  # invariant: same bytes on retry
    _, height = A4
    y = height - 60
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(50, y, f"{TITLES.get(kind, kind)} {reference}")
    pdf.setFont("Helvetica", 10)
    y -= 24
    ship = order.ship_to
    for text in (
        f"Order {order.order_id} ({order.sales_channel}), from location {location_id}",
        f"Ship to: {ship.name or ''}, {ship.line1}, {ship.postal_code} {ship.city}, {ship.country}",
        "",
        "Line   SKU                    Quantity",
    ):
        pdf.drawString(50, y, text)
        y -= 14
    lines = {line.line_id: line for line in order.lines}
    for line_id in line_ids:
        line = lines[line_id]
        pdf.drawString(50, y, f"{line.line_id:<6} {line.sku:<22} {line.quantity}")
        y -= 14
    pdf.showPage()
    pdf.save()
    return buf.getvalue()


class DocumentActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="create_documents")
    async def create_documents(self, input: DocumentsInput) -> DocumentsResult:
        docs: list[DocumentView] = []
        for plan in input.releases:
            for kind in input.kinds:
                document_id = f"{plan.work_order_id}-{kind}"
                content = render_pdf(
                    input.order, kind, plan.location_id, plan.line_ids, plan.work_order_id
                )
                await self.store.orders.save_document(
                    document_id=document_id,
                    order_id=input.order.order_id,
                    location_id=plan.location_id,
                    kind=kind,
                    content=content,
                )
                docs.append(
                    DocumentView(
                        document_id=document_id,
                        location_id=plan.location_id,
                        kind=kind,
                        url=f"/v1/documents/{document_id}",
                    )
                )
        return DocumentsResult(documents=docs)
