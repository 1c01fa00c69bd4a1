"""Sourcing engine, step 3 (whole order): which locations ship which lines.

Pure logic (stdlib only), called by `activities.sourcing.source_order` with the lines
scored by steps 1 and 2. Fewest locations first, then the best total score: an exact
search over combinations of locations while within the search budget (the caller's
`EXACT_SEARCH_MAX_COMBINATIONS`), greedy set cover beyond it. Units taken by one line
at a location are gone for later lines of the same SKU there.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import combinations

from activities.sourcing_model import SCORE_DIGITS, EvaluatedLine


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class Planner:
    """Step 3: locations for the whole order. `used` counts the units already taken per
    (location, sku), so lines of the same SKU share one location's ATP."""

    def __init__(
        self,
        lines: list[EvaluatedLine],
        stock: dict[tuple[str, str], int],
        max_exact_combinations: int,
    ) -> None:
        self.lines = lines
        self.stock = stock
        self.max_exact_combinations = max_exact_combinations
        self.used: Counter[tuple[str, str]] = Counter()
        self.shared_skus = len({ln.demand.sku for ln in lines}) < len(lines)
        # location -> bit mask of the lines it can ship in full
        self.masks: dict[str, int] = {}
        for ln in lines:
            for loc in ln.full:
                self.masks[loc] = self.masks.get(loc, 0) | (1 << ln.index)

    def left(self, loc: str, sku: str) -> int:
        return max(self.stock.get((loc, sku), 0), 0) - self.used[(loc, sku)]

    def _take(self, i: int, loc: str, qty: int) -> None:
        self.used[(loc, self.lines[i].demand.sku)] += qty

    def _total(self, plan: dict[int, str]) -> float:
        return round(sum(self.lines[i].scores[loc] for i, loc in plan.items()), SCORE_DIGITS)

    def ship_complete(self) -> str | None:
        """The best-scored location that ships every line in full, if any."""
        everything = (1 << len(self.lines)) - 1
        per_sku = Counter[str]()
        for ln in self.lines:
            per_sku[ln.demand.sku] += ln.demand.quantity
        feasible = [
            loc
            for loc, mask in self.masks.items()
            if mask == everything and all(self.left(loc, s) >= n for s, n in per_sku.items())
        ]
        if not feasible:
            return None

        def total(loc: str) -> float:
            return round(sum(ln.scores[loc] for ln in self.lines), SCORE_DIGITS)

        return min(feasible, key=lambda loc: (-total(loc), loc))

    def whole_lines(self, indices: list[int]) -> dict[int, str]:
        """Each line wholly from one location: fewest locations, then best total score.
        Lines missing from the result could not be placed."""
        target = sum(1 << i for i in indices)
        masks = {loc: m & target for loc, m in self.masks.items() if m & target}
        plan = self._exact(target, masks)
        if plan is None:
            return self._greedy(target, masks)
        for i, loc in plan.items():
            self._take(i, loc, self.lines[i].demand.quantity)
        return plan

    def _best_within(
        self, combo: tuple[str, ...], target: int, masks: dict[str, int]
    ) -> dict[int, str]:
        plan: dict[int, str] = {}
        for i in _bits(target):
            scores = self.lines[i].scores
            plan[i] = min(
                (loc for loc in combo if masks[loc] >> i & 1), key=lambda loc: (-scores[loc], loc)
            )
        return plan

    def _fit(
        self, combo: tuple[str, ...], target: int, masks: dict[str, int]
    ) -> dict[int, str] | None:
        """Best-scored placement within `combo` that respects shared ATP (greedy: the
        most constrained lines first), or None."""
        options = {i: [loc for loc in combo if masks[loc] >> i & 1] for i in _bits(target)}
        order = sorted(options, key=lambda i: (len(options[i]), -self.lines[i].demand.quantity, i))
        taken: Counter[tuple[str, str]] = Counter()
        plan: dict[int, str] = {}
        for i in order:
            d, scores = self.lines[i].demand, self.lines[i].scores
            for loc in sorted(options[i], key=lambda loc: (-scores[loc], loc)):
                if self.left(loc, d.sku) - taken[(loc, d.sku)] >= d.quantity:
                    taken[(loc, d.sku)] += d.quantity
                    plan[i] = loc
                    break
            else:
                return None
        return plan

    def _exact(self, target: int, masks: dict[str, int]) -> dict[int, str] | None:
        """Combinations by increasing size while within the search budget."""
        universe = sorted(masks)
        spent = 0
        for size in range(1, len(universe) + 1):
            if size > 1:
                spent += math.comb(len(universe), size)
                if spent > self.max_exact_combinations:
                    return None
            covering: list[tuple[float, tuple[str, ...], dict[int, str]]] = []
            for combo in combinations(universe, size):
                covered = 0
                for loc in combo:
                    covered |= masks[loc]
                if covered == target:
                    plan = self._best_within(combo, target, masks)
                    covering.append((-self._total(plan), combo, plan))
            covering.sort(key=lambda c: (c[0], c[1]))
            for _, combo, plan in covering:
                if not self.shared_skus:
                    return plan
                fitted = self._fit(combo, target, masks)
                if fitted is not None:
                    return fitted
        return None

    def _greedy(self, target: int, masks: dict[str, int]) -> dict[int, str]:
        """Greedy set cover: the location covering most open lines (then best score sum,
        then location_id), taking stock as it goes; then drop and re-assign."""
        masks = dict(masks)
        open_lines, plan = target, {}
        while open_lines:
            best, tied = 0, []
            for loc, mask in masks.items():
                n = (mask & open_lines).bit_count()
                if n > best:
                    best, tied = n, [loc]
                elif n == best and n:
                    tied.append(loc)
            if not best:
                break

            loc = tied[0] if len(tied) == 1 else min(tied, key=self._gain(masks, open_lines))
            for i in _bits(masks[loc] & open_lines):
                d = self.lines[i].demand
                if self.left(loc, d.sku) >= d.quantity:
                    self._take(i, loc, d.quantity)
                    plan[i] = loc
                    open_lines &= ~(1 << i)
                else:  # an earlier line of this order took the stock
                    masks[loc] &= ~(1 << i)
        self._improve(plan)
        return plan

    def _gain(self, masks: dict[str, int], open_lines: int) -> Callable[[str], tuple[float, str]]:
        """Tie-break among locations covering equally many open lines."""

        def key(loc: str) -> tuple[float, str]:
            total = sum(self.lines[i].scores[loc] for i in _bits(masks[loc] & open_lines))
            return (-round(total, SCORE_DIGITS), loc)

        return key

    def _move(self, plan: dict[int, str], i: int, to: str) -> None:
        d = self.lines[i].demand
        self.used[(plan[i], d.sku)] -= d.quantity
        self.used[(to, d.sku)] += d.quantity
        plan[i] = to

    def _improve(self, plan: dict[int, str]) -> None:
        """Drop locations whose lines fit at the other chosen ones, then move each line
        to its best-scored chosen location."""
        chosen = set(plan.values())
        load = Counter(plan.values())
        for loc in sorted(chosen, key=lambda loc: (load[loc], loc)):
            others = chosen - {loc}
            moved: list[tuple[int, str]] = []
            for i in [i for i, at in plan.items() if at == loc]:
                to = self._better(i, others, plan[i], any_score=True)
                if to is None:
                    break
                moved.append((i, loc))
                self._move(plan, i, to)
            else:
                chosen = others
                continue
            for i, back in reversed(moved):
                self._move(plan, i, back)
        for i in sorted(plan):
            to = self._better(i, chosen, plan[i], any_score=False)
            if to is not None:
                self._move(plan, i, to)

    def _better(self, i: int, chosen: set[str], current: str, any_score: bool) -> str | None:
        """The best-scored location in `chosen` other than `current` that can ship line i
        in full; with any_score False only one scoring better than `current`."""
        ln = self.lines[i]
        for loc in ln.ranked:
            if loc == current:
                if not any_score:
                    return None
                continue
            if (
                loc in chosen
                and loc in ln.full
                and self.left(loc, ln.demand.sku) >= ln.demand.quantity
            ):
                return loc
        return None

    def split(self, i: int, chosen: set[str]) -> list[tuple[str, int]] | None:
        """Line i in parts: from locations already shipping first, then best-scored."""
        ln = self.lines[i]
        need = ln.demand.quantity
        order = [loc for loc in ln.ranked if loc in chosen]
        order += [loc for loc in ln.ranked if loc not in chosen]
        parts: list[tuple[str, int]] = []
        for loc in order:
            n = min(need, self.left(loc, ln.demand.sku))
            if n > 0:
                parts.append((loc, n))
                self._take(i, loc, n)
                need -= n
                if need == 0:
                    return parts
        for loc, n in parts:
            self._take(i, loc, -n)
        return None
