"""SQLAlchemy 2 tables of the store. No Temporal imports here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned in UTC; SQLite keeps no zone, so one is attached."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# Order ids are `{channel_order_id}@{channel}` (oms/ids.py, legacy migration 8): up to 129
# characters; ids made from an order id (work orders, shipments, reservations) get room
# for their suffixes.
ORDER_ID = 200
DERIVED_ID = 400


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: UTCDateTime(),
        Decimal: Numeric(14, 2),
    }


class Location(Base):
    __tablename__ = "locations"
    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(32))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    time_zone: Mapped[str] = mapped_column(String(64))
    cutoff_time: Mapped[str] = mapped_column(String(5))
    lead_time_days: Mapped[int] = mapped_column(Integer, default=0)
    daily_capacity: Mapped[int] = mapped_column(Integer, default=1000)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # added by migration 2
    cost_per_shipment: Mapped[float] = mapped_column(Float, default=0.0)
    channels: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: every channel
    delivery_types: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # added by migration 7: the postal address printed on documents, and the document
    # kinds this location gets (None: its channel's)
    address_line1: Mapped[str | None] = mapped_column(String(200), nullable=True)
    address_line2: Mapped[str | None] = mapped_column(String(200), nullable=True)
    postal_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    city: Mapped[str | None] = mapped_column(String(100), nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    document_kinds: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)


class SalesChannel(Base):
    __tablename__ = "sales_channels"
    channel_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[dict[str, Any]]


class ApiKey(Base):
    """Only the SHA-256 of a key is kept; `key_id` names it in the API (migration 5)."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_key_id", "key_id", unique=True),)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    identity: Mapped[str] = mapped_column(String(100))
    # added by migration 5 (nullable there: rows from before get an id and a created_at)
    key_id: Mapped[str] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # the key's last characters (None for keys from before, and for short ones)
    last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # set when the key is rotated: it keeps working until then
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Inventory(Base):
    __tablename__ = "inventory"
    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]
    __table_args__ = (Index("ix_inventory_sku", "sku"),)


class InventoryAdjustment(Base):
    """Applied stock deltas, so a delta sent twice with its id counts once (migration 2)."""

    __tablename__ = "inventory_adjustments"
    adjustment_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class Reservation(Base):
    __tablename__ = "reservations"
    reservation_id: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), index=True)
    line_id: Mapped[str] = mapped_column(String(64))
    location_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    # ACTIVE -> RELEASED (given back) or CONSUMED (shipped)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RoutingFence(Base):
    """The newest attempt of each scheduled routing activity (migration 3). A routing
    write checks the fence in its own transaction, so an attempt that timed out but is
    still running changes nothing once its retry has claimed the fence."""

    __tablename__ = "routing_fences"
    # f"{workflow_run_id}:{activity_id}": one scheduled activity
    fence_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # the highest attempt number that claimed the fence
    token: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
    __table_args__ = (Index("ix_routing_fences_updated_at", "updated_at"),)


class Order(Base):
    __tablename__ = "orders"
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), primary_key=True)
    sales_channel: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    total: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    request_hash: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(DERIVED_ID))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # added by migration 4: the whole order view (JSON, without its events: those are in
    # order_events) as the workflow last projected it, and the workflow event sequence
    # number it was current at (a projection with a lower one is stale and never lands).
    # Deferred: lists never load the view.
    view: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)
    view_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # added by migration 8: the id the channel gave the order, unique per channel (for
    # orders from before, their order_id)
    channel_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (
        Index("ux_orders_channel_order_id", "sales_channel", "channel_order_id", unique=True),
        Index("ix_orders_channel_order_id", "channel_order_id"),
    )


class OrderLine(Base):
    __tablename__ = "order_lines"
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(32))
    location_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    planned_ship_date: Mapped[date | None] = mapped_column(Date, nullable=True)


