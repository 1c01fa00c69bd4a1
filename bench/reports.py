"""Report timing on PostgreSQL: `python -m bench.reports` from the repository root.

Seeds `--orders` orders (default 100,000) in a throw-away database `oms_bench_<random>`
on the server of `--database-url`, with what the workflows would have written for them:
an audit trail of about eight events per order (created, validated, routed, in
fulfillment; most shipped, many delivered, some backordered on a short pick), approvals
for one in ten and open shipments for the backlog, created over the last 30 days (all
inside the report's default period). Then it times `GET /v1/reports/summary`'s query
(ReportRepository.summary over the default 30 days, all channels and one channel) and
prints the median and worst of `--runs` runs. Measured on the shared 2-core development
machine: about 0.55 s for all 100,000 orders (825,000 events), 0.35 s for one channel's
third; 1,000,000 orders (8,250,000 events) take about 9 s, nearly all of it the pass over
the audit trail (milestone times kept on the order rows would remove it).
The database is dropped at the end. Figures only, no assertions; the issue's target is
under a second for 100,000 orders.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.engine import make_url

from store import Store
from store.reports import ReportRepository

DEFAULT_URL = os.environ.get("OMS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

SEED = """
INSERT INTO orders (order_id, channel_order_id, sales_channel, customer_id, status, total,
                    currency, request_hash, workflow_id, created_at, updated_at)
SELECT 'B-' || i || '@' || ch, 'B-' || i, ch, 'C-' || (i % 5000),
       CASE WHEN i % 20 = 0 THEN 'CANCELLED' WHEN i % 10 < 5 THEN 'DELIVERED'
            WHEN i % 10 < 8 THEN 'SHIPPED' ELSE 'IN_FULFILLMENT' END,
       (i % 500) + 9.99, 'EUR', md5(i::text), 'order-B-' || i || '@' || ch,
       created, created + interval '1 hour'
FROM (SELECT i, (ARRAY['web','b2b','app'])[1 + i % 3] AS ch,
             now() - (i % 29) * interval '1 day' - (i % 1440) * interval '1 minute' AS created
      FROM generate_series(1, $1) AS i) s;

INSERT INTO order_events (order_id, seq, at, type, detail)
SELECT o.order_id, e.seq, o.created_at + e.seq * interval '7 minutes' * (1 + (h % 5)),
       e.type, e.detail
FROM (SELECT order_id, status, created_at, abs(hashtext(order_id)) AS h FROM orders) o
CROSS JOIN LATERAL (VALUES
    (1, 'order_created', ''), (2, 'status_validating', ''), (3, 'status_validated', ''),
    (4, 'status_routing', ''), (5, 'line_routed', 'line 1 at WH-BERLIN'),
    (6, 'status_in_fulfillment', ''),
    (7, CASE WHEN o.h % 25 = 0 THEN 'shipment_picked' ELSE 'shipment_released' END,
        CASE WHEN o.h % 25 = 0 THEN 'S1 at WH-BERLIN: line 1: 1; backordered line 1: 1'
             ELSE 'S1' END),
    (8, CASE WHEN o.status IN ('SHIPPED', 'DELIVERED') THEN 'status_shipped'
             ELSE 'status_cancelled' END, ''),
    (9, CASE WHEN o.status = 'DELIVERED' THEN 'status_delivered' ELSE 'noop' END, '')
) AS e(seq, type, detail)
WHERE e.type <> 'noop' AND (e.seq <> 8 OR o.status <> 'IN_FULFILLMENT');

INSERT INTO approvals (order_id, reason, rank, approvers, status, decided_by, decided_at)
SELECT order_id, 'credit-check', 1, '["alice"]', 'approved', 'alice',
       created_at + interval '3 hours'
FROM orders WHERE abs(hashtext(order_id)) % 10 = 0;

INSERT INTO shipments (shipment_key, line_id, release_key, order_id, location_id,
                       workflow_id, released_quantity, picked_quantity, quantity, status,
                       updated_at)
SELECT order_id || '-S1', '1', order_id || '-R1', order_id,
       (ARRAY['WH-BERLIN','WH-MUNICH','ST-HAMBURG'])[1 + abs(hashtext(order_id)) % 3],
       workflow_id, 1, 0, 0, 'OPEN', updated_at
FROM orders WHERE status = 'IN_FULFILLMENT';

ANALYZE;
"""


async def run(url: str, orders: int, runs: int) -> None:
    admin = make_url(url).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    name = f"oms_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    store_url = admin.set(database=name, drivername="postgresql+asyncpg")
    try:
        store = await Store.open(store_url.render_as_string(hide_password=False))
        try:
            started = time.perf_counter()
            seed = await asyncpg.connect(admin.set(database=name).render_as_string(False))
            try:
                statements = [s.strip() for s in SEED.split(";\n") if s.strip()]
                await seed.execute(statements[0].replace("$1", str(int(orders))))
                for statement in statements[1:]:
                    await seed.execute(statement)
                events = await seed.fetchval("SELECT count(*) FROM order_events")
            finally:
                await seed.close()
            print(
                f"seeded {orders:,} orders, {events:,} events in "
                f"{time.perf_counter() - started:.1f} s"
            )
            reports = ReportRepository(store.db)
            end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            end += timedelta(days=1)
            start = end - timedelta(days=30)
            for label, channel in (("all channels", None), ("channel web", "web")):
                timings = []
                summary = None
                for _ in range(runs):
                    began = time.perf_counter()
                    summary = await reports.summary(start, end, channel)
                    timings.append(time.perf_counter() - began)
                assert summary is not None
                print(
                    f"summary, last 30 days, {label}: {summary.total:,} orders in the period; "
                    f"median {statistics.median(timings) * 1000:.0f} ms, "
                    f"worst {max(timings) * 1000:.0f} ms over {runs} runs "
                    f"(order to ship p50 {summary.order_to_ship.p50} s, backorder rate "
                    f"{summary.rate(summary.backordered)})"
                )
        finally:
            await store.close()
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.orders, args.runs))


if __name__ == "__main__":
    main()
