"""Alembic owns the store's schema: the revisions in store/migrations/versions/, run by
`Database.migrate()` (the worker and the API at start unless OMS_MIGRATE_ON_START=0, `make
dev`, `oms db upgrade`).

Alembic is configured here, in code, so nothing depends on the working directory or an
alembic.ini: the scripts are found as the package resource `store:migrations`, and every
command runs on a connection the caller opened (and locked: see Database.migrate).

A store made by the runner from before Alembic (it has `schema_migrations`, no revision)
first gets that runner's missing steps (store/migrations/legacy.py) and is then stamped
at BASELINE, the revision whose schema those steps end with."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from store.migrations import legacy
from store.tables import UTCDateTime

log = logging.getLogger(__name__)

SCRIPT_LOCATION = "store:migrations"
# the revision a store from before Alembic is stamped at once its old steps all ran
BASELINE = "0001"
# tables in the database that no model declares and autogenerate must leave alone
UNMODELLED_TABLES = frozenset({legacy.TABLE})


def config(connection: Connection | None = None, **attributes: Any) -> Config:
    """Alembic's configuration for the store; `connection` is the one its commands use."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    # revision files are named like 0002_add_a_column.py
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.attributes["connection"] = connection
    cfg.attributes.update(attributes)
    return cfg


@cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision of this release (the revisions form one line)."""
    found = scripts().get_current_head()
    if found is None:
        raise RuntimeError("the store has no Alembic revisions")
    return found


def known(revision: str) -> bool:
    return revision in {script.revision for script in scripts().walk_revisions()}


def title(revision: str) -> str:
    """A revision's first docstring line."""
    script = scripts().get_revision(revision)
    return (script.doc if script is not None else "").strip().splitlines()[0]


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """What autogenerate compares: everything but the tables no model declares (the old
    runner's record), so it never proposes dropping them."""
    return not (type_ == "table" and reflected and compare_to is None and name in UNMODELLED_TABLES)


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Revisions spell the models' own column types in SQLAlchemy's (a revision must not
    import the models: they change, it must not)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def context_options(connection: Connection) -> dict[str, Any]:
    """How env.py and the drift check configure Alembic on a connection."""
    return {
        "compare_type": True,
        "include_object": include_object,
        "render_item": render_item,
        # SQLite alters most things by copying the table: batch operations do that
        "render_as_batch": connection.dialect.name == "sqlite",
    }


def current(connection: Connection) -> str | None:
    """The store's Alembic revision (None: no revision recorded)."""
    return MigrationContext.configure(connection).get_current_revision()


@dataclass
class SchemaState:
    """Where a store's schema is against this release's revisions."""

    revision: str | None
    head: str
    legacy_version: int | None = None  # a store from before Alembic: its old runner's step

    @property
    def ahead(self) -> bool:
        """At a revision this release does not know: a newer release migrated the store."""
        return self.revision is not None and not known(self.revision)

    @property
    def behind(self) -> bool:
        return self.revision != self.head and not self.ahead

    def describe(self) -> str:
        if self.revision is not None:
            return f"revision {self.revision}"
        if self.legacy_version is not None:
            return f"migration {self.legacy_version} of the runner from before Alembic"
        return "no revision (an empty store)"


def state(connection: Connection) -> SchemaState:
    revision = current(connection)
    legacy_version = None
    if revision is None and legacy.is_legacy(connection):
        legacy_version = legacy.latest(connection)
    return SchemaState(revision=revision, head=head(), legacy_version=legacy_version)


@dataclass
class Upgrade:
    """What one upgrade did."""

    legacy: list[tuple[int, str]] = field(default_factory=list)  # old runner's steps
    stamped: str | None = None  # the revision a store from before Alembic was stamped at
    applied: list[tuple[str, str]] = field(default_factory=list)  # revisions run, in order
    revision: str | None = None  # the store's revision afterwards
    head: str = ""
    ahead: bool = False  # the store is at a revision newer than this release's


def pending(revision: str | None) -> list[str]:
    """The revisions from `revision` (exclusive) up to head, oldest first."""
    found = scripts().iterate_revisions("heads", revision or "base")
    return [script.revision for script in reversed(list(found))]


def upgrade(connection: Connection) -> Upgrade:
    """Bring the store to head on `connection`, inside the caller's transaction (which
    commits it all or nothing; PostgreSQL and SQLite both change schemas transactionally)."""
    result = Upgrade(head=head())
    revision = current(connection)
    if revision is None and legacy.is_legacy(connection):
        result.legacy = legacy.run_remaining(connection)
        command.stamp(config(connection), BASELINE)
        log.info("store from before Alembic stamped at revision %s", BASELINE)
        result.stamped = revision = BASELINE
    if revision is not None and not known(revision):
        # a newer release's revisions ran (rolling deploy, rollback): its schema only adds
        # to what this release needs, so this one runs on it without touching it
        log.warning(
            "store schema at revision %s, newer than this release (head %s): not migrating",
            revision,
            result.head,
        )
        result.revision, result.ahead = revision, True
        return result
    todo = pending(revision)
    if todo:
        command.upgrade(config(connection), "head")
        for applied in todo:
            log.info("applied store revision %s: %s", applied, title(applied))
    result.applied = [(applied, title(applied)) for applied in todo]
    result.revision = current(connection)
    return result


def drift(connection: Connection, metadata: MetaData) -> list[Any]:
    """What autogenerate would write for `metadata` against this store: empty when the
    models and the revisions the store is at agree."""
    context = MigrationContext.configure(connection, opts=context_options(connection))
    return list(compare_metadata(context, metadata))


def _drop_empty(context: Any, revision: Any, directives: list[MigrationScript]) -> None:
    script = directives[0] if directives else None
    if script is not None and script.upgrade_ops is not None and script.upgrade_ops.is_empty():
        directives[:] = []


def next_revision_id() -> str:
    """Revisions are numbered 0001, 0002 ... so their files sort in order."""
    numbers = [int(s.revision) for s in scripts().walk_revisions() if s.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(connection: Connection, message: str, *, autogenerate: bool) -> str | None:
    """Write a revision file into store/migrations/versions/ and return its path. With
    `autogenerate`, its operations are what turns the store at `connection` (at head) into
    the models; None when there is nothing to turn."""
    cfg = config(connection)
    if importlib.util.find_spec("ruff") is not None:
        # the new file passes the project's lint and format checks as written
        cfg.set_section_option("post_write_hooks", "hooks", "ruff_format, ruff_fix")
        for name, options in (
            ("ruff_format", "format --quiet REVISION_SCRIPT_FILENAME"),
            ("ruff_fix", "check --fix --quiet REVISION_SCRIPT_FILENAME"),
        ):
            cfg.set_section_option("post_write_hooks", f"{name}.type", "module")
            cfg.set_section_option("post_write_hooks", f"{name}.module", "ruff")
            cfg.set_section_option("post_write_hooks", f"{name}.options", options)
    scripts.cache_clear()
    written = command.revision(
        cfg,
        message=message,
        autogenerate=autogenerate,
        rev_id=next_revision_id(),
        process_revision_directives=_drop_empty if autogenerate else None,
    )
    scripts.cache_clear()
    # a list (empty when autogenerate found nothing and the revision was dropped)
    found = (written[0] if written else None) if isinstance(written, list) else written
    return None if found is None else str(found.path)


def revisions() -> Iterable[tuple[str, str]]:
    """Every revision, oldest first, with its title."""
    for script in reversed(list(scripts().walk_revisions())):
        yield script.revision, title(script.revision)
