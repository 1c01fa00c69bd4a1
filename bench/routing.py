"""Sourcing engine timing: `python -m bench.routing` from the repository root.

Times `activities.sourcing.source_order` (pure, in-process: no Temporal, no database)
for orders of 1, 10 and 100 lines over 10, 100 and 1,000 locations under each split
policy, and prints the median and p95 in milliseconds. Sites and stock are random
but seeded, so runs are comparable: locations scattered over Germany, each stocking
about a third of a 500-SKU catalog. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter

from activities.sourcing import Demand, Site, SplitPolicy, Strategy, source_order

CATALOG = [f"SKU-{n:04d}" for n in range(500)]
SHIP_TO = (52.52, 13.405)  # Berlin
LINE_COUNTS = (1, 10, 100)
SITE_COUNTS = (10, 100, 1_000)
POLICIES: tuple[SplitPolicy, ...] = ("ship_complete", "split_lines", "split_quantities")


def make_sites(rng: random.Random, count: int) -> list[Site]:
    both = frozenset({"ship", "pickup"})
    sites = []
    for i in range(count):
        warehouse = i % 10 == 0
        sites.append(
            Site(
                location_id=f"LOC-{i:04d}",
                type="warehouse" if warehouse else "store",
                lat=rng.uniform(47.3, 55.0),
                lon=rng.uniform(6.0, 15.0),
                priority=rng.randint(0, 5),
                daily_capacity=rng.randint(200, 2_000) if warehouse else rng.randint(20, 200),
                backlog=rng.randint(0, 150),
                cost_per_shipment=round(rng.uniform(3.0, 12.0), 2),
                enabled=rng.random() > 0.03,
                channel_excluded=rng.random() < 0.03,
                delivery_types=both if not warehouse else frozenset({"ship"}),
            )
        )
    return sites


def make_stock(rng: random.Random, sites: list[Site]) -> dict[tuple[str, str], int]:
    stock: dict[tuple[str, str], int] = {}
    for s in sites:
        for sku in CATALOG:
            if rng.random() < 1 / 3:
                stock[(s.location_id, sku)] = rng.randint(1, 60)
    return stock


def make_order(rng: random.Random, lines: int) -> list[Demand]:
    skus = rng.sample(CATALOG, lines)
    return [Demand(f"L{n}", sku, rng.randint(1, 4)) for n, sku in enumerate(skus)]


def runs_for(lines: int, sites: int) -> int:
    return max(5, min(50, 200_000 // (lines * sites)))


def p95(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    strategy_weights = {
        "w_distance": 1.0,
        "w_stock": 0.3,
        "w_backlog": 0.3,
        "w_cost": 0.2,
        "w_priority": 0.2,
    }
    started = time.perf_counter()
    header = (
        f"{'policy':<17} {'lines':>5} {'sites':>6} {'runs':>4} "
        f"{'median ms':>10} {'p95 ms':>8}  outcomes (locations used, median)"
    )
    print(header)
    print("-" * len(header))
    for policy in POLICIES:
        strategy = Strategy(split_policy=policy, **strategy_weights)
        for site_count in SITE_COUNTS:
            rng = random.Random(args.seed * 1_000 + site_count)
            sites = make_sites(rng, site_count)
            stock = make_stock(rng, sites)
            for line_count in LINE_COUNTS:
                runs = runs_for(line_count, site_count)
                order_rng = random.Random(args.seed + line_count)
                samples: list[float] = []
                outcomes: Counter[str] = Counter()
                used: list[int] = []
                for _ in range(runs):
                    order = make_order(order_rng, line_count)
                    t0 = time.perf_counter()
                    plan = source_order(order, sites, stock, SHIP_TO, strategy)
                    samples.append((time.perf_counter() - t0) * 1_000)
                    outcomes[plan.outcome] += 1
                    if plan.outcome == "assigned":
                        used.append(len(plan.locations))
                summary = ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items()))
                if used:
                    summary += f" ({statistics.median(used):g})"
                print(
                    f"{policy:<17} {line_count:>5} {site_count:>6} {runs:>4} "
                    f"{statistics.median(samples):>10.2f} {p95(samples):>8.2f}  {summary}"
                )
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
