"""`oms`: the operators' command-line tool. It talks to the OMS API (OMS_API_URL, default
http://127.0.0.1:8080) with the key in OMS_API_KEY (flags override both); `oms db upgrade`
goes straight to the store at OMS_DATABASE_URL instead.

Output is a readable table by default and the API's JSON with `--json`. Exit codes:
0 done; 1 the API answered an error (its code and message are printed) or some rows of a
file were not loaded; 2 a usage error (a missing option or API key); 3 the API or the store
is unreachable; 4 a command was accepted but its outcome is not known yet (the command id
is printed: GET /v1/commands/{id})."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

import click

if TYPE_CHECKING:
    from store.database import Database

T = TypeVar("T")

DEFAULT_API_URL = "http://127.0.0.1:8080"
DEFAULT_TEMPORAL_UI_URL = "http://localhost:8233"
ROLES = ("webshop", "approver", "location", "ops", "admin")
# what an operator looks at in `oms orders held`: stopped orders waiting for someone
HELD_STATUSES = ("ON_HOLD", "NOT_ANNOUNCED", "CHECK_ANNOUNCED")
PAGE = 500  # the API's largest page of GET /v1/orders
INVENTORY_COLUMNS = ("location_id", "sku", "on_hand")
MAX_ON_HAND = 1_000_000_000

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_PENDING = 4


class CliFailure(click.ClickException):
    """A failure printed as `error: ...` on stderr with its own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class ApiAnswer(CliFailure):
    """A 4xx/5xx from the API, with its error code and message."""

    def __init__(self, status: int, code: str, message: str, details: Any) -> None:
        text = f"HTTP {status} {code}: {message}"
        if details:
            text += f"\n  details: {json.dumps(details, ensure_ascii=False)}"
        super().__init__(text, EXIT_API_ERROR)
        self.status = status
        self.code = code
        self.details = details


@dataclass
class Api:
    """The OMS API over HTTP (the standard library: the CLI needs no event loop)."""

    url: str
    key: str | None
    timeout: float

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        return self._send(method, path, data, "application/json" if data else None, None)

    def call_raw(
        self,
        method: str,
        path: str,
        chunks: Iterable[bytes],
        content_type: str,
        length: int,
    ) -> tuple[int, Any]:
        """A body streamed from `chunks` (`length` bytes in all)."""
        return self._send(method, path, chunks, content_type, length)

    def _send(
        self,
        method: str,
        path: str,
        data: bytes | Iterable[bytes] | None,
        content_type: str | None,
        length: int | None,
    ) -> tuple[int, Any]:
        if not self.key:
            raise CliFailure("no API key: set OMS_API_KEY or pass --api-key", EXIT_USAGE)
        request = urllib.request.Request(
            self.url.rstrip("/") + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Accept": "application/json"},
        )
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        if length is not None:
            request.add_header("Content-Length", str(length))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as err:
            answer = _decode(err.read())
            error = answer.get("error") if isinstance(answer, dict) else None
            if isinstance(error, dict):
                raise ApiAnswer(
                    err.code,
                    str(error.get("code", "error")),
                    str(error.get("message", "")),
                    error.get("details"),
                ) from err
            raise ApiAnswer(err.code, "http_error", str(err.reason), None) from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise CliFailure(
                f"the OMS API at {self.url} is unreachable ({reason}); "
                "is it running? (set OMS_API_URL or --api-url)",
                EXIT_UNREACHABLE,
            ) from err


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


@dataclass
class Context:
    api: Api
    json: bool
    extra: dict[str, Any] = field(default_factory=dict)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *cells]:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) or "-"
    return str(value)


def _when(stamp: str | None) -> str | None:
    """An ISO time without its fraction of a second (tables are read by people)."""
    if not stamp:
        return None
    stamp = stamp.removesuffix("+00:00") + ("Z" if stamp.endswith("+00:00") else "")
    head, _, rest = stamp.partition(".")
    if rest:
        zone = next((rest[i:] for i, c in enumerate(rest) if c in "+-Z"), "")
        return head + zone
    return stamp


pass_context = click.make_pass_decorator(Context)


