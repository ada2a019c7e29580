"""Benchmark: the feed generator's getFeedSkeleton on 10k, 100k and 1M indexed check-ins.

Run: `.venv/bin/python -m scripts.bench.feed [--sizes 10000,100000,1000000]
      [--backends sqlite,postgresql] [--seconds 5] [--concurrency 32] [--workers 1]
      [--skip-peer] [--data-dir DIR] [--quick]`

For each backend and size a synthetic index is built (`_feed_data`: check-ins around world
cities, weighted by population; SQLite files are kept in `--data-dir` and reused for a day, so
only the first run builds the million-row index), then `python -m feedgen` runs as its own
process on it, serving the global `nearby` feed (anonymous viewers) and 40 region feeds anchored
on city centres (the same ranking code a signed-in viewer gets; only the anchor lookup differs).
Phases, each for `--seconds` at `--concurrency` parallel requests from this driver process (our
server runs `--workers` processes, FEEDGEN_WORKERS):

- `first30`: first pages, `limit=30`, round-robin over the feeds; first-page cache OFF.
- `deep30`:  `limit=30` pages 20 pages deep (cursors collected beforehand); cache OFF.
- `poll1`:   first pages with `limit=1` (how the app polls), cache OFF.
- `poll1 cached`: the same with the default 2 s first-page cache (a second server process).

The peer (`_feed_peer`, SQLite only, skipped with --skip-peer) is the SDK-based Python template's
pattern serving the same ranking with one SQL query that orders every row by a CASE band.
Each phase first runs for a fifth of its time unmeasured (connections, statement caches, pages
in memory), then measures. The driver is a minimal keep-alive HTTP/1.1 client (`_feed_load`),
so it takes little of the cores it shares with the servers. Reported per phase: requests/s, p50
and p99 latency (ms), errors, the server-side CPU time per request (our processes plus
PostgreSQL's, from /proc), the driver's own CPU per request, and the 1-minute load average: on a
shared machine wall-clock latency moves with everyone else's load, CPU per request does not.
Targets: p99 < 50 ms, and our latency at the largest size within 2x of the smallest. PostgreSQL
runs use the throw-away cluster of `tests.pg` (skipped with the reason when PostgreSQL 15 is not
installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final

from scripts.bench import _feed_data
from scripts.bench._feed_load import Connection, request_target, run_load
from scripts.bench._feed_report import Phase, print_phase, print_summary, tree_cpu_seconds
from scripts.bench._servers import RunningServer, free_port, server_process

PUBLISHER: Final = "did:plc:benchpublisher"
REGION_FEEDS: Final = 40
DEEP_PAGES: Final = 20
PAGE: Final = 30
PREPARE_BUDGET_S: Final = 60.0
SKELETON: Final = "/xrpc/app.bsky.feed.getFeedSkeleton"
WARM_UP_SHARE: Final = 0.2  # of a phase's duration, run before it and not measured
DATA_DIR: Final = Path(tempfile.gettempdir()) / "skyspot-feed-bench-data"
DATA_MAX_AGE_S: Final = 24 * 3600.0


def feed_uris() -> list[str]:
    regions = [f"at://{PUBLISHER}/app.bsky.feed.generator/{rkey}" for rkey, _, _ in _anchors()]
    return [f"at://{PUBLISHER}/app.bsky.feed.generator/nearby", *regions]


def _anchors() -> list[tuple[str, int, int]]:
    return _feed_data.anchors(REGION_FEEDS)


def server_env(database_url: str, port: int, *, cache: bool, workers: int = 1) -> dict[str, str]:
    regions = ";".join(f"{rkey}={lat / 1e6},{lon / 1e6}" for rkey, lat, lon in _anchors())
    env = {
        "FEEDGEN_PORT": str(port),
        "FEEDGEN_HOSTNAME": "localhost",
        "FEEDGEN_PUBLISHER_DID": PUBLISHER,
        "FEEDGEN_REGION_FEEDS": regions,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "FEEDGEN_WORKERS": str(workers),
    }
    if not cache:
        env["FEEDGEN_PAGE_CACHE_SECONDS"] = "0"
    return env


async def deep_cursors(base: str, feeds: Sequence[str]) -> list[tuple[str, str]]:
    """(feed, cursor) pairs `DEEP_PAGES` pages deep, within a time budget (slow peers)."""
    found = []
    deadline = time.perf_counter() + PREPARE_BUDGET_S
    connection = Connection(base)
    try:
        for feed in feeds:
            cursor = None
            for _ in range(DEEP_PAGES):
                params = {"feed": feed, "limit": str(PAGE)}
                if cursor:
                    params["cursor"] = cursor
                _status, body = await connection.get(request_target(SKELETON, params))
                cursor = json.loads(body).get("cursor")
                if cursor is None or time.perf_counter() > deadline:
                    break
            if cursor is not None:
                found.append((feed, cursor))
            if time.perf_counter() > deadline:
                break
    finally:
        await connection.close()
    return found


async def measure_phases(
    base: str,
    *,
    phases: Sequence[str],
    seconds: float,
    concurrency: int,
    label: tuple[str, int, str],
    cpu_roots: Sequence[int],
) -> list[Phase]:
    """Each phase: a warm-up at full concurrency (not measured), then the measured run."""
    feeds = feed_uris()
    results = []
    for name in phases:
        pairs = await deep_cursors(base, feeds) if name == "deep30" else []
        if name == "deep30" and not pairs:
            print(f"  {label[2]} {name}: no feed is {DEEP_PAGES} pages deep, skipped")
            continue
        targets = phase_targets(name, feeds, pairs)
        warm_up = max(WARM_UP_SHARE * seconds, 0.2)
        await run_load(base, targets, seconds=warm_up, concurrency=concurrency)
        cpu_before, driver_before = tree_cpu_seconds(cpu_roots), time.process_time()
        run = await run_load(base, targets, seconds=seconds, concurrency=concurrency)
        count = max(run.requests, 1)
        driver_ms = (time.process_time() - driver_before) * 1000 / count
        cpu_ms = (tree_cpu_seconds(cpu_roots) - cpu_before) * 1000 / count
        backend, size, subject = label
        results.append(
            Phase(
                backend=backend,
                size=size,
                subject=subject,
                name=name,
                requests=run.requests,
                errors=run.errors,
                seconds=run.seconds,
                latencies_ms=tuple(run.latencies_ms),
                cpu_ms_per_request=cpu_ms,
                driver_cpu_ms_per_request=driver_ms,
                load_average=os.getloadavg()[0],
            )
        )
    return results


def phase_targets(name: str, feeds: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The request targets a phase cycles through (encoded once, not per request)."""
    if pairs:
        return [
            request_target(SKELETON, {"feed": feed, "limit": str(PAGE), "cursor": cursor})
            for feed, cursor in pairs
        ]
    limit = "1" if name.startswith("poll1") else str(PAGE)
    return [request_target(SKELETON, {"feed": feed, "limit": limit}) for feed in feeds]


