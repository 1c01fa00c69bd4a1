"""Contract of the reservation reconciliation: workflow input, activity page input and
result, and the report (held in workflow histories: add fields with defaults only)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

MAX_REPORTED_ERRORS = 50


class ReconcileInput(BaseModel):
    """One reconciliation run: pages of `page_size` orders, at most `max_pages` pages."""

    page_size: int = Field(default=500, ge=1, le=5000)
    max_pages: int = Field(default=20, ge=1, le=1000)


class ReconcileCursor(BaseModel):
    """Where the next page starts: after this order in oldest-reservation-first order."""

    first_reserved_at: datetime
    order_id: str


class ReconcilePageInput(BaseModel):
    after: ReconcileCursor | None = None
    limit: int = Field(default=500, ge=1, le=5000)


class ReconcileReport(BaseModel):
    """What a run found and did."""

    orders_checked: int = 0
    # orders whose workflow is not running (terminated, failed, timed out, cancelled,
    # completed or gone) and still held stock
    orders_closed: int = 0
    reservations_released: int = 0
    # cancel_lines signals sent to release workflows still running
    releases_cancelled: int = 0
    errors: list[str] = Field(default_factory=list)
    # True when the run stopped at max_pages with orders left for the next run
    more: bool = False

    def add(self, other: ReconcileReport) -> ReconcileReport:
        return ReconcileReport(
            orders_checked=self.orders_checked + other.orders_checked,
            orders_closed=self.orders_closed + other.orders_closed,
            reservations_released=self.reservations_released + other.reservations_released,
            releases_cancelled=self.releases_cancelled + other.releases_cancelled,
            errors=(self.errors + other.errors)[:MAX_REPORTED_ERRORS],
            more=self.more or other.more,
        )


class ReconcilePageResult(BaseModel):
    report: ReconcileReport
    # None: no order after this page
    next: ReconcileCursor | None = None