def json_option(func: Any) -> Any:
    """`--json` on every command (also accepted before the command: `oms --json ...`)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value and isinstance(ctx.obj, Context):
            ctx.obj.json = True
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="Print JSON (the API's answer) instead of a table.",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--api-url",
    envvar="OMS_API_URL",
    default=DEFAULT_API_URL,
    show_default=True,
    help="The OMS API (env OMS_API_URL).",
)
@click.option("--api-key", envvar="OMS_API_KEY", help="API key (env OMS_API_KEY).")
@click.option(
    "--timeout",
    envvar="OMS_API_TIMEOUT",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for one API answer (env OMS_API_TIMEOUT).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def cli(
    ctx: click.Context, api_url: str, api_key: str | None, timeout: float, as_json: bool
) -> None:
    """Operate the OMS: API keys, stock, held orders and the store's schema.

    Talks to the OMS API at OMS_API_URL with the key in OMS_API_KEY (admin or ops).
    Exit codes: 0 done, 1 the API answered an error or rows were not loaded, 2 usage,
    3 the API or store is unreachable, 4 a command's outcome is not known yet."""
    ctx.obj = Context(Api(api_url, api_key, timeout), as_json)


def main() -> None:
    cli(prog_name="oms")


# --------------------------------------------------------------------------- db


@cli.group()
def db() -> None:
    """The store's schema (straight to the database, not through the API)."""


def _database_option(func: Any) -> Any:
    return click.option(
        "--database-url",
        envvar="OMS_DATABASE_URL",
        help="The store (env OMS_DATABASE_URL; default: the worker's SQLite file in OMS_DATA_DIR).",
    )(func)


def _on_store(url: str | None, work: Callable[[Database], Awaitable[T]], what: str) -> T:
    """Run `work` on the store at `url` (default: the worker's), failing as the CLI does."""
    from store.database import Database as Store
    from workers.settings import Settings

    async def run() -> T:
        database = Store(url or Settings().resolved_database_url())
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except (OSError, TimeoutError) as err:
        raise CliFailure(f"the store is unreachable ({err})", EXIT_UNREACHABLE) from err
    except Exception as err:  # the driver's own errors (asyncpg, sqlite3, SQLAlchemy, Alembic)
        raise CliFailure(f"{what} failed: {err}", EXIT_API_ERROR) from err


@db.command("upgrade")
@_database_option
@json_option
@pass_context
def db_upgrade(obj: Context, database_url: str | None) -> None:
    """Bring the store's schema to this release's Alembic revision.

    The same upgrade the worker and the API run at start (unless OMS_MIGRATE_ON_START=0):
    a store from before Alembic first gets its old runner's missing steps and is stamped
    at revision 0001, its tables kept. Safe to run while the OMS runs: PostgreSQL
    migrators take turns under an advisory lock."""
    done = _on_store(database_url, lambda database: database.migrate(), "migrating the store")
    if obj.json:
        _echo_json(
            {
                "legacy": [{"version": v, "name": n} for v, n in done.legacy],
                "stamped": done.stamped,
                "applied": [{"revision": r, "name": n} for r, n in done.applied],
                "at": done.revision,
                "head": done.head,
                "ahead": done.ahead,
            }
        )
        return
    for version, name in done.legacy:
        click.echo(f"applied migration {version} (from before Alembic): {name}")
    if done.stamped:
        click.echo(f"stamped revision {done.stamped}: a store from before Alembic, kept as it is")
    for revision, name in done.applied:
        click.echo(f"applied revision {revision}: {name}")
    if done.ahead:
        click.echo(
            f"store at revision {done.revision}, newer than this release's {done.head} "
            "(a newer release migrated it): nothing to apply"
        )
        return
    changed = done.legacy or done.stamped or done.applied
    click.echo(
        f"store at revision {done.revision}"
        + ("" if changed else " (up to date, nothing to apply)")
    )