class OrderRelease(Base):
    __tablename__ = "order_releases"
    release_key: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), index=True)
    location_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))  # RETURNED_TO_SENDER: revision 0004
    # 1 marks the current release of a line, 0 a superseded one
    status_quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class Shipment(Base):
    __tablename__ = "shipments"
    shipment_key: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    release_key: Mapped[str] = mapped_column(String(DERIVED_ID))
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), index=True)
    location_id: Mapped[str] = mapped_column(String(64), index=True)
    workflow_id: Mapped[str] = mapped_column(String(DERIVED_ID))
    released_quantity: Mapped[int] = mapped_column(Integer)
    picked_quantity: Mapped[int] = mapped_column(Integer, default=0)
    # shipped quantity: 0 until the units ship
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(32))  # RETURNED_TO_SENDER: revision 0004
    carrier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[datetime]


class WorkOrder(Base):
    __tablename__ = "work_orders"
    work_order_id: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), index=True)
    location_id: Mapped[str] = mapped_column(String(64), index=True)
    line_ids: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    # added by revision 0005: the kind (None: PACKAGING, an order's release) and, for a
    # RETURN_TO_VENDOR work order, the return it comes from, its units and its shipment
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    return_id: Mapped[str | None] = mapped_column(String(DERIVED_ID), nullable=True)
    items: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    carrier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # added by revision 0006: where a TRANSFER work order ships to (the pickup store)
    destination_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Approval(Base):
    __tablename__ = "approvals"
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    approvers: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(16), index=True)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Document(Base):
    __tablename__ = "documents"
    document_id: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), index=True)
    location_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class Return(Base):
    __tablename__ = "returns"
    return_id: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), index=True)
    type: Mapped[str] = mapped_column(String(16))
    lines: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    # added by migration 9, for returns of delivered units (RETURN, RETURN_TO_SENDER)
    sales_channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    location_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    workflow_id: Mapped[str | None] = mapped_column(String(DERIVED_ID), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    received: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    refund_amount: Mapped[Decimal | None] = mapped_column(nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ReturnDisposition(Base):
    """What became of returned units (migration 9): the ledger of units that came back.
    RESTOCK units are also added to the receiving location's stock (inventory
    adjustment `{return_id}:{line_id}:restock`); DISCARD units are written off here;
    RETURN_TO_VENDOR units wait here for the vendor's pick-up."""

    __tablename__ = "return_dispositions"
    return_id: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    disposition: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), index=True)
    location_id: Mapped[str] = mapped_column(String(64), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    condition: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class OrderEvent(Base):
    __tablename__ = "order_events"
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")


class ReceiverSecret(Base):
    """The secret a receiver of outgoing messages (a location's webhook, a channel's
    callback, an approval reason's webhook) checks their signatures with (migration 6).
    Kept as it is (an HMAC needs the secret itself); shown once when made.

    During a rotation's overlap (until `previous_until`) messages are signed with the
    previous secret too; a previous secret of None there is the shared
    OMS_WEBHOOK_SECRET (the receiver was made before secrets per receiver)."""

    __tablename__ = "receiver_secrets"
    receiver: Mapped[str] = mapped_column(String(200), primary_key=True)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_until: Mapped[datetime | None] = mapped_column(nullable=True)


class ShipmentEvent(Base):
    """A carrier's or location's tracking event of a shipment (revision 0003), once per
    event id; the timeline is ordered by when it happened, not when it arrived."""

    __tablename__ = "shipment_events"
    shipment_key: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(ORDER_ID), index=True)
    status: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    place: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(500), nullable=True)
    received_at: Mapped[datetime]


class PendingCommand(Base):
    """A command answered 202 (its outcome not known in time), kept so a look-up can send
    it again under the same update id (revision 0008): Temporal keeps an update it has
    admitted but no worker has accepted in memory only, and drops it when the workflow
    task it waits for times out or the server restarts."""

    __tablename__ = "pending_commands"
    workflow_id: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)
    update_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    # the run it went to (None: not known; then it is not sent again)
    run_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    argument: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)
