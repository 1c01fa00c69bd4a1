"""Stock snapshots streamed as CSV or NDJSON (issue 13, point 4): PUT /v1/inventory with
`text/csv` or `application/x-ndjson` applies the whole feed or, with any bad line,
nothing, and says which lines are wrong; chunked uploads stream; a feed over the limit is
a 413. Both databases (COPY on PostgreSQL, batches on SQLite)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from api.context import SETTINGS
from tests.integration.conftest import Stack, unique_sku


async def put_feed(
    stack: Stack, body: bytes | AsyncIterator[bytes], content_type: str
) -> tuple[int, Any]:
    resp = await stack.http.request(
        "PUT",
        "/v1/inventory",
        data=body,
        headers={
            "Authorization": f"Bearer {stack.keys['admin']}",
            "Content-Type": content_type,
        },
    )
    return resp.status, await resp.json()


async def on_hand(stack: Stack, sku: str) -> dict[str, int]:
    return {r.location_id: r.on_hand for r in await stack.store.inventory.stock([sku])}


async def test_a_csv_feed_sets_stock(stack: Stack) -> None:
    sku = unique_sku()
    feed = f"location_id,sku,on_hand\nWH-BERLIN,{sku},7\r\nWH-MUNICH,{sku},0\nST-HAMBURG,{sku},3\n"
    status, body = await put_feed(stack, feed.encode(), "text/csv")
    assert status == 200, body
    assert body["updated"] == 3
    assert await on_hand(stack, sku) == {"WH-BERLIN": 7, "WH-MUNICH": 0, "ST-HAMBURG": 3}
    # the last line of a repeated (location, sku) wins, as with JSON
    feed = f"location_id,sku,on_hand\nWH-BERLIN,{sku},1\nWH-BERLIN,{sku},4\n"
    status, body = await put_feed(stack, feed.encode(), "text/csv")
    assert status == 200, body
    assert (await on_hand(stack, sku))["WH-BERLIN"] == 4


async def test_an_ndjson_feed_sets_stock_and_keeps_reservations(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    rows = [
        {"location_id": "WH-BERLIN", "sku": sku, "on_hand": 9},
        {"location_id": "WH-LONDON", "sku": sku, "on_hand": 2},
    ]
    feed = "\n".join(json.dumps(r) for r in rows) + "\n"
    status, body = await put_feed(stack, feed.encode(), "application/x-ndjson")
    assert status == 200 and body["updated"] == 2, body
    assert await on_hand(stack, sku) == {"WH-BERLIN": 9, "WH-LONDON": 2}


async def test_bad_lines_are_named_and_nothing_is_applied(stack: Stack) -> None:
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    feed = (
        "location_id,sku,on_hand\n"
        f"WH-BERLIN,{sku},8\n"  # line 2 is fine, yet not applied
        f"WH-NOWHERE,{sku},1\n"  # 3: unknown location
        f"WH-BERLIN,{sku},-2\n"  # 4: negative
        f"WH-BERLIN,bad sku,1\n"  # 5: not an identifier
        f"WH-MUNICH,{sku},1.5\n"  # 6: not whole
    )
    status, body = await put_feed(stack, feed.encode(), "text/csv")
    assert status == 422, body
    error = body["error"]
    assert error["code"] == "invalid_feed"
    found = {(d["line"], d["field"]) for d in error["details"]}
    assert found == {(3, "location_id"), (4, "on_hand"), (5, "sku"), (6, "on_hand")}
    assert "unknown location WH-NOWHERE" in {d["message"] for d in error["details"]}
    assert await on_hand(stack, sku) == {"WH-BERLIN": 5}

    rows = [
        json.dumps({"location_id": "WH-BERLIN", "sku": sku, "on_hand": 1}),
        "{not json",
        json.dumps({"location_id": "WH-BERLIN", "sku": sku, "on_hand": 1, "extra": 1}),
    ]
    status, body = await put_feed(stack, "\n".join(rows).encode(), "application/x-ndjson")
    assert status == 422, body
    assert {d["line"] for d in body["error"]["details"]} == {2, 3}
    assert await on_hand(stack, sku) == {"WH-BERLIN": 5}


async def test_a_malformed_csv_line_or_header_is_a_422(stack: Stack) -> None:
    sku = unique_sku()
    status, body = await put_feed(stack, b"sku,location_id,on_hand\n", "text/csv")
    assert status == 422 and body["error"]["details"][0]["line"] == 1, body
    feed = f"location_id,sku,on_hand\nWH-BERLIN,{sku},1\nWH-BERLIN,{sku}\n"
    status, body = await put_feed(stack, feed.encode(), "text/csv")
    assert status == 422, body
    assert body["error"]["details"][0]["line"] == 3
    assert await on_hand(stack, sku) == {}


async def test_a_chunked_upload_streams_many_rows(stack: Stack) -> None:
    sku = unique_sku()
    rows = 20_000

    async def chunks() -> AsyncIterator[bytes]:
        yield b"location_id,sku,on_hand\n"
        for start in range(0, rows, 1000):
            yield "".join(
                f"WH-BERLIN,{sku}-{i},{i % 50}\n" for i in range(start, start + 1000)
            ).encode()

    status, body = await put_feed(stack, chunks(), "text/csv")
    assert status == 200 and body["updated"] == rows, body
    stock = {r.sku: r.on_hand for r in await stack.store.inventory.stock([f"{sku}-19999"])}
    assert stock == {f"{sku}-19999": 19999 % 50}


async def test_other_content_types_and_oversized_feeds_are_refused(stack: Stack) -> None:
    status, body = await put_feed(stack, b"<stock/>", "application/xml")
    assert status == 415 and body["error"]["code"] == "unsupported_media_type", body
    # the API's settings are frozen: this test alone lowers the limit for a moment
    settings = stack.http.app[SETTINGS]
    limit = settings.inventory_max_bytes
    object.__setattr__(settings, "inventory_max_bytes", 100)
    try:
        sku = unique_sku()
        feed = "location_id,sku,on_hand\n" + f"WH-BERLIN,{sku},1\n" * 20
        status, body = await put_feed(stack, feed.encode(), "text/csv")
    finally:
        object.__setattr__(settings, "inventory_max_bytes", limit)
    assert status == 413 and body["error"]["code"] == "feed_too_large", body
    assert await on_hand(stack, sku) == {}


async def test_a_repeated_key_keeps_its_last_line_even_when_that_changes_nothing(
    stack: Stack,
) -> None:
    """PostgreSQL writes only the levels a feed changes: a (location, sku) whose earlier
    line changes it and whose last line restores it must end at the last line."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    feed = (
        "location_id,sku,on_hand\n"
        f"WH-BERLIN,{sku},9\n"
        f"WH-MUNICH,{sku},1\n"
        f"WH-BERLIN,{sku},5\n"
        f"WH-MUNICH,{sku},2\n"
    )
    status, body = await put_feed(stack, feed.encode(), "text/csv")
    assert status == 200 and body["updated"] == 2, body
    assert await on_hand(stack, sku) == {"WH-BERLIN": 5, "WH-MUNICH": 2}
    rows = [
        {"location_id": "WH-BERLIN", "sku": sku, "on_hand": 3},
        {"location_id": "WH-BERLIN", "sku": sku, "on_hand": 5},
    ]
    feed = "\n".join(json.dumps(r) for r in rows)
    status, body = await put_feed(stack, feed.encode(), "application/x-ndjson")
    assert status == 200 and body["updated"] == 1, body
    assert (await on_hand(stack, sku))["WH-BERLIN"] == 5


