"""The store's schema at Alembic revision 0001, frozen.

Revision 0001 creates these tables on an empty database, and the steps of the runner
from before Alembic (store/migrations/legacy.py) bring an older store to exactly this
shape before it is stamped at 0001. Later schema changes are revisions of their own
(op.add_column, op.create_table ...): never edit this file, or stores made at different
times would differ while claiming the same revision."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

metadata = MetaData()


def _at(name: str, *, nullable: bool = False) -> Column[object]:
    """A timestamp column (the models store UTC with its zone)."""
    return Column(name, DateTime(timezone=True), nullable=nullable)


def _id(name: str, length: int, **kwargs: object) -> Column[object]:
    return Column(name, String(length), nullable=False, **kwargs)  # type: ignore[arg-type]


Table(
    "locations",
    metadata,
    _id("location_id", 64, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("type", String(32), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("cutoff_time", String(5), nullable=False),
    Column("lead_time_days", Integer, nullable=False),
    Column("daily_capacity", Integer, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("webhook_url", String(500), nullable=True),
    Column("cost_per_shipment", Float, nullable=False),
    Column("channels", JSON, nullable=False),
    Column("delivery_types", JSON, nullable=False),
    Column("address_line1", String(200), nullable=True),
    Column("address_line2", String(200), nullable=True),
    Column("postal_code", String(20), nullable=True),
    Column("city", String(100), nullable=True),
    Column("country", String(2), nullable=True),
    Column("document_kinds", JSON, nullable=True),
)

Table(
    "sales_channels",
    metadata,
    _id("channel_id", 64, primary_key=True),
    Column("config", JSON, nullable=False),
)

Table(
    "api_keys",
    metadata,
    _id("key_hash", 64, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("identity", String(100), nullable=False),
    Column("key_id", String(32), nullable=True),
    _at("created_at", nullable=True),
    Column("created_by", String(100), nullable=True),
    Column("last4", String(4), nullable=True),
    _at("revoked_at", nullable=True),
    _at("expires_at", nullable=True),
    Column("replaced_by", String(32), nullable=True),
    Index("ix_api_keys_key_id", "key_id", unique=True),
)

Table(
    "inventory",
    metadata,
    _id("location_id", 64, primary_key=True),
    _id("sku", 64, primary_key=True),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    _at("updated_at"),
    Index("ix_inventory_sku", "sku"),
)

Table(
    "inventory_adjustments",
    metadata,
    _id("adjustment_id", 200, primary_key=True),
    Column("location_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("delta", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    _at("created_at"),
)

Table(
    "reservations",
    metadata,
    _id("reservation_id", 400, primary_key=True),
    _id("order_id", 200),
    Column("line_id", String(64), nullable=False),
    Column("location_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    _at("created_at"),
    _at("updated_at"),
    Index("ix_reservations_order_id", "order_id"),
)

Table(
    "routing_fences",
    metadata,
    _id("fence_key", 200, primary_key=True),
    Column("token", Integer, nullable=False),
    _at("updated_at"),
    Index("ix_routing_fences_updated_at", "updated_at"),
)

Table(
    "orders",
    metadata,
    _id("order_id", 200, primary_key=True),
    Column("sales_channel", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("total", Numeric(14, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("request_hash", String(64), nullable=False),
    _id("workflow_id", 400),
    _at("created_at"),
    _at("updated_at"),
    Column("view", Text, nullable=True),
    Column("view_seq", Integer, nullable=True),
    Column("channel_order_id", String(64), nullable=True),
    Index("ix_orders_sales_channel", "sales_channel"),
    Index("ix_orders_customer_id", "customer_id"),
    Index("ix_orders_status", "status"),
    Index("ux_orders_channel_order_id", "sales_channel", "channel_order_id", unique=True),
    Index("ix_orders_channel_order_id", "channel_order_id"),
)

Table(
    "order_lines",
    metadata,
    _id("order_id", 200, primary_key=True),
    _id("line_id", 64, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(14, 2), nullable=False),
    Column("status", String(32), nullable=False),
    Column("location_id", String(64), nullable=True),
    Column("planned_ship_date", Date, nullable=True),
)

Table(
    "order_releases",
    metadata,
    _id("release_key", 400, primary_key=True),
    _id("line_id", 64, primary_key=True),
    _id("order_id", 200),
    Column("location_id", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_quantity", Integer, nullable=False),
    _at("created_at"),
    Index("ix_order_releases_order_id", "order_id"),
)

Table(
    "shipments",
    metadata,
    _id("shipment_key", 400, primary_key=True),
    _id("line_id", 64, primary_key=True),
    _id("release_key", 400),
    _id("order_id", 200),
    Column("location_id", String(64), nullable=False),
    _id("workflow_id", 400),
    Column("released_quantity", Integer, nullable=False),
    Column("picked_quantity", Integer, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("carrier", String(64), nullable=True),
    Column("tracking_number", String(128), nullable=True),
    _at("updated_at"),
    Index("ix_shipments_order_id", "order_id"),
    Index("ix_shipments_location_id", "location_id"),
)

Table(
    "work_orders",
    metadata,
    _id("work_order_id", 400, primary_key=True),
    _id("order_id", 200),
    Column("location_id", String(64), nullable=False),
    Column("line_ids", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    _at("created_at"),
    Index("ix_work_orders_order_id", "order_id"),
    Index("ix_work_orders_location_id", "location_id"),
)

Table(
    "approvals",
    metadata,
    _id("order_id", 200, primary_key=True),
    _id("reason", 64, primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("approvers", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(100), nullable=True),
    Column("comment", Text, nullable=True),
    _at("decided_at", nullable=True),
    Index("ix_approvals_status", "status"),
)

Table(
    "documents",
    metadata,
    _id("document_id", 400, primary_key=True),
    _id("order_id", 200),
    Column("location_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("content", LargeBinary, nullable=False),
    _at("created_at"),
    Index("ix_documents_order_id", "order_id"),
)

Table(
    "returns",
    metadata,
    _id("return_id", 400, primary_key=True),
    _id("order_id", 200),
    Column("type", String(16), nullable=False),
    Column("lines", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    _at("created_at"),
    Index("ix_returns_order_id", "order_id"),
)

Table(
    "order_events",
    metadata,
    _id("order_id", 200, primary_key=True),
    Column("seq", Integer, primary_key=True),
    _at("at"),
    Column("type", String(64), nullable=False),
    Column("detail", Text, nullable=False),
)

Table(
    "receiver_secrets",
    metadata,
    _id("receiver", 200, primary_key=True),
    Column("secret", String(100), nullable=False),
    _at("created_at"),
    Column("previous_secret", String(100), nullable=True),
    _at("previous_until", nullable=True),
)