@db.command("current")
@_database_option
@json_option
@pass_context
def db_current(obj: Context, database_url: str | None) -> None:
    """Show the store's schema revision and this release's (changes nothing)."""
    schema = _on_store(
        database_url, lambda database: database.schema_state(), "reading the store's revision"
    )
    if obj.json:
        _echo_json(
            {
                "revision": schema.revision,
                "legacy_version": schema.legacy_version,
                "head": schema.head,
                "behind": schema.behind,
                "ahead": schema.ahead,
            }
        )
        return
    if schema.ahead:
        verdict = f"newer than this release's {schema.head}"
    elif schema.behind:
        verdict = f"behind this release's {schema.head}: run `oms db upgrade`"
    else:
        verdict = "this release's head"
    click.echo(f"store at {schema.describe()}: {verdict}")


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the change is (the file's name).")
@click.option(
    "--autogenerate",
    is_flag=True,
    help="Write the operations that turn the revisions' schema into the models' "
    "(store/tables.py); without it the revision is empty, for data migrations.",
)
@click.option(
    "--against",
    "against_url",
    help="The database to compare the models with, at head (default: a scratch SQLite "
    "file upgraded to head, so the difference is exactly the models' new parts).",
)
def db_revision(message: str, autogenerate: bool, against_url: str | None) -> None:
    """Write a new Alembic revision into store/migrations/versions/ (for developers).

    Review the file (autogenerate misses renames and data changes), run `oms db upgrade`
    on a development store, and commit it with the model change."""
    from store import migrations

    async def write(database: Database) -> str | None:
        await database.migrate()
        async with database.engine.begin() as conn:
            return await conn.run_sync(
                lambda c: migrations.new_revision(c, message, autogenerate=autogenerate)
            )

    with tempfile.TemporaryDirectory(prefix="oms-revision-") as scratch:
        url = against_url or f"sqlite+aiosqlite:///{Path(scratch) / 'scratch.db'}"
        path = _on_store(url, write, "writing the revision")
    if path is None:
        click.echo("nothing to write: the models and the revisions agree")
        return
    click.echo(f"wrote {path}")


# --------------------------------------------------------------------------- keys


@cli.group()
def keys() -> None:
    """API keys (admin key needed)."""


def _key_rows(entries: Sequence[dict[str, Any]]) -> str:
    return table(
        ("ID", "NAME", "ROLE", "IDENTITY", "LAST4", "ACTIVE", "CREATED", "REVOKED", "EXPIRES"),
        [
            (
                e["id"],
                e["name"],
                e["role"],
                e["identity"],
                e.get("last4"),
                e.get("active"),
                _when(e.get("created_at")),
                _when(e.get("revoked_at")),
                _when(e.get("expires_at")),
            )
            for e in entries
        ],
    )


@keys.command("create")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the key may do.")
@click.option(
    "--identity",
    required=True,
    help="The channel, location or approver the key acts as (its name for ops and admin).",
)
@json_option
@pass_context
def keys_create(obj: Context, name: str, role: str, identity: str) -> None:
    """A new random key; it is shown once, only its hash is stored."""
    _, answer = obj.api.call(
        "POST", "/v1/api-keys", {"name": name, "role": role, "identity": identity}
    )
    if obj.json:
        _echo_json(answer)
        return
    click.echo(_key_rows([answer]))
    click.echo(f"\nkey: {answer['key']}")
    click.echo("store it now: it is not shown again", err=True)


@keys.command("list")
@json_option
@pass_context
def keys_list(obj: Context) -> None:
    """Every key (never the key itself: its last 4 characters)."""
    _, answer = obj.api.call("GET", "/v1/api-keys")
    if obj.json:
        _echo_json(answer)
        return
    click.echo(_key_rows(answer["api_keys"]))


@keys.command("revoke")
@click.argument("key_id")
@json_option
@pass_context
def keys_revoke(obj: Context, key_id: str) -> None:
    """The key gets 401 from now on."""
    _, answer = obj.api.call("POST", f"/v1/api-keys/{quote(key_id, safe='')}/revoke")
    if obj.json:
        _echo_json(answer)
        return
    click.echo(f"revoked {answer['id']} ({answer['name']}) at {_when(answer.get('revoked_at'))}")


@keys.command("rotate")
@click.argument("key_id")
@click.option(
    "--overlap-seconds",
    type=click.IntRange(0, 30 * 24 * 3600),
    default=None,
    help="How long the old key keeps working (API default: 24 h).",
)
@json_option
@pass_context
def keys_rotate(obj: Context, key_id: str, overlap_seconds: int | None) -> None:
    """A new key for the same name, role and identity (shown once); the old one works
    until the overlap ends."""
    body = {} if overlap_seconds is None else {"overlap_seconds": overlap_seconds}
    _, answer = obj.api.call("POST", f"/v1/api-keys/{quote(key_id, safe='')}/rotate", body)
    if obj.json:
        _echo_json(answer)
        return
    old = answer.get("replaces") or {}
    click.echo(_key_rows([answer]))
    click.echo(f"\nkey: {answer['key']}")
    click.echo(f"the old key {old.get('id')} works until {_when(old.get('expires_at'))}")
    click.echo("store it now: it is not shown again", err=True)


# --------------------------------------------------------------------------- inventory


@cli.group()
def inventory() -> None:
    """Stock levels (admin key needed)."""


@dataclass
class StockRow:
    line: int
    location_id: str
    sku: str
    on_hand: int

    def body(self) -> dict[str, Any]:
        return {"location_id": self.location_id, "sku": self.sku, "on_hand": self.on_hand}


def _quantity(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("on_hand is not a whole number")
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit():
            raise ValueError(f"on_hand {value!r} is not a whole number")
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"on_hand {value!r} is not a whole number")
    if not 0 <= value <= MAX_ON_HAND:
        raise ValueError(f"on_hand {value} is not between 0 and {MAX_ON_HAND}")
    return value


def _row(line: int, record: dict[str, Any]) -> StockRow:
    missing = [c for c in INVENTORY_COLUMNS if record.get(c) in (None, "")]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    extra = sorted(set(record) - set(INVENTORY_COLUMNS))
    if extra:
        raise ValueError(f"unknown fields {', '.join(map(str, extra))}")
    location, sku = record["location_id"], record["sku"]
    if not isinstance(location, str) or not isinstance(sku, str):
        raise ValueError("location_id and sku are text")
    return StockRow(line, location.strip(), sku.strip(), _quantity(record["on_hand"]))


def read_stock(text: str, kind: str) -> Iterator[StockRow | tuple[int, str]]:
    """The file's rows, or (line number, problem) for a row that cannot be one."""
    if kind == "jsonl":
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                yield _row(number, record)
            except ValueError as err:
                yield number, str(err)
        return
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    if sorted(header) != sorted(INVENTORY_COLUMNS):
        raise CliFailure(
            f"the CSV header must be {','.join(INVENTORY_COLUMNS)}, not {','.join(header)}",
            EXIT_USAGE,
        )
    reader.fieldnames = header
    for record in reader:
        number = reader.line_num
        if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
            continue
        if None in record:
            yield number, "more columns than the header"
            continue
        try:
            yield _row(number, record)
        except ValueError as err:
            yield number, str(err)


FEED_CONTENT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
FEED_CHUNK = 256 * 1024


def _stream_feed(obj: Context, file: Path, kind: str) -> None:
    """PUT the file as it is, in chunks, with a progress bar over its bytes."""
    with file.open("rb") as head:
        start = head.read(4096).decode("utf-8-sig", errors="replace")
    content_type = FEED_CONTENT_TYPES[_kind(file, start, kind)]
    size = file.stat().st_size
    started = time.monotonic()

    def chunks(progress: Any) -> Iterator[bytes]:
        with file.open("rb") as feed:
            while chunk := feed.read(FEED_CHUNK):
                progress.update(len(chunk))
                yield chunk

    with click.progressbar(
        length=size, label=f"streaming {file.name}", file=sys.stderr, show_percent=True
    ) as progress:
        try:
            _, answer = obj.api.call_raw(
                "PUT", "/v1/inventory", chunks(progress), content_type, size
            )
        except ApiAnswer as err:
            if err.code != "invalid_feed" or not isinstance(err.details, list):
                raise
            problems = [d for d in err.details if isinstance(d, dict)]
            summary = {
                "file": str(file),
                "loaded": 0,
                "rejected": [
                    {"line": d.get("line"), "problem": f"{d.get('field')}: {d.get('message')}"}
                    for d in problems
                ],
                "message": err.message,
            }
            if obj.json:
                _echo_json(summary)
            else:
                for d in problems:
                    click.echo(f"line {d.get('line')}: {d.get('message')}", err=True)
                click.echo(f"nothing loaded: {err.message}")
            click.get_current_context().exit(EXIT_API_ERROR)
    seconds = round(time.monotonic() - started, 3)
    loaded = int(answer.get("updated", 0)) if isinstance(answer, dict) else 0
    if obj.json:
        _echo_json({"file": str(file), "loaded": loaded, "rejected": [], "seconds": seconds})
    else:
        click.echo(f"{loaded} stock levels loaded from {file.name} in {seconds:.1f} s")


def _kind(path: Path, text: str, chosen: str) -> str:
    if chosen != "auto":
        return chosen
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if path.suffix.lower() == ".csv":
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _rejected_rows(batch: Sequence[StockRow], err: ApiAnswer) -> dict[int, str]:
    """Which rows of a batch the API refused (index -> why), from its 422 details."""
    if err.status != 422 or not isinstance(err.details, list):
        return {}
    refused: dict[int, str] = {}
    for detail in err.details:
        if not isinstance(detail, dict):
            continue
        where = str(detail.get("field", "")).split(".")
        message = str(detail.get("message", err.code))
        if where and where[0].isdigit() and int(where[0]) < len(batch):
            refused.setdefault(int(where[0]), f"{'.'.join(where[1:])}: {message}")
        elif detail.get("type") == "unknown_location":
            for index, row in enumerate(batch):
                if message == f"unknown location {row.location_id}":
                    refused.setdefault(index, message)
    return refused


def _send(api: Api, batch: list[StockRow], bad: list[tuple[int, str]]) -> int:
    """PUT one batch; rows the API refuses are reported and the rest sent again."""
    while batch:
        try:
            _, answer = api.call("PUT", "/v1/inventory", [r.body() for r in batch])
            return int(answer.get("updated", len(batch)))
        except ApiAnswer as err:
            refused = _rejected_rows(batch, err)
            if not refused:
                raise
            bad.extend((batch[i].line, why) for i, why in refused.items())
            batch = [r for i, r in enumerate(batch) if i not in refused]
    return 0


@inventory.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "kind",
    type=click.Choice(["auto", "csv", "jsonl"]),
    default="auto",
    show_default=True,
    help="csv (header location_id,sku,on_hand) or jsonl (one object a line); auto: by the "
    "file's extension or first character.",
)
@click.option(
    "--partial",
    is_flag=True,
    help="Load the good rows and report the bad ones (JSON batches of --batch-size) "
    "instead of streaming the whole file all or nothing.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=1000,
    show_default=True,
    help="Rows per PUT /v1/inventory with --partial.",
)
@json_option
@pass_context
def inventory_load(obj: Context, file: Path, kind: str, partial: bool, batch_size: int) -> None:
    """Set absolute on-hand stock from FILE (reservations are kept).

    The file is streamed to PUT /v1/inventory as it is (text/csv or application/x-ndjson,
    any size, with a progress bar) and applied all or nothing: with any bad line (an
    unknown location, a negative or fractional on_hand, an invalid sku) nothing is
    loaded and the lines are reported (exit 1). With --partial the good rows are loaded
    and the bad ones reported (exit 1 when any was not loaded)."""
    if not partial:
        _stream_feed(obj, file, kind)
        return
    text = file.read_text(encoding="utf-8-sig")
    rows: list[StockRow] = []
    bad: list[tuple[int, str]] = []
    for item in read_stock(text, _kind(file, text, kind)):
        if isinstance(item, StockRow):
            rows.append(item)
        else:
            bad.append(item)
    total = len(rows) + len(bad)
    loaded = 0
    started = time.monotonic()
    with click.progressbar(
        length=len(rows),
        label=f"loading {file.name}",
        file=sys.stderr,
        show_pos=True,
    ) as progress:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            loaded += _send(obj.api, batch, bad)
            progress.update(len(batch))
    bad.sort()
    summary = {
        "file": str(file),
        "rows": total,
        "loaded": loaded,
        "rejected": [{"line": line, "problem": why} for line, why in bad],
        "seconds": round(time.monotonic() - started, 3),
    }
    if obj.json:
        _echo_json(summary)
    else:
        for line, why in bad:
            click.echo(f"line {line}: {why}", err=True)
        click.echo(
            f"{loaded} stock levels loaded from {summary['rows']} rows, {len(bad)} rejected "
            f"in {summary['seconds']:.1f} s"
        )
    if bad:
        click.get_current_context().exit(EXIT_API_ERROR)


