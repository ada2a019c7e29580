"""Small shared helpers for the benchmarks: timing loops and a plain-text results table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    """One benchmark line: `ops_per_s` of `subject` doing `task` (higher is better)."""

    task: str
    subject: str
    ops_per_s: float
    note: str = ""


def ops_per_second(fn: Callable[[], object], *, min_seconds: float, repeats: int = 3) -> float:
    """Best-of-`repeats` throughput of calling `fn` repeatedly for at least `min_seconds`."""
    best = 0.0
    for _ in range(repeats):
        count = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < min_seconds or count == 0:
            fn()
            count += 1
            elapsed = time.perf_counter() - start
        best = max(best, count / elapsed)
    return best


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def print_table(rows: Sequence[Measurement], *, baseline: str | None = None) -> None:
    """Print rows grouped by task; with `baseline`, each row shows its ratio to that subject."""
    tasks: dict[str, list[Measurement]] = {}
    for row in rows:
        tasks.setdefault(row.task, []).append(row)
    for task, group in tasks.items():
        print(f"\n{task}")
        base = next((r.ops_per_s for r in group if r.subject == baseline), None)
        for row in sorted(group, key=lambda r: -r.ops_per_s):
            ratio = f"  {row.ops_per_s / base:6.2f}x {baseline}" if base else ""
            note = f"  ({row.note})" if row.note else ""
            print(f"  {row.subject:<28} {row.ops_per_s:>14,.0f} ops/s{ratio}{note}")
