"""Inventory and reservations.

Reserving is one conditional UPDATE (`on_hand - reserved >= quantity`), so two orders
racing for the last unit never both get it, on SQLite (single writer) and PostgreSQL
(row lock). Every reservation moves through guarded status transitions

    ACTIVE -> PICKED -> CONSUMED      (shipped)
    ACTIVE | PICKED -> RELEASED       (declined, cancelled, re-routed)

and a transition changes the inventory only when its guarded UPDATE hit the row, so
a retried activity applies each effect exactly once.

Fences guard against a stale attempt of an activity: one that timed out on the
Temporal side but still runs beside its retry. Each attempt claims the fence of its
scheduled activity with its attempt number (`claim_fence`); a write given a `Fence`
first checks, in its own transaction, that no newer attempt has claimed it since
(PostgreSQL: the fence row is locked FOR UPDATE, so a newer claim waits for the write
to commit; SQLite: every transaction is BEGIN IMMEDIATE, one at a time) and otherwise
raises `StaleFence` and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, cast, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from store.database import Database, utcnow
from store.tables import Inventory, InventoryAdjustment, Reservation, RoutingFence

BATCH = 1000
MAX_ON_HAND = 2_000_000_000  # the inventory columns are 32-bit integers
# fences of activities scheduled longer ago than this are deleted, a few per claim
FENCE_TTL = timedelta(days=1)
FENCE_SWEEP = 100


class _Conflict(Exception):
    """A concurrent transaction changed the reservation: roll back and look again."""


class _Short(Exception):
    """Not enough stock: roll back whatever the transaction changed."""


class StaleFence(Exception):
    """A newer attempt holds the fence: this attempt must write nothing more."""


@dataclass(frozen=True)
class Fence:
    """One attempt of one scheduled activity: `key` names the activity, `token` is the
    attempt number (higher is newer)."""

    key: str
    token: int


@dataclass(frozen=True)
class StockRow:
    location_id: str
    sku: str
    on_hand: int
    reserved: int = 0

    @property
    def atp(self) -> int:
        return max(self.on_hand - self.reserved, 0)


@dataclass(frozen=True)
class ReservationRow:
    reservation_id: str
    order_id: str
    line_id: str
    location_id: str
    sku: str
    quantity: int
    status: str


class InventoryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def set_stock(self, rows: Sequence[tuple[str, str, int]]) -> int:
        """Absolute on-hand snapshot per (location, sku); reservations are kept.

        PostgreSQL: COPY into a temporary staging table, then one INSERT ... SELECT ...
        ON CONFLICT, so a feed of a million rows is a handful of statements. SQLite:
        multi-row INSERT ... ON CONFLICT in batches."""
        if not rows:
            return 0
        # the last row wins when a feed repeats a (location, sku); one row per key also
        # keeps the single INSERT ... ON CONFLICT from touching a row twice
        rows = list({(loc, sku): (loc, sku, qty) for loc, sku, qty in rows}.values())
        if not self.db.is_sqlite:
            return await self._set_stock_copy(rows)
        now = utcnow()
        async with self.db.transaction() as session:
            for start in range(0, len(rows), BATCH):
                chunk = rows[start : start + BATCH]
                stmt = self.db.insert(Inventory).values(
                    [
                        {
                            "location_id": loc,
                            "sku": sku,
                            "on_hand": qty,
                            "reserved": 0,
                            "updated_at": now,
                        }
                        for loc, sku, qty in chunk
                    ]
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=["location_id", "sku"],
                    set_={"on_hand": stmt.excluded.on_hand, "updated_at": now},
                )
                await session.execute(stmt)
        return len(rows)

    async def _set_stock_copy(self, rows: Sequence[tuple[str, str, int]]) -> int:
        async with self.db.transaction() as session:
            # through the session first, so the transaction has begun before COPY
            await session.execute(
                text(
                    "CREATE TEMP TABLE inventory_stage (location_id text, sku text, on_hand int)"
                    " ON COMMIT DROP"
                )
            )
            raw = await (await session.connection()).get_raw_connection()
            assert raw.driver_connection is not None
            await raw.driver_connection.copy_records_to_table(
                "inventory_stage", records=rows, columns=["location_id", "sku", "on_hand"]
            )
            await session.execute(
                text(
                    """
                INSERT INTO inventory (location_id, sku, on_hand, reserved, updated_at)
                SELECT location_id, sku, on_hand, 0, now() FROM inventory_stage
                ON CONFLICT (location_id, sku)
                DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
                """
                )
            )
        return len(rows)

    async def adjust(
        self, adjustments: Sequence[tuple[str | None, str, str, int, str]]
    ) -> list[tuple[str, str, int, bool]]:
        """Apply deltas (adjustment_id, location, sku, delta, reason); on-hand never goes
        below 0. A delta whose id was applied before is skipped. Returns
        (location, sku, on_hand after, applied) per delta."""
        now = utcnow()
        results: list[tuple[str, str, int, bool]] = []
        async with self.db.transaction() as session:
            for adjustment_id, location_id, sku, delta, reason in adjustments:
                applied = True
                if adjustment_id is not None:
                    inserted = await session.execute(
                        self.db.insert(InventoryAdjustment)
                        .values(
                            adjustment_id=adjustment_id,
                            location_id=location_id,
                            sku=sku,
                            delta=delta,
                            reason=reason,
                            created_at=now,
                        )
                        .on_conflict_do_nothing(index_elements=["adjustment_id"])
                    )
                    applied = inserted.rowcount == 1  # type: ignore[attr-defined]
                if applied:
                    await self.add_on_hand(session, location_id, sku, delta, now)
                row = await session.get(Inventory, (location_id, sku), populate_existing=True)
                results.append((location_id, sku, row.on_hand if row else 0, applied))
        return results

    async def add_on_hand(
        self, session: AsyncSession, location_id: str, sku: str, delta: int, now: datetime
    ) -> None:
        """Add `delta` to a location's on-hand stock of a SKU, in the caller's transaction
        (a row is made when there is none); never below 0 nor beyond the column."""
        await session.execute(
            self.db.insert(Inventory)
            .values(
                location_id=location_id,
                sku=sku,
                on_hand=min(max(delta, 0), MAX_ON_HAND),
                reserved=0,
                updated_at=now,
            )
            .on_conflict_do_update(
                index_elements=["location_id", "sku"],
                set_={
                    # in 64 bits, then kept within the column's range: a large receipt
                    # never overflows into an error
                    "on_hand": self._least(
                        self._greatest(cast(Inventory.on_hand, BigInteger) + delta, 0),
                        MAX_ON_HAND,
                    ),
                    "updated_at": now,
                },
            )
        )

    def _least(self, left: Any, right: Any) -> Any:
        return (func.min if self.db.is_sqlite else func.least)(left, right)

    def _greatest(self, left: Any, right: Any) -> Any:
        # scalar max() in SQLite is greatest() in PostgreSQL
        return (func.max if self.db.is_sqlite else func.greatest)(left, right)

    async def stock(self, skus: Iterable[str]) -> list[StockRow]:
        # plain columns, not ORM entities: availability reads are the hot path
        async with self.db.sessions() as session:
            result = await session.execute(
                select(Inventory.location_id, Inventory.sku, Inventory.on_hand, Inventory.reserved)
                .where(Inventory.sku.in_(list(skus)))
                .order_by(Inventory.sku, Inventory.location_id)
            )
            return [StockRow(*row) for row in result.all()]

    async def get_reservation(self, reservation_id: str) -> ReservationRow | None:
        async with self.db.sessions() as session:
            row = await session.get(Reservation, reservation_id)
            return _reservation(row) if row else None

    async def claim_fence(self, fence: Fence) -> bool:
        """Record this attempt on its fence (the token only grows); True when no newer
        attempt claimed it before. Also deletes a few fences older than FENCE_TTL."""
        now = utcnow()

        def write(session: Session) -> bool:
            self._sweep_fences(session, now - FENCE_TTL)
            stmt = self.db.insert(RoutingFence).values(
                fence_key=fence.key, token=fence.token, updated_at=now
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["fence_key"],
                set_={
                    "token": self._greatest(RoutingFence.token, stmt.excluded.token),
                    "updated_at": now,
                },
            )
            session.execute(stmt)
            token = (
                session.execute(
                    select(RoutingFence.token).where(RoutingFence.fence_key == fence.key)
                )
            ).scalar_one()
            return bool(token == fence.token)

        return await self.db.write(write)

    async def fence_token(self, key: str) -> int | None:
        async with self.db.sessions() as session:
            return (
                await session.execute(
                    select(RoutingFence.token).where(RoutingFence.fence_key == key)
                )
            ).scalar_one_or_none()

    def _sweep_fences(self, session: Session, cutoff: datetime) -> None:
        old = (
            select(RoutingFence.fence_key)
            .where(RoutingFence.updated_at < cutoff)
            .order_by(RoutingFence.updated_at)
            .limit(FENCE_SWEEP)
        )
        if not self.db.is_sqlite:
            # never wait for (or deadlock with) another claim sweeping the same rows
            old = old.with_for_update(skip_locked=True)
        session.execute(delete(RoutingFence).where(RoutingFence.fence_key.in_(old)))

    def _hold_fence(self, session: Session, fence: Fence | None) -> None:
        """Raise StaleFence unless `fence` still holds its token; on PostgreSQL the row
        stays locked until the transaction ends, so no newer claim slips in between."""
        if fence is None:
            return
        query = select(RoutingFence.token).where(RoutingFence.fence_key == fence.key)
        if not self.db.is_sqlite:
            query = query.with_for_update()
        token = (session.execute(query)).scalar_one_or_none()
        if token != fence.token:
            raise StaleFence(
                f"fence {fence.key}: attempt {fence.token} superseded by attempt {token}"
            )

    async def reserve(
        self,
        *,
        reservation_id: str,
        order_id: str,
        line_id: str,
        location_id: str,
        sku: str,
        quantity: int,
        fence: Fence | None = None,
        resize: bool = False,
    ) -> bool:
        """Reserve `quantity` units; idempotent per reservation_id. False when short.

        A RELEASED reservation asked for again is taken up anew (a new reserve after the
        release, e.g. when routing plans the same location once more). An ACTIVE one
        under the same id with another quantity is refused, unless `resize`: then it is
        given back and the new amount taken in the same transaction (all or nothing).
        With a `fence`, nothing is written unless the fence still holds its token
        (StaleFence otherwise)."""
        now = utcnow()
        try:

            def write(session: Session) -> bool:
                self._hold_fence(session, fence)
                existing = session.get(Reservation, reservation_id)
                if (
                    resize
                    and existing is not None
                    and existing.status == "ACTIVE"
                    and existing.quantity != quantity
                ):
                    if not self._release_row(session, existing, now):
                        raise _Conflict
                    existing = session.get(Reservation, reservation_id, populate_existing=True)
                if existing is not None and existing.status != "RELEASED":
                    if existing.status == "ACTIVE" and existing.quantity != quantity:
                        return False  # a different amount under the same key: refuse
                    return existing.location_id == location_id and existing.sku == sku
                hit = session.execute(
                    update(Inventory)
                    .where(
                        Inventory.location_id == location_id,
                        Inventory.sku == sku,
                        Inventory.on_hand - Inventory.reserved >= quantity,
                    )
                    .values(reserved=Inventory.reserved + quantity, updated_at=now)
                )
                if hit.rowcount != 1:  # type: ignore[attr-defined]
                    raise _Short
                if existing is not None:
                    revived = session.execute(
                        update(Reservation)
                        .where(
                            Reservation.reservation_id == reservation_id,
                            Reservation.status == "RELEASED",
                        )
                        .values(
                            status="ACTIVE",
                            quantity=quantity,
                            location_id=location_id,
                            updated_at=now,
                        )
                    )
                    if revived.rowcount != 1:  # type: ignore[attr-defined]
                        raise _Conflict  # someone else revived it: undo our inventory change
                    return True
                session.add(
                    Reservation(
                        reservation_id=reservation_id,
                        order_id=order_id,
                        line_id=line_id,
                        location_id=location_id,
                        sku=sku,
                        quantity=quantity,
                        status="ACTIVE",
                        created_at=now,
                        updated_at=now,
                    )
                )
                return True

            return await self.db.write(write)
        except _Short:
            return False

    async def release(self, reservation_id: str, *, fence: Fence | None = None) -> bool:
        """Give the reserved units back; True only for the call that released them.
        With a `fence`, as in `reserve`."""
        now = utcnow()

        def write(session: Session) -> bool:
            self._hold_fence(session, fence)
            row = session.get(Reservation, reservation_id)
            if row is None:
                return False
            return self._release_row(session, row, now)

        return await self.db.write(write)

    def _release_row(self, session: Session, row: Reservation, now: datetime) -> bool:
        if row.status not in ("ACTIVE", "PICKED"):
            return False
        hit = session.execute(
            update(Reservation)
            .where(
                Reservation.reservation_id == row.reservation_id, Reservation.status == row.status
            )
            .values(status="RELEASED", updated_at=now)
        )
        if hit.rowcount != 1:  # type: ignore[attr-defined]
            return False
        self._add_reserved(session, row, -row.quantity)
        return True

    async def record_pick(self, reservation_id: str, picked: int) -> bool:
        """Units not found are gone from on-hand (an inventory correction) and no longer
        reserved; the picked units stay reserved until they ship."""
        now = utcnow()

        def write(session: Session) -> bool:
            row = session.get(Reservation, reservation_id)
            if row is None or row.status != "ACTIVE":
                return False
            missing = max(row.quantity - picked, 0)
            # nothing found: nothing stays reserved, so the reservation is over (RELEASED),
            # not a PICKED reservation of zero units that never ships
            status = "PICKED" if row.quantity - missing else "RELEASED"
            hit = session.execute(
                update(Reservation)
                .where(Reservation.reservation_id == reservation_id, Reservation.status == "ACTIVE")
                .values(status=status, quantity=row.quantity - missing, updated_at=now)
            )
            if hit.rowcount != 1:  # type: ignore[attr-defined]
                return False
            if missing:
                greatest = self._greatest
                session.execute(
                    update(Inventory)
                    .where(Inventory.location_id == row.location_id, Inventory.sku == row.sku)
                    .values(
                        reserved=greatest(Inventory.reserved - missing, 0),
                        on_hand=greatest(Inventory.on_hand - missing, 0),
                        updated_at=now,
                    )
                )
            return True

        return await self.db.write(write)

    async def consume(self, reservation_id: str) -> bool:
        """Shipped: the reserved units leave on-hand."""
        now = utcnow()

        def write(session: Session) -> bool:
            row = session.get(Reservation, reservation_id)
            if row is None or row.status not in ("ACTIVE", "PICKED"):
                return False
            hit = session.execute(
                update(Reservation)
                .where(
                    Reservation.reservation_id == reservation_id, Reservation.status == row.status
                )
                .values(status="CONSUMED", updated_at=now)
            )
            if hit.rowcount != 1:  # type: ignore[attr-defined]
                return False
            session.execute(
                update(Inventory)
                .where(Inventory.location_id == row.location_id, Inventory.sku == row.sku)
                .values(
                    reserved=self._greatest(Inventory.reserved - row.quantity, 0),
                    on_hand=self._greatest(Inventory.on_hand - row.quantity, 0),
                    updated_at=now,
                )
            )
            return True

        return await self.db.write(write)

    async def reservations_for_order(self, order_id: str) -> list[ReservationRow]:
        async with self.db.sessions() as session:
            result = await session.execute(
                select(Reservation)
                .where(Reservation.order_id == order_id)
                .order_by(Reservation.created_at)
            )
            return [_reservation(r) for r in result.scalars()]

    def _add_reserved(self, session: Session, row: Reservation, delta: int) -> None:
        session.execute(
            update(Inventory)
            .where(Inventory.location_id == row.location_id, Inventory.sku == row.sku)
            .values(reserved=Inventory.reserved + delta, updated_at=utcnow())
        )


def _reservation(row: Reservation) -> ReservationRow:
    return ReservationRow(
        row.reservation_id,
        row.order_id,
        row.line_id,
        row.location_id,
        row.sku,
        row.quantity,
        row.status,
    )