# --------------------------------------------------------------------------- orders


@cli.group()
def orders() -> None:
    """Look at orders and move held ones on (ops or admin key)."""


def _order_path(order_id: str, tail: str = "") -> str:
    return f"/v1/orders/{quote(order_id, safe='')}{tail}"


def temporal_link(ui: str, namespace: str, order_id: str) -> str:
    return (
        f"{ui.rstrip('/')}/namespaces/{quote(namespace, safe='')}"
        f"/workflows/{quote('order-' + order_id, safe='')}"
    )


@orders.command("show")
@click.argument("order_id")
@click.option("--events", "last_events", type=click.IntRange(0), default=10, show_default=True)
@click.option(
    "--temporal-ui",
    envvar="OMS_TEMPORAL_UI_URL",
    default=DEFAULT_TEMPORAL_UI_URL,
    show_default=True,
    help="The Temporal UI (env OMS_TEMPORAL_UI_URL).",
)
@click.option(
    "--namespace",
    envvar="OMS_TEMPORAL_NAMESPACE",
    default="default",
    show_default=True,
    help="The orders' Temporal namespace (env OMS_TEMPORAL_NAMESPACE).",
)
@json_option
@pass_context
def orders_show(
    obj: Context, order_id: str, last_events: int, temporal_ui: str, namespace: str
) -> None:
    """The order: status, hold reasons, lines, shipments, its last events and its
    workflow in the Temporal UI."""
    _, view = obj.api.call("GET", _order_path(order_id))
    link = temporal_link(temporal_ui, namespace, view["order_id"])
    if obj.json:
        _echo_json({**view, "temporal_ui_url": link})
        return
    out = [
        f"order     {view['order_id']}",
        f"status    {view['status']}",
        f"channel   {view['sales_channel']}   customer {view['customer_id']}",
        f"total     {view['total']} {view['currency']}",
        f"created   {_when(view['created_at'])}   updated {_when(view['updated_at'])}",
    ]
    if view.get("hold_reasons"):
        out.append("held      " + "\n          ".join(view["hold_reasons"]))
    out.append(f"temporal  {link}")
    out += [
        "",
        "Lines",
        table(
            ("LINE", "SKU", "QTY", "STATUS", "LOCATION", "SHIPPED", "DELIVERED", "CANCELLED"),
            [
                (
                    ln["line_id"],
                    ln["sku"],
                    ln["quantity"],
                    ln["status"],
                    ln.get("location_id"),
                    ln.get("shipped_quantity", 0),
                    ln.get("delivered_quantity", 0),
                    ln.get("cancelled_quantity", 0),
                )
                for ln in view["lines"]
            ],
        ),
    ]
    shipments = view.get("shipments") or []
    out += ["", "Shipments"]
    out.append(
        table(
            ("SHIPMENT", "LINE", "LOCATION", "QTY", "STATUS", "CARRIER", "TRACKING"),
            [
                (
                    s["shipment_key"],
                    s["line_id"],
                    s["location_id"],
                    s.get("quantity"),
                    s["status"],
                    s.get("carrier"),
                    s.get("tracking_number"),
                )
                for s in shipments
            ],
        )
        if shipments
        else "(none)"
    )
    events = view.get("events") or []
    shown = events[-last_events:] if last_events else []
    if shown:
        out += ["", f"Last events ({len(shown)} of {len(events)})"]
        out.append(
            table(
                ("SEQ", "AT", "TYPE", "DETAIL"),
                [(e["seq"], _when(e["at"]), e["type"], e.get("detail") or "") for e in shown],
            )
        )
    click.echo("\n".join(out))


