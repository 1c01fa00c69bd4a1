"""The store: SQLAlchemy tables and repositories (no Temporal imports)."""

from __future__ import annotations

from store.commands import CommandRepository
from store.configuration import ConfigRepository, Principal
from store.database import Database
from store.fulfillment import FulfillmentRepository
from store.inventory import InventoryRepository
from store.orders import OrderRepository
from store.returns import ReturnRepository
from store.tracking import TrackingRepository

__all__ = ["Database", "Principal", "Store"]


class Store:
    """The repositories over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inventory = InventoryRepository(db)
        self.config = ConfigRepository(db)
        self.orders = OrderRepository(db)
        self.fulfillment = FulfillmentRepository(db)
        self.returns = ReturnRepository(db)
        self.tracking = TrackingRepository(db)
        self.commands = CommandRepository(db)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        """The store at `url`, its schema first brought to this release's revision
        (store/migrations) unless `migrate` is false."""
        db = Database(url)
        if migrate:
            await db.migrate()
        return cls(db)

    async def close(self) -> None:
        await self.db.dispose()