async def test_an_unchanged_feed_keeps_levels_and_reservations(stack: Stack) -> None:
    sku = unique_sku()
    feed = f"location_id,sku,on_hand\nWH-BERLIN,{sku},6\nWH-MUNICH,{sku},4\n".encode()
    status, body = await put_feed(stack, feed, "text/csv")
    assert status == 200, body
    assert await stack.store.inventory.reserve(
        reservation_id=f"R-{sku}",
        order_id=f"O-{sku}",
        line_id="1",
        location_id="WH-BERLIN",
        sku=sku,
        quantity=2,
    )
    status, body = await put_feed(stack, feed, "text/csv")
    assert status == 200 and body["updated"] == 2, body
    stock = {
        r.location_id: (r.on_hand, r.reserved) for r in await stack.store.inventory.stock([sku])
    }
    assert stock == {"WH-BERLIN": (6, 2), "WH-MUNICH": (4, 0)}


async def test_a_bad_line_deep_in_a_large_feed_is_named_by_its_number(stack: Stack) -> None:
    """Line numbers are worked out only for a refused feed (PostgreSQL: from the order
    COPY wrote the rows in, over many pages)."""
    sku = unique_sku()
    rows = 30_000
    lines = [f"WH-BERLIN,{sku}-{i},{i % 7}" for i in range(rows)]
    lines[25_000] = f"WH-BERLIN,{sku}-x,-1"  # file line 25,002 (after the header)
    lines[29_999] = f"WH-NOWHERE,{sku}-y,1"  # file line 30,001
    feed = ("location_id,sku,on_hand\n" + "\n".join(lines) + "\n").encode()
    status, body = await put_feed(stack, feed, "text/csv")
    assert status == 422, body
    found = [(d["line"], d["field"]) for d in body["error"]["details"]]
    assert found == [(25_002, "on_hand"), (30_001, "location_id")]
    assert await stack.store.inventory.stock([f"{sku}-0"]) == []


async def test_an_end_of_copy_marker_line_refuses_the_feed(stack: Stack) -> None:
    """A line holding only `\\.` ends COPY's input on PostgreSQL before 18: the lines after
    it would be dropped without a word. The feed is refused with the line's number, also
    when the marker is split across the upload's chunks or is the last line."""
    sku = unique_sku()
    await stack.set_stock([("WH-BERLIN", sku, 5)])
    head = f"location_id,sku,on_hand\nWH-BERLIN,{sku},8\n"
    feeds = [
        [f"{head}\\.\nWH-MUNICH,{sku},3\n".encode()],
        [f"{head}\\".encode(), f".\r\nWH-MUNICH,{sku},3\n".encode()],
        [f"{head}\\.".encode()],
    ]
    for pieces in feeds:

        async def chunks(pieces: list[bytes] = pieces) -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        status, body = await put_feed(stack, chunks(), "text/csv")
        assert status == 422, (pieces, body)
        assert body["error"]["code"] == "invalid_feed"
        assert [d["line"] for d in body["error"]["details"]] == [3], body
        assert await on_hand(stack, sku) == {"WH-BERLIN": 5}

    line = json.dumps({"location_id": "WH-MUNICH", "sku": sku, "on_hand": 3})
    for feed in [f"\\.\n{line}\n", f"{line}\n\\.\n{line}\n"]:
        status, body = await put_feed(stack, feed.encode(), "application/x-ndjson")
        assert status == 422, (feed, body)
        assert body["error"]["code"] == "invalid_feed"
        assert await on_hand(stack, sku) == {"WH-BERLIN": 5}