@orders.command("held")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(HELD_STATUSES),
    help="Only these statuses (repeatable; default: all three).",
)
@click.option("--channel", help="Only this sales channel.")
@click.option(
    "--limit", type=click.IntRange(1), default=100, show_default=True, help="At most per status."
)
@json_option
@pass_context
def orders_held(obj: Context, statuses: tuple[str, ...], channel: str | None, limit: int) -> None:
    """Orders waiting for someone (ON_HOLD, NOT_ANNOUNCED, CHECK_ANNOUNCED) and why."""
    held: list[dict[str, Any]] = []
    for status in statuses or HELD_STATUSES:
        offset = 0
        while offset < limit:
            query = {"status": status, "limit": min(PAGE, limit - offset), "offset": offset}
            if channel:
                query["sales_channel"] = channel
            _, page = obj.api.call("GET", f"/v1/orders?{urlencode(query)}")
            held.extend(page["orders"])
            offset += len(page["orders"])
            if not page["orders"] or offset >= page["total"]:
                break
    for order in held:
        # the list has no reasons: the order view has them
        _, view = obj.api.call("GET", _order_path(order["order_id"]))
        order["status"] = view["status"]
        order["hold_reasons"] = view.get("hold_reasons", [])
    held.sort(key=lambda o: o["updated_at"])
    if obj.json:
        _echo_json({"orders": held})
        return
    if not held:
        click.echo("no held orders")
        return
    click.echo(
        table(
            ("ORDER", "STATUS", "CHANNEL", "SINCE", "REASONS"),
            [
                (
                    o["order_id"],
                    o["status"],
                    o["sales_channel"],
                    _when(o["updated_at"]),
                    o["hold_reasons"],
                )
                for o in held
            ],
        )
    )


