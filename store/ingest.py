"""Stock snapshots streamed as CSV or NDJSON (PUT /v1/inventory, `oms inventory load`).

PostgreSQL: the request body goes straight into `COPY` (no Python object per row) into a
temporary table; SQL checks every row (unknown location, an id that is not an
identifier, on_hand that is not a whole number from 0 to 1,000,000,000) and, only when
nothing is wrong, one MERGE (INSERT ... ON CONFLICT before PostgreSQL 15) applies the
snapshot in the same transaction, writing only the levels it changes. A feed that
repeats a (location, sku) keeps its last line, as the JSON body does. Line numbers are
worked out only for a refused feed: a CSV feed's rows lie in the temporary table in the
order COPY read them. SQLite: the same interface and answers, parsed line by line in
Python and written in batches (set_stock) in one transaction.

Either way a feed is applied whole or not at all: any bad line refuses it (`FeedRefused`,
the first MAX_PROBLEMS problems with their line numbers and how many there are).
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import asyncpg
from sqlalchemy import select, text

from store.database import Database
from store.inventory import InventoryRepository
from store.tables import Location

FeedKind = Literal["csv", "ndjson"]
COLUMNS = ("location_id", "sku", "on_hand")
MAX_PROBLEMS = 100
# a feed's statements may run long (the API's store calls are bounded to seconds)
FEED_SECONDS = 6 * 3600.0
MAX_ON_HAND = 1_000_000_000
IDENTIFIER = r"^[A-Za-z0-9._:-]{1,64}$"
_IDENTIFIER = re.compile(IDENTIFIER)


def _not_identifier(column: str) -> str:
    """SQL: the column is no identifier (a bounded quantifier regex costs PostgreSQL
    ten times a length check and a character class; an identifier is ASCII, so its
    bytes are its characters, and counting bytes is the cheaper count)."""
    return (
        f"({column} IS NULL OR NOT (octet_length({column}) BETWEEN 1 AND 64) "
        f"OR {column} ~ '[^A-Za-z0-9._:-]')"
    )


# SQL: on_hand (text) is not a whole number from 0 to MAX_ON_HAND
_BAD_ON_HAND = (
    "(CASE WHEN on_hand IS NULL OR NOT (octet_length(on_hand) BETWEEN 1 AND 10) "
    f"OR on_hand ~ '[^0-9]' THEN true ELSE on_hand::bigint > {MAX_ON_HAND} END)"
)
_WHOLE = re.compile(r"^[0-9]{1,10}$")
ID_MESSAGE = "must be 1 to 64 letters, digits or . _ : -"
ON_HAND_MESSAGE = f"on_hand must be a whole number from 0 to {MAX_ON_HAND}"


@dataclass(frozen=True)
class Problem:
    line: int
    field: str
    message: str

    def as_json(self) -> dict[str, object]:
        return {"line": self.line, "field": self.field, "message": self.message}


class FeedRefused(Exception):
    """Nothing was applied: the feed has these problems (the first MAX_PROBLEMS)."""

    def __init__(self, problems: list[Problem], total: int) -> None:
        super().__init__(f"{total} problems, first on line {problems[0].line}")
        self.problems = problems
        self.total = total


class FeedTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the feed is larger than {limit} bytes")
        self.limit = limit


async def load_stock(
    db: Database, inventory: InventoryRepository, chunks: AsyncIterator[bytes], kind: FeedKind
) -> int:
    """Apply a stock snapshot streamed in `chunks`; the rows applied."""
    if db.is_sqlite:
        return await _load_parsed(db, inventory, chunks, kind)
    return await _load_copy(db, chunks, kind)


# --------------------------------------------------------------------------- PostgreSQL

_COPY_LINE = re.compile(r"line (\d+)")
# memory PostgreSQL may give each hash of a feed's statements (the distinct keys, the
# join with the inventory); beyond it they spill to disk
FEED_WORK_MEM = "256MB"

# the feed's rows with their line numbers: an NDJSON feed brings its own, a CSV feed's
# are the order COPY wrote its rows in (counted from the first line after the header)
_NUMBERED = """numbered AS (
    SELECT coalesce(line, row_number() OVER (ORDER BY ctid)) AS line, location_id, sku, on_hand
      FROM stock_feed
)"""

# one problem per (line, field); each branch is one scan of the feed (the unknown
# locations a hash anti-join with the locations)
_PROBLEMS = f"""
WITH {_NUMBERED}
SELECT line, field, message, count(*) OVER () AS total FROM (
    SELECT line, 'location_id' AS field,
           CASE WHEN location_id IS NULL THEN 'location_id is missing'
                ELSE 'location_id {ID_MESSAGE}' END AS message
      FROM numbered WHERE {_not_identifier("location_id")}
    UNION ALL
    SELECT line, 'location_id', 'unknown location ' || location_id
      FROM numbered f
     WHERE NOT {_not_identifier("location_id")}
       AND NOT EXISTS (SELECT 1 FROM locations l WHERE l.location_id = f.location_id)
    UNION ALL
    SELECT line, 'sku',
           CASE WHEN sku IS NULL THEN 'sku is missing' ELSE 'sku {ID_MESSAGE}' END
      FROM numbered WHERE {_not_identifier("sku")}
    UNION ALL
    SELECT line, 'on_hand', '{ON_HAND_MESSAGE}' FROM numbered WHERE {_BAD_ON_HAND}
) problems
ORDER BY line, field
LIMIT {MAX_PROBLEMS}
"""

# the happy path's checks: one scan for the values, then one hash of the feed's keys for
# how many (location, sku) it names (fewer than its rows when it repeats some) and
# whether a location is not configured
_BAD_VALUES = f"""
SELECT EXISTS (
    SELECT 1 FROM stock_feed
     WHERE {_not_identifier("location_id")} OR {_not_identifier("sku")} OR {_BAD_ON_HAND}
)
"""
_KEYS = """
SELECT coalesce(sum(k.keys), 0) AS keys, coalesce(bool_or(l.location_id IS NULL), false) AS unknown
  FROM (SELECT location_id, count(*) AS keys
          FROM (SELECT DISTINCT location_id, sku FROM stock_feed) distinct_keys
         GROUP BY location_id) k
  LEFT JOIN locations l ON l.location_id = k.location_id
