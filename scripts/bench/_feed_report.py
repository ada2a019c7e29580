"""Results of the feed benchmark (`scripts.bench.feed`): one `Phase` per measured load, the CPU
accounting of a server's process tree, and the printed lines and target verdicts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from scripts.bench._servers import _CLOCK_TICKS
from scripts.bench._util import percentile

TARGET_P99_MS: Final = 50.0
TARGET_GROWTH: Final = 2.0


@dataclass(frozen=True)
class Phase:
    backend: str
    size: int
    subject: str
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: tuple[float, ...]
    cpu_ms_per_request: float  # server-side CPU (our processes + the database's), per request
    driver_cpu_ms_per_request: float  # this driver's CPU, per request
    load_average: float  # 1-minute load average at the end of the phase

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def p(self, pct: float) -> float:
        return percentile(self.latencies_ms, pct) if self.latencies_ms else float("nan")


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    """User + system CPU of these processes and all their live descendants (Linux /proc).

    Unlike wall-clock latency on a shared machine, CPU spent per request does not grow when
    other work competes for the cores, so it is the steadier measure of how the cost scales.
    """
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    total = 0.0
    for pid, seconds in cpu.items():
        ancestor = pid
        while ancestor > 1 and ancestor not in roots:
            ancestor = parents.get(ancestor, 0)
        if ancestor in roots:
            total += seconds
    return total


def print_phase(phase: Phase) -> None:
    errors = f"  errors {phase.errors}" if phase.errors else ""
    print(
        f"  {phase.backend:<10} {phase.size:>9,} {phase.subject:<17} {phase.name:<13}"
        f" {phase.rps:>9,.0f} req/s  p50 {phase.p(50):>8.1f} ms  p99 {phase.p(99):>8.1f} ms"
        f"  cpu {phase.cpu_ms_per_request:6.2f} ms/req"
        f" (driver {phase.driver_cpu_ms_per_request:.2f})"
        f"  load {phase.load_average:4.1f}  ({phase.requests} requests){errors}",
        flush=True,
    )


def print_summary(results: Sequence[Phase]) -> None:
    print("\nTargets (ours): p99 < 50 ms; p99 at the largest size within 2x of the smallest")
    ours = [r for r in results if r.subject == "skyspot"]
    for (backend, name), group in itertools.groupby(
        sorted(ours, key=lambda r: (r.backend, r.name, r.size)), key=lambda r: (r.backend, r.name)
    ):
        phases = list(group)
        small, large = phases[0], phases[-1]
        growth = large.p(99) / small.p(99) if small.p(99) else float("nan")
        worst = max(p.p(99) for p in phases)
        cpu_growth = large.cpu_ms_per_request / small.cpu_ms_per_request
        verdict = "ok" if worst < TARGET_P99_MS and growth <= TARGET_GROWTH else "MISSED"
        print(
            f"  {backend:<10} {name:<13} worst p99 {worst:7.1f} ms; p99 {large.size:,} / "
            f"{small.size:,} = {growth:4.2f}x, server CPU per request {cpu_growth:4.2f}x  {verdict}"
        )
    peers = {(r.backend, r.size, r.name): r for r in results if r.subject == "template-pattern"}
    for r in ours:
        other = peers.get((r.backend, r.size, r.name))
        if other and other.rps:
            print(
                f"  vs template pattern: {r.backend} {r.size:,} {r.name}: "
                f"{r.rps / other.rps:6.1f}x req/s, p99 {other.p(99) / r.p(99):6.1f}x lower"
            )