def _outcome(obj: Context, status: int, answer: Any, what: str, wait: float) -> None:
    """Print a command's result; a 202 is followed at /v1/commands/{id} up to `wait` s."""
    deadline = time.monotonic() + wait
    while status == 202 and time.monotonic() < deadline:
        time.sleep(1.0)
        status, answer = obj.api.call("GET", f"/v1/commands/{quote(answer['command_id'])}")
    if status == 202:
        if obj.json:
            _echo_json(answer)
        raise CliFailure(
            f"{what}: sent, its outcome is not known yet: GET {answer['poll']} tells it",
            EXIT_PENDING,
        )
    if answer.get("status") == "failed":  # a looked-up command the workflow refused
        error = answer.get("error", {})
        raise ApiAnswer(409, error.get("code", "failed"), error.get("message", ""), None)
    result = answer.get("result", answer)
    if obj.json:
        _echo_json(result)
        return
    click.echo(f"{what}: order is {result.get('status')}")


WAIT_OPTION = click.option(
    "--wait",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds to follow a command the order has not answered yet.",
)


@orders.command("resume")
@click.argument("order_id")
@click.option("--comment", help="Why (kept in the order's events).")
@WAIT_OPTION
@json_option
@pass_context
def orders_resume(obj: Context, order_id: str, comment: str | None, wait: float) -> None:
    """Resume a held order: it is validated and routed again (after stock arrived, a
    location was fixed, ...)."""
    body = {} if comment is None else {"comment": comment}
    status, answer = obj.api.call("POST", _order_path(order_id, "/resume"), body)
    _outcome(obj, status, answer, f"resumed {order_id}", wait)