@contextlib.asynccontextmanager
async def feedgen(
    database_url: str, workdir: Path, *, cache: bool, workers: int
) -> AsyncIterator[RunningServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with server_process(
        "feedgen",
        [sys.executable, "-m", "feedgen"],
        env=server_env(database_url, port, cache=cache, workers=workers),
        url=url,
        health_path="/xrpc/_health",
        log_path=workdir / f"feedgen-{port}.log",
    ) as server:
        yield server


@contextlib.asynccontextmanager
async def peer(sqlite_path: Path, workdir: Path) -> AsyncIterator[RunningServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = server_env("unused", port, cache=False)
    env.update(PEER_DB=str(sqlite_path), PEER_PORT=str(port))
    async with server_process(
        "peer",
        [sys.executable, "-m", "scripts.bench._feed_peer"],
        env=env,
        url=url,
        health_path="/xrpc/_health",
        log_path=workdir / f"peer-{port}.log",
    ) as server:
        yield server


async def run_size(
    backend: str,
    database_url: str,
    size: int,
    workdir: Path,
    args: argparse.Namespace,
    *,
    sqlite_path: Path | None,
    database_pids: Sequence[int] = (),
) -> list[Phase]:
    """Every phase against our server (cache off, then on), then the peer's (SQLite only)."""
    common = {"seconds": args.seconds, "concurrency": args.concurrency}
    ours = (backend, size, "skyspot")
    results = []
    async with feedgen(database_url, workdir, cache=False, workers=args.workers) as server:
        results += await measure_phases(
            server.url,
            phases=("first30", "deep30", "poll1"),
            label=ours,
            cpu_roots=[server.pid, *database_pids],
            **common,
        )
    async with feedgen(database_url, workdir, cache=True, workers=args.workers) as server:
        results += await measure_phases(
            server.url,
            phases=("poll1 cached",),
            label=ours,
            cpu_roots=[server.pid, *database_pids],
            **common,
        )
    if sqlite_path is not None and not args.skip_peer:
        async with peer(sqlite_path, workdir) as server:
            results += await measure_phases(
                server.url,
                phases=("first30", "deep30", "poll1"),
                label=(backend, size, "template-pattern"),
                cpu_roots=[server.pid],
                **common,
            )
    for phase in results:
        print_phase(phase)
    return results


async def run_backend(
    backend: str, sizes: Sequence[int], workdir: Path, args: argparse.Namespace
) -> list[Phase]:
    results: list[Phase] = []
    if backend == "sqlite":
        data_dir = workdir / "data" if args.quick else Path(args.data_dir)
        for size in sizes:
            path, built = await asyncio.to_thread(
                _feed_data.cached_sqlite, data_dir, size, max_age_s=DATA_MAX_AGE_S
            )
            made = "reused" if built is None else f"built in {built:.1f} s"
            print(f"SQLite index of {size:,} check-ins: {path} ({made})", flush=True)
            results += await run_size(
                "sqlite", f"sqlite+aiosqlite:///{path}", size, workdir, args, sqlite_path=path
            )
        return results
    from tests.pg import PgCluster, pg_available

    reason = pg_available()
    if reason is not None:
        print(f"postgresql: skipped ({reason})")
        return results
    cluster = await asyncio.to_thread(PgCluster)
    try:
        await asyncio.to_thread(cluster.start)
        for size in sizes:
            url = cluster.url(await asyncio.to_thread(cluster.create_database))
            built = await _feed_data.build_postgres(url, size)
            print(f"built PostgreSQL index of {size:,} check-ins in {built:.1f} s", flush=True)
            postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
            results += await run_size(
                "postgresql",
                url,
                size,
                workdir,
                args,
                sqlite_path=None,
                database_pids=[postmaster],
            )
    finally:
        await asyncio.to_thread(cluster.destroy)
    return results


def main(argv: Sequence[str] | None = None) -> list[Phase]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=1, help="FEEDGEN_WORKERS for our server (processes)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2,000 check-ins, short phases, SQLite"
    )
    parser.add_argument(
        "--data-dir",
        default=str(DATA_DIR),
        help="where SQLite indexes are kept between runs (rebuilt after a day)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.backends, args.seconds, args.concurrency = "2000", "sqlite", 0.5, 4
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores; "
        f"concurrency {args.concurrency}, {args.seconds:g} s per phase, "
        f"{args.workers} feedgen worker(s)",
        flush=True,
    )
    results: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="skyspot-feed-bench-") as scratch:
        for backend in args.backends.split(","):
            results += asyncio.run(run_backend(backend.strip(), sizes, Path(scratch), args))
    print_summary(results)
    return results


if __name__ == "__main__":
    main()
