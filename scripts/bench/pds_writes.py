"""Benchmark: createRecord throughput and latency, our PDS against the official TypeScript PDS.

Run: `.venv/bin/python -m scripts.bench.pds_writes [--records N] [--warmup N]
      [--skip-reference] [--reference-dir DIR]`

For each PDS in turn (ours first, then `@atproto/pds` from npm, on the same machine in the same
invocation, both on 127.0.0.1 with the same local PLC directory): create an account, attach a
firehose subscriber, write `--warmup` posts, then `--records` posts at concurrency 1 and again at
concurrency 8, all to that account's repo. Each phase reports records/s, p50/p99 latency and how
many of its commits the subscriber saw; the ratios to the reference are printed at the end with the
target (>= 3x the reference's records/s at concurrency 8, p99 no worse).

Each server is its own process; the driver (aiohttp client + subscriber) is a third, so the client
side costs both servers the same. The reference is installed in a temporary directory (or
`--reference-dir`, reused on later runs); without Node/npm the script says why and measures ours.
Results and the machine they were measured on are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from atcore.crypto import K256Keypair
from scripts.bench import ts_pds
from scripts.bench._servers import free_port, server_process
from scripts.bench._write_load import (
    PhaseResult,
    create_account,
    firehose_subscriber,
    write_phase,
)

CONCURRENCIES = (1, 8)
TARGET_CONCURRENCY = 8
TARGET_SPEEDUP = 3.0
REPO_ROOT = Path(__file__).resolve().parents[2]
OURS = "ours (python -m pds)"
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass(frozen=True)
class TargetResult:
    name: str
    phases: tuple[PhaseResult, ...]

    def at(self, concurrency: int) -> PhaseResult:
        return next(p for p in self.phases if p.concurrency == concurrency)


async def measure(name: str, pds_url: str, *, records: int, warmup: int) -> TargetResult:
    """Warm-up, then one phase per concurrency, all on one fresh account with a subscriber."""
    connector = aiohttp.TCPConnector(limit=max(CONCURRENCIES) + 1)
    async with aiohttp.ClientSession(connector=connector, timeout=_REQUEST_TIMEOUT) as http:
        account = await create_account(http, pds_url)
        async with firehose_subscriber(http, pds_url, account.did) as counter:

            async def phase(concurrency: int, count: int, first_index: int) -> PhaseResult:
                return await write_phase(
                    http,
                    pds_url,
                    account,
                    counter,
                    records=count,
                    concurrency=concurrency,
                    first_index=first_index,
                )

            if warmup:
                await phase(TARGET_CONCURRENCY, warmup, 0)
            phases = [
                await phase(concurrency, records, warmup + number * records)
                for number, concurrency in enumerate(CONCURRENCIES)
            ]
    return TargetResult(name=name, phases=tuple(phases))


@contextlib.asynccontextmanager
async def plc_directory(workdir: Path) -> AsyncIterator[str]:
    """Our local PLC directory, shared by both PDSes; yields its URL (named `localhost`, as the
    reference's own dev setups do; both PDSes resolve it to this loopback server)."""
    port = free_port()
    async with server_process(
        "local PLC directory",
        [sys.executable, "-m", "pds.plc"],
        env={"PLC_PORT": str(port), "PLC_DATA_DIRECTORY": str(workdir / "plc")},
        health_url=f"http://127.0.0.1:{port}/_health",
        log_path=workdir / "plc" / "server.log",
        cwd=REPO_ROOT,
    ):
        yield f"http://localhost:{port}"


@contextlib.asynccontextmanager
async def our_pds(workdir: Path, plc_url: str) -> AsyncIterator[str]:
    port = free_port()
    env = {
        "PDS_DEV_MODE": "true",
        "PDS_PORT": str(port),
        "PDS_DATA_DIRECTORY": str(workdir / "ours"),
        "PDS_DID_PLC_URL": plc_url,
        "PDS_RATE_LIMITS_ENABLED": "false",
        "LOG_LEVEL": "WARNING",  # the reference runs with LOG_ENABLED=false
    }
    async with server_process(
        OURS,
        [sys.executable, "-m", "pds"],
        env=env,
        health_url=f"http://127.0.0.1:{port}/xrpc/_health",
        log_path=workdir / "ours" / "server.log",
        cwd=REPO_ROOT,
    ):
        yield f"http://127.0.0.1:{port}"


async def run_all(
    workdir: Path, reference: ts_pds.ReferenceInstall | None, *, records: int, warmup: int
) -> list[TargetResult]:
    """Measure ours, then the reference, one after the other."""
    results = []
    async with plc_directory(workdir) as plc_url:
        async with our_pds(workdir, plc_url) as url:
            results.append(await measure(OURS, url, records=records, warmup=warmup))
        if reference is not None:
            port = free_port()
            async with ts_pds.reference_pds(
                reference,
                port=port,
                data_dir=workdir / "reference",
                plc_url=plc_url,
                rotation_key_hex=K256Keypair.generate().private_key_hex(),
            ):
                name = f"reference (@atproto/pds {reference.pds_version}, {_node(reference)})"
                url = f"http://127.0.0.1:{port}"
                results.append(await measure(name, url, records=records, warmup=warmup))
    return results


def _node(install: ts_pds.ReferenceInstall) -> str:
    version = subprocess.run(
        [str(install.node), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"Node {version}"


def format_results(results: Sequence[TargetResult], *, records: int) -> str:
    lines = [
        f"createRecord ({records} app.bsky.feed.post records per phase, one repo, "
        "firehose subscriber attached)",
        "",
        f"  {'target':<52} {'conc':>4} {'records/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'firehose':>11}",
    ]
    for result in results:
        for phase in result.phases:
            lines.append(
                f"  {result.name:<52} {phase.concurrency:>4} {phase.records_per_s:>10,.1f} "
                f"{phase.p50_ms:>8.2f} {phase.p99_ms:>8.2f} "
                f"{f'{phase.delivered}/{phase.records}':>11}"
            )
    return "\n".join(lines)


def format_ratios(ours: TargetResult, reference: TargetResult) -> str:
    lines = ["", "ours / reference:"]
    for concurrency in CONCURRENCIES:
        mine, theirs = ours.at(concurrency), reference.at(concurrency)
        lines.append(
            f"  concurrency {concurrency}: {mine.records_per_s / theirs.records_per_s:.2f}x "
            f"records/s, p50 {mine.p50_ms / theirs.p50_ms:.2f}x, "
            f"p99 {mine.p99_ms / theirs.p99_ms:.2f}x (latency: lower is better)"
        )
    mine, theirs = ours.at(TARGET_CONCURRENCY), reference.at(TARGET_CONCURRENCY)
    met = (
        mine.records_per_s >= TARGET_SPEEDUP * theirs.records_per_s and mine.p99_ms <= theirs.p99_ms
    )
    lines.append(
        f"target (concurrency {TARGET_CONCURRENCY}: >= {TARGET_SPEEDUP:g}x records/s, p99 no "
        f"worse): {'met' if met else 'NOT met'}"
    )
    return "\n".join(lines)


def _prepare_reference(directory: Path) -> ts_pds.ReferenceInstall | None:
    print("reference: preparing @atproto/pds (npm install on first use, about a minute) ...")
    try:
        install = ts_pds.prepare(directory)
    except ts_pds.ReferenceUnavailable as exc:
        print(f"reference: unavailable, measuring ours only: {exc}")
        return None
    print(f"reference: @atproto/pds {install.pds_version} in {install.directory}")
    return install


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000, help="records per phase")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up records (not measured)")
    parser.add_argument("--skip-reference", action="store_true", help="measure our PDS only")
    parser.add_argument(
        "--reference-dir", type=Path, help="install (or reuse) the reference here, kept afterwards"
    )
    args = parser.parse_args(argv)
    if args.records < 1 or args.warmup < 0:
        parser.error("--records must be >= 1 and --warmup >= 0")
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores")
    with contextlib.ExitStack() as scratch:
        reference = None
        if args.skip_reference:
            print("reference: skipped (--skip-reference)")
        else:
            reference = _prepare_reference(args.reference_dir or _temp_dir(scratch, "reference"))
        workdir = _temp_dir(scratch, "data")
        results = asyncio.run(run_all(workdir, reference, records=args.records, warmup=args.warmup))
    print(format_results(results, records=args.records))
    if len(results) == 2:
        print(format_ratios(results[0], results[1]))


def _temp_dir(scratch: contextlib.ExitStack, purpose: str) -> Path:
    """A directory removed when the run ends."""
    prefix = f"pds-writes-bench-{purpose}-"
    return Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))


if __name__ == "__main__":
    main()