@orders.command("cancel")
@click.argument("order_id")
@click.option("--reason", required=True, help="Why (kept in the order's events).")
@click.option("--line", "line_ids", multiple=True, help="Only this line (repeatable).")
@WAIT_OPTION
@json_option
@pass_context
def orders_cancel(
    obj: Context, order_id: str, reason: str, line_ids: tuple[str, ...], wait: float
) -> None:
    """Cancel the order (or some of its lines); its reservations are released."""
    body: dict[str, Any] = {"reason": reason}
    if line_ids:
        body["line_ids"] = list(line_ids)
    status, answer = obj.api.call("POST", _order_path(order_id, "/cancel"), body)
    _outcome(obj, status, answer, f"cancelled {order_id}", wait)


# --------------------------------------------------------------------------- loadgen


def _mix(_ctx: click.Context, _param: click.Parameter, value: str) -> dict[str, float]:
    from oms.loadgen import parse_mix

    try:
        return parse_mix(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


@cli.command("loadgen")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True, max=1000),
    required=True,
    help="Orders placed per second.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True, max=86400),
    required=True,
    help="Seconds to place orders for.",
)
@click.option(
    "--mix",
    default="web=1",
    show_default=True,
    callback=_mix,
    help="Sales channels and their shares of the orders, e.g. web=0.8,b2b=0.2.",
)
@click.option(
    "--sku",
    "skus",
    multiple=True,
    default=("SKU-1", "SKU-2", "SKU-3"),
    show_default=True,
    help="SKUs ordered (one unit each, at random; repeatable).",
)
@click.option(
    "--location",
    "locations",
    multiple=True,
    help="Locations whose work orders are picked, shipped and delivered (repeatable; "
    "default: every location).",
)
@click.option(
    "--approver-key",
    envvar="OMS_LOADGEN_APPROVER_KEY",
    default="dev-alice",
    show_default=True,
    help="Approver key that approves the orders' pending approvals (env "
    "OMS_LOADGEN_APPROVER_KEY; empty: nobody approves).",
)
@click.option(
    "--stock",
    type=click.IntRange(0, MAX_ON_HAND),
    help="First set the stock of every --sku at every location to this (admin key).",
)
@click.option(
    "--drain",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="Seconds to go on playing the locations and approvers after the last order, "
    "until every order is delivered.",
)
@click.option("--prefix", help="Start of the orders' ids (default: LG-<random>).")
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05, max=10),
    default=0.25,
    show_default=True,
    help="Seconds between two looks at the work orders and approvals.",
)
@click.option("--seed", type=int, help="Seed of the random choices (channel, SKU, city).")
@json_option
@pass_context
def loadgen(
    obj: Context,
    rate: float,
    duration: float,
    mix: dict[str, float],
    skus: tuple[str, ...],
    locations: tuple[str, ...],
    approver_key: str,
    stock: int | None,
    drain: float,
    prefix: str | None,
    poll: float,
    seed: int | None,
) -> None:
    """Place orders at a rate and play the locations and approvers, for demos and for
    finding the knee of the curve.

    Orders (one unit of a --sku, shipped to a demo city, of a channel drawn from --mix) go
    to POST /v1/orders at --rate per second for --duration seconds; the work orders of
    these orders are picked, shipped and delivered as soon as they appear, and their
    pending approvals approved with --approver-key. A progress line shows the orders
    placed, in flight, delivered and the errors; a summary follows (orders/s, latency
    from POST to DELIVERED). Needs an ops or admin key (OMS_API_KEY; admin for --stock).
    Exit code 1 when an error was answered or an order was not delivered by the end of
    --drain."""
    import uuid

    import aiohttp

    from oms import loadgen as lg

    api = obj.api
    # the key must read (and so report on) every location's work orders: ops or admin
    _, found = api.call("GET", "/v1/locations")
    where = list(locations) or [loc["location_id"] for loc in found["locations"]]
    if not where:
        raise CliFailure("no locations to play: configure some (PUT /v1/locations)", EXIT_USAGE)
    for location in where:
        api.call("GET", f"/v1/locations/{quote(location, safe='')}/work-orders?limit=1")
    if approver_key:
        try:
            api_as(api, approver_key).call("GET", "/v1/approvals?status=pending")
        except ApiAnswer as err:
            raise CliFailure(
                f"the approver key is refused ({err.status} {err.code}): pass --approver-key "
                "(env OMS_LOADGEN_APPROVER_KEY), or --approver-key '' for no approvals",
                EXIT_USAGE,
            ) from err
    if stock is not None:
        rows = [{"location_id": loc, "sku": sku, "on_hand": stock} for loc in where for sku in skus]
        api.call("PUT", "/v1/inventory", rows)
        click.echo(f"stock of {', '.join(skus)} set to {stock} at {len(where)} locations", err=True)
    run_prefix = prefix or f"LG-{uuid.uuid4().hex[:6]}"
    tty = sys.stderr.isatty()

    async def drive() -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=api.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            gen = lg.LoadGen(
                http,
                api.url,
                str(api.key),
                approver_key=approver_key or None,
                prefix=run_prefix,
                skus=skus,
                locations=where,
                poll_seconds=poll,
                seed=seed,
            )

            async def progress() -> None:
                every = 1.0 if tty else 5.0
                while True:
                    await asyncio.sleep(every)
                    click.echo(("\r" if tty else "") + gen.stats.line(), nl=not tty, err=True)

            shown = asyncio.create_task(progress())
            try:
                await gen.run(lambda: gen.at_rate(mix, rate, duration), drain_seconds=drain)
            finally:
                shown.cancel()
            click.echo(("\r" if tty else "") + gen.stats.line(), err=True)
            return lg.summary(gen.stats, await gen.open_statuses())

    try:
        result = asyncio.run(drive())
    except lg.LoadGenError as err:
        raise CliFailure(str(err), EXIT_API_ERROR) from err
    result["prefix"] = run_prefix
    if obj.json:
        _echo_json(result)
    else:
        click.echo(_loadgen_summary(result, rate, duration))
    if result["errors"] or result["in_flight"] or result["refused"]:
        raise click.exceptions.Exit(EXIT_API_ERROR)


