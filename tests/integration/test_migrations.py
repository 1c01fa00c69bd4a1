"""The store's schema is Alembic's: on a fresh SQLite file and a fresh PostgreSQL database
the revisions build exactly what the models declare (autogenerate finds nothing), a model
changed without a revision is caught, a store made by the runner from before Alembic is
stamped with its rows kept, and processes starting together migrate once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, text

from store import migrations
from store.database import Database
from store.migrations import legacy
from store.tables import Base
from tests.integration.conftest import POSTGRES_URL, _postgres_database
from workers.client import open_store_with_retry
from workers.settings import Settings


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL database."""
    drop: Callable[[], Awaitable[None]] | None = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}"
    else:
        found = await _postgres_database()
        if found is None:
            pytest.skip(f"PostgreSQL at {POSTGRES_URL} unreachable (OMS_REQUIRE_POSTGRES unset)")
        url, drop = found
    try:
        yield url
    finally:
        if drop is not None:
            await drop()


async def drift(db: Database, metadata: MetaData = Base.metadata) -> list[Any]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: migrations.drift(c, metadata))


async def revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(migrations.current)


def all_revisions() -> list[str]:
    return [r for r, _ in migrations.revisions()]


def test_the_revisions_form_one_line_in_file_order() -> None:
    # two branches written at once (both 0003, or both after 0002) would split the line
    versions = Path(migrations.__file__).parent / "versions"
    files = sorted(p.name for p in versions.glob("*.py") if p.name != "__init__.py")
    assert [name.split("_")[0] for name in files] == all_revisions(), files
    assert all_revisions()[-1] == migrations.head()


async def test_the_revisions_build_what_the_models_declare(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        done = await db.migrate()
        assert [r for r, _ in done.applied] == all_revisions()
        assert done.applied[0] == ("0001", "initial schema")
        assert done.revision == migrations.head() and not done.legacy and done.stamped is None
        found = await drift(db)
        assert found == [], (
            "store/tables.py and the revisions in store/migrations/versions/ differ: write a "
            'revision with `oms db revision --autogenerate -m "..."` (README: Schema '
            f"migrations); autogenerate found: {found}"
        )
        again = await db.migrate()
        assert again.applied == [] and again.revision == migrations.head()
    finally:
        await db.dispose()


async def test_postgresql_inventory_pages_keep_room_for_changed_levels(empty_url: str) -> None:
    # revision 0007: a changed level or reservation can stay on its page (HOT update)
    if empty_url.startswith("sqlite"):
        pytest.skip("SQLite has no fillfactor")
    db = Database(empty_url)
    try:
        await db.migrate()
        async with db.engine.connect() as conn:
            options = await conn.scalar(
                text("SELECT reloptions FROM pg_class WHERE relname = 'inventory'")
            )
        assert options == ["fillfactor=70"]
    finally:
        await db.dispose()


async def test_a_model_changed_without_a_revision_is_caught(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        await db.migrate()
        changed = MetaData()
        for table in Base.metadata.tables.values():
            table.to_metadata(changed)
        changed.tables["orders"].append_column(Column("gift_note", String(200), nullable=True))
        Table("gift_wraps", changed, Column("wrap_id", Integer, primary_key=True))
        found = await drift(db, changed)
        columns = [(d[2], d[3].name) for d in found if d[0] == "add_column"]
        tables = [d[1].name for d in found if d[0] == "add_table"]
        assert ("orders", "gift_note") in columns and "gift_wraps" in tables, found
    finally:
        await db.dispose()


async def test_a_store_from_before_alembic_is_stamped_not_recreated(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        # laid out by the old runner, all its 8 steps recorded, with a row of data
        async with db.engine.begin() as conn:
            await conn.run_sync(legacy.make)
            await conn.execute(
                text("INSERT INTO sales_channels (channel_id, config) VALUES ('old', '{}')")
            )
        before = await db.schema_state()
        assert (before.revision, before.legacy_version, before.behind) == (None, 8, True)

        done = await db.migrate()
        assert done.legacy == [] and done.stamped == "0001"
        assert [r for r, _ in done.applied] == all_revisions()[1:]
        assert await revision(db) == migrations.head()
        async with db.engine.connect() as conn:
            channels = (await conn.execute(text("SELECT channel_id FROM sales_channels"))).all()
            steps = (await conn.execute(text("SELECT count(*) FROM schema_migrations"))).scalar()
        assert channels == [("old",)]
        assert steps == 8  # the old runner's record stays, untouched
        assert await drift(db) == []  # ... and autogenerate leaves it alone
        assert (await db.migrate()).applied == []
    finally:
        await db.dispose()


async def test_processes_starting_together_migrate_once(empty_url: str) -> None:
    starters = [Database(empty_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(db.migrate() for db in starters))
        applied = [r.applied for r in results]
        assert sorted(map(len, applied)) == [0, 0, len(all_revisions())], applied
        assert all(r.revision == migrations.head() for r in results)
        assert await drift(starters[0]) == []
    finally:
        for db in starters:
            await db.dispose()


async def test_a_store_at_a_newer_releases_revision_is_left_alone(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}")
    try:
        await db.migrate()
        # a later release's revision ran (this one is rolled back, or not yet replaced)
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
        done = await db.migrate()
        assert done.ahead and done.applied == [] and done.revision == "f00d"
        schema = await db.schema_state()
        assert schema.ahead and not schema.behind
    finally:
        await db.dispose()


async def test_migrating_at_start_can_be_left_to_a_deploy_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}"
    off = Settings(database_url=url, migrate_on_start="0")
    assert off.refusals(api=True) == []
    with caplog.at_level(logging.WARNING, logger="oms.connect"):
        store = await open_store_with_retry(off)
    try:
        assert (await store.db.schema_state()).revision is None  # nothing created
        assert "oms db upgrade" in caplog.text and "needs revision" in caplog.text
    finally:
        await store.close()
    store = await open_store_with_retry(Settings(database_url=url))  # default: on
    try:
        assert (await store.db.schema_state()).revision == migrations.head()
    finally:
        await store.close()
    refused = Settings(database_url=url, migrate_on_start="sometimes").refusals(api=False)
    assert refused and "OMS_MIGRATE_ON_START must be 1 or 0" in refused[0]