"""

# the last line of a repeated (location, sku) wins (rows lie in line order)
_LAST_OF_EACH = """(
    SELECT DISTINCT ON (location_id, sku) location_id, sku, on_hand
      FROM stock_feed ORDER BY location_id, sku, ctid DESC
) last_lines"""

# one join of the feed with the inventory: a level the snapshot does not change is not
# written again (most of a daily feed), reservations are kept (PostgreSQL 15 and later)
_MERGE = """
MERGE INTO inventory i
USING (SELECT location_id, sku, on_hand::integer AS on_hand FROM {source}) f
   ON i.location_id = f.location_id AND i.sku = f.sku
 WHEN MATCHED AND i.on_hand <> f.on_hand THEN
      UPDATE SET on_hand = f.on_hand, updated_at = now()
 WHEN NOT MATCHED THEN
      INSERT (location_id, sku, on_hand, reserved, updated_at)
      VALUES (f.location_id, f.sku, f.on_hand, 0, now())
"""
# before PostgreSQL 15, and when a row the MERGE would insert came meanwhile: one look-up
# per row in the inventory's key
_UPSERT = """
INSERT INTO inventory (location_id, sku, on_hand, reserved, updated_at)
SELECT location_id, sku, on_hand::integer, 0, now() FROM {source}
ON CONFLICT (location_id, sku)
DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
WHERE inventory.on_hand IS DISTINCT FROM EXCLUDED.on_hand
"""

# an NDJSON line as JSON, NULL when it is none (then named as "not a JSON object")
_TRY_JSON = """
CREATE OR REPLACE FUNCTION pg_temp.stock_json(doc text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RETURN doc::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$
"""


async def _load_copy(db: Database, chunks: AsyncIterator[bytes], kind: FeedKind) -> int:
    async with db.transaction() as session:
        # no identity column for the line numbers: a sequence call per row cost the COPY
        # as much again
        await session.execute(
            text(
                "CREATE TEMP TABLE stock_feed (location_id text, sku text, on_hand text, "
                "line bigint) ON COMMIT DROP"
            )
        )
        raw = await (await session.connection()).get_raw_connection()
        conn = raw.driver_connection
        assert conn is not None
        await conn.execute(f"SET LOCAL work_mem = '{FEED_WORK_MEM}'")
        if kind == "csv":
            header = _HeaderCheck(chunks)
            try:
                status = await conn.copy_to_table(
                    "stock_feed",
                    source=_no_end_marker(header.body(), first_line=2),
                    columns=list(COLUMNS),
                    format="csv",
                    timeout=FEED_SECONDS,
                )
            except asyncpg.PostgresError as err:
                # the header was line 1: COPY counts from the line after it
                raise _copy_refused(err, offset=1) from err
        else:
            status = await _copy_ndjson(conn, chunks)
        rows = int(status.rsplit(" ", 1)[-1])
        bad = await conn.fetchval(_BAD_VALUES, timeout=FEED_SECONDS)
        keys, unknown = await conn.fetchrow(_KEYS, timeout=FEED_SECONDS)
        if bad or unknown:
            found = await conn.fetch(_PROBLEMS, timeout=FEED_SECONDS)
            line_offset = 1 if kind == "csv" else 0
            problems = [
                Problem(int(r["line"]) + line_offset, r["field"], r["message"]) for r in found
            ]
            raise FeedRefused(problems, int(found[0]["total"]))
        source = "stock_feed" if keys == rows else _LAST_OF_EACH
        await _apply(conn, source)
        return int(keys)


async def _apply(conn: asyncpg.Connection, source: str) -> None:
    if conn.get_server_version() < (15, 0):
        await conn.execute(_UPSERT.format(source=source), timeout=FEED_SECONDS)
        return
    await conn.execute("SAVEPOINT stock_apply", timeout=FEED_SECONDS)
    try:
        await conn.execute(_MERGE.format(source=source), timeout=FEED_SECONDS)
    except asyncpg.UniqueViolationError:
        # another writer added one of the feed's new (location, sku) after the MERGE's
        # join looked: the upsert takes it as it comes
        await conn.execute("ROLLBACK TO SAVEPOINT stock_apply", timeout=FEED_SECONDS)
        await conn.execute(_UPSERT.format(source=source), timeout=FEED_SECONDS)


async def _copy_ndjson(conn: asyncpg.Connection, chunks: AsyncIterator[bytes]) -> str:
    """Each line verbatim into one text column (CSV with a quote and a delimiter JSON
    never holds unescaped), then unpacked in SQL."""
    await conn.execute(
        "CREATE TEMP TABLE stock_lines (line bigint GENERATED ALWAYS AS IDENTITY, doc text) "
        "ON COMMIT DROP"
    )
    try:
        await conn.copy_to_table(
            "stock_lines",
            source=_no_end_marker(chunks, first_line=1),
            columns=["doc"],
            format="csv",
            quote="\x01",
            delimiter="\x02",
            timeout=FEED_SECONDS,
        )
    except asyncpg.PostgresError as err:
        raise _copy_refused(err, offset=0) from err
    # every line read as JSON in one statement; only when one is not JSON, line by line
    # (the function's exception block costs a subtransaction per line: four times slower)
    docs = """
        CREATE TEMP TABLE stock_docs ON COMMIT DROP AS
        SELECT line, {parse} AS doc FROM stock_lines
         WHERE doc IS NOT NULL AND btrim(doc, E' \t\r') <> ''
    """
    await conn.execute("SAVEPOINT stock_docs", timeout=FEED_SECONDS)
    try:
        await conn.execute(docs.format(parse="doc::jsonb"), timeout=FEED_SECONDS)
    except asyncpg.DataError:
        await conn.execute("ROLLBACK TO SAVEPOINT stock_docs", timeout=FEED_SECONDS)
        await conn.execute(_TRY_JSON)
        await conn.execute(docs.format(parse="pg_temp.stock_json(doc)"), timeout=FEED_SECONDS)
    bad = await conn.fetch(
        f"""
        SELECT line, CASE
            WHEN doc IS NULL OR jsonb_typeof(doc) <> 'object' THEN 'not a JSON object'
            ELSE 'unknown fields: ' || (
                SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(doc) k
                 WHERE k NOT IN ('location_id', 'sku', 'on_hand'))
            END AS message, count(*) OVER () AS total
          FROM stock_docs
         WHERE doc IS NULL OR jsonb_typeof(doc) <> 'object'
            OR (doc - 'location_id' - 'sku' - 'on_hand') <> '{{}}'::jsonb
         ORDER BY line LIMIT {MAX_PROBLEMS}
        """,
        timeout=FEED_SECONDS,
    )
    if bad:
        problems = [Problem(int(r["line"]), "line", r["message"]) for r in bad]
        raise FeedRefused(problems, int(bad[0]["total"]))
    # a JSON string id stays as it is; a number or other value is not an identifier.
    # Written in line order: a repeated (location, sku) keeps its last line by position
    return await conn.execute(
        """
        INSERT INTO stock_feed (line, location_id, sku, on_hand)
        SELECT line, CASE WHEN jsonb_typeof(doc->'location_id') = 'string'
                    THEN doc->>'location_id' ELSE coalesce(doc->>'location_id', '') || '?' END,
               CASE WHEN jsonb_typeof(doc->'sku') = 'string'
                    THEN doc->>'sku' ELSE coalesce(doc->>'sku', '') || '?' END,
               CASE WHEN jsonb_typeof(doc->'on_hand') = 'number' THEN doc->>'on_hand' END
          FROM stock_docs ORDER BY line
        """,
        timeout=FEED_SECONDS,
    )


# a line holding only `\\.`: COPY's end of data (PostgreSQL before 18 stops reading there
# and would drop the rest of the feed without a word)
_END_MARKER = re.compile(rb"\n\\\.(?=[\r\n])")


async def _no_end_marker(chunks: AsyncIterator[bytes], *, first_line: int) -> AsyncIterator[bytes]:
    """The chunks as they are; a line that is only `\\.` (also split across chunks, or
    last) refuses the feed with its line number (`first_line`: the first chunk's)."""
    # newlines passed, counting one before the first line; the last bytes seen
    breaks, tail = 1, b"\n"
    async for chunk in chunks:
        if not chunk:
            continue
        seen = tail + chunk
        found = _END_MARKER.search(seen)
        if found:
            line = breaks - tail.count(b"\n") + seen.count(b"\n", 0, found.start() + 1)
            raise _end_marker_at(line + first_line - 1)
        breaks += chunk.count(b"\n")
        tail = seen[-3:]
        yield chunk
    if tail.endswith(b"\n\\."):
        raise _end_marker_at(breaks + first_line - 1)


def _end_marker_at(line: int) -> FeedRefused:
    return FeedRefused([Problem(line, "line", "a line that is only \\. is no stock level")], 1)


def _copy_refused(err: asyncpg.PostgresError, *, offset: int) -> FeedRefused:
    """A line COPY could not read (too many or too few columns, a stray quote)."""
    context = str(getattr(err, "context", "") or "")
    found = _COPY_LINE.search(context)
    line = int(found.group(1)) + offset if found else 0
    message = str(getattr(err, "message", "") or err).split("\n")[0]
    return FeedRefused([Problem(line, "line", message)], 1)


class _HeaderCheck:
    """The CSV body after its header line, which must name exactly the columns."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks

    async def body(self) -> AsyncIterator[bytes]:
        head = b""
        async for chunk in self.chunks:
            head += chunk
            if b"\n" in head or len(head) > 4096:
                break
        first, _, rest = head.partition(b"\n")
        check_header(first.decode("utf-8-sig", errors="replace"))
        # COPY wants one kind of line end: CRLF becomes LF (a CR at a chunk's end waits
        # for the next chunk)
        carry = b""
        if rest:
            carry, rest = _lf(rest)
            if rest:
                yield rest
        async for chunk in self.chunks:
            carry, chunk = _lf(carry + chunk)
            if chunk:
                yield chunk
        if carry:
            yield carry


def _lf(chunk: bytes) -> tuple[bytes, bytes]:
    """(a trailing CR kept back, the chunk with CRLF as LF)."""
    carry = b""
    if chunk.endswith(b"\r"):
        carry, chunk = b"\r", chunk[:-1]
    return carry, chunk.replace(b"\r\n", b"\n")


def check_header(first: str) -> None:
    names = [name.strip().lower() for name in next(csv.reader([first.strip("\r\n")]), [])]
    if names != list(COLUMNS):
        raise FeedRefused(
            [Problem(1, "header", f"the header must be {','.join(COLUMNS)}, not {first!r}")],
            1,
        )


# --------------------------------------------------------------------------- SQLite


async def _load_parsed(
    db: Database, inventory: InventoryRepository, chunks: AsyncIterator[bytes], kind: FeedKind
) -> int:
    async with db.sessions() as session:
        known = set((await session.execute(select(Location.location_id))).scalars())
    rows: list[tuple[str, str, int]] = []
    problems: list[Problem] = []
    total = 0
    async for number, cells in _records(chunks, kind):
        found = cells if isinstance(cells, list) else _check(number, cells, known)
        if found:
            total += len(found)
            problems.extend(found[: max(MAX_PROBLEMS - len(problems), 0)])
        elif not total and isinstance(cells, dict):
            rows.append((cells["location_id"], cells["sku"], int(cells["on_hand"])))
    if total:
        raise FeedRefused(problems, total)
    return await inventory.set_stock(rows)


async def _records(
    chunks: AsyncIterator[bytes], kind: FeedKind
) -> AsyncIterator[tuple[int, dict[str, str] | list[Problem]]]:
    """(line number, cells or why the line cannot be read) per line; a bad header
    raises FeedRefused."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    pending = ""
    number = 0
    header_seen = kind != "csv"
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        for line in lines:
            number += 1
            if kind == "ndjson" and not line.strip():
                continue  # blank lines between JSON lines are allowed
            if not header_seen:
                check_header(line)
                header_seen = True
                continue
            yield number, _parse_line(number, line, kind)
    pending += decoder.decode(b"", final=True)
    if pending.strip():
        number += 1
        if not header_seen:
            check_header(pending)
        else:
            yield number, _parse_line(number, pending, kind)


def _parse_line(number: int, line: str, kind: FeedKind) -> dict[str, str] | list[Problem]:
    line = line.rstrip("\r")
    if kind == "csv":
        cells = next(csv.reader([line]), [])
        if len(cells) != len(COLUMNS):
            why = f"{len(cells)} columns, expected {len(COLUMNS)}"
            return [Problem(number, "line", why)]
        return dict(zip(COLUMNS, cells, strict=True))
    try:
        doc = json.loads(line)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return [Problem(number, "line", "not a JSON object")]
    extra = sorted(set(doc) - set(COLUMNS))
    if extra:
        return [Problem(number, "line", f"unknown fields: {', '.join(extra)}")]
    on_hand = doc.get("on_hand")
    return {
        "location_id": doc["location_id"] if isinstance(doc.get("location_id"), str) else "",
        "sku": doc["sku"] if isinstance(doc.get("sku"), str) else "",
        "on_hand": str(on_hand)
        if isinstance(on_hand, int) and not isinstance(on_hand, bool)
        else "x",
    }


def _check(number: int, cells: dict[str, str], known: set[str]) -> list[Problem]:
    found = []
    location = cells["location_id"]
    if not _IDENTIFIER.match(location):
        found.append(Problem(number, "location_id", f"location_id {ID_MESSAGE}"))
    elif location not in known:
        found.append(Problem(number, "location_id", f"unknown location {location}"))
    if not _IDENTIFIER.match(cells["sku"]):
        found.append(Problem(number, "sku", f"sku {ID_MESSAGE}"))
    on_hand = cells["on_hand"]
    if not _WHOLE.match(on_hand) or int(on_hand) > MAX_ON_HAND:
        found.append(Problem(number, "on_hand", ON_HAND_MESSAGE))
    return found


def limited(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The chunks, raising FeedTooLarge once more than `limit` bytes came."""

    async def run() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in chunks:
            seen += len(chunk)
            if seen > limit:
                raise FeedTooLarge(limit)
            yield chunk

    return run()