def api_as(api: Api, key: str) -> Api:
    return Api(api.url, key, api.timeout)


def _loadgen_summary(result: dict[str, Any], rate: float, duration: float) -> str:
    latency, post = result["latency_seconds"], result["post_seconds"]

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}s"

    lines = [
        f"orders {result['prefix']}-*: {rate:g}/s for {duration:g}s, {result['seconds']:.0f}s "
        "in all",
        f"  placed {result['placed']}, delivered {result['delivered']}, ended otherwise "
        f"{result['ended_otherwise']}, in flight {result['in_flight']}, refused "
        f"{result['refused']}",
        f"  delivered per second {result['orders_per_second'] or '-'}; POST to DELIVERED p50 "
        f"{secs(latency['p50'])}, p90 {secs(latency['p90'])}, p99 {secs(latency['p99'])}; "
        f"POST /v1/orders p50 {secs(post['p50'])}, p99 {secs(post['p99'])}",
        f"  approvals {result['approved']}, location reports {result['reports']}, "
        f"requests {result['requests']}, errors {result['errors']}",
    ]
    for status, count in result["in_flight_by_status"].items():
        lines.append(f"  still {status}: {count}")
    for kind, count in result["errors_by_kind"].items():
        lines.append(f"  error {kind}: {count}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
