"""The API's direct reads (store/direct.py) connect where the store's engine does, with
the engine's own options taken out, and do not exist on SQLite."""

from __future__ import annotations

from pathlib import Path

from store.database import Database
from store.direct import DirectReads


def open_reads(db: Database) -> DirectReads | None:
    return DirectReads.open(db, connect_timeout=1, command_timeout=2, pool_timeout=3)


async def test_sqlite_has_none(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}")
    try:
        assert open_reads(db) is None
    finally:
        await db.dispose()


async def test_postgresql_connects_as_the_engine_does() -> None:
    db = Database(
        "postgresql://oms:secret@db.example:6432/oms?ssl=require&prepared_statement_cache_size=0"
    )
    try:
        reads = open_reads(db)
        assert reads is not None
        # nothing is connected before a read needs it (an outage at start is no failure)
        assert reads._params == {
            "host": "db.example",
            "port": 6432,
            "user": "oms",
            "password": "secret",
            "database": "oms",
            "ssl": "require",
            "statement_cache_size": 0,  # as the engine's, e.g. behind PgBouncer
        }
        await reads.close()
    finally:
        await db.dispose()
