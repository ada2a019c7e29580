"""Benchmark: createRecord throughput and latency, our PDS against the official TypeScript PDS.

Run: `.venv/bin/python -m scripts.bench.pds_writes [--records N] [--warmup N] [--rounds R]
      [--skip-reference] [--reference-dir DIR]`

Both PDSes run on this machine in this invocation, on 127.0.0.1, with the same local PLC
directory: ours (`python -m pds`) and `@atproto/pds` from npm. A round gives each a fresh server
process and data directory, an account and a firehose subscriber, writes `--warmup` posts, then
`--records` posts at concurrency 1 and again at concurrency 8, all into that account's repo. Each
phase yields records/s, per-request latencies and how many of its commits the subscriber saw.
Rounds alternate ours / reference so that load elsewhere on a shared machine hits both; the table
merges the rounds (total records over total time, latencies pooled for p50/p99) and lists each
round's records/s to show the spread. The ratios to the reference follow, with the target:
>= 3x the reference's records/s at concurrency 8, p99 no worse.

Each server is its own process and the driver (aiohttp client + subscriber) a third, so the client
side costs both servers the same. The reference is installed into a temporary directory (or into
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
from scripts.bench._servers import RunningServer, free_port, server_process
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
    """One PDS's phases, round by round (each round: a fresh server, account and subscriber)."""

    name: str
    rounds: tuple[tuple[PhaseResult, ...], ...]

    def at(self, concurrency: int) -> PhaseResult:
        """The phase at `concurrency`, merged over every round."""
        return PhaseResult.merge([self._phase(phases, concurrency) for phases in self.rounds])

    def rates(self, concurrency: int) -> list[float]:
        return [self._phase(phases, concurrency).records_per_s for phases in self.rounds]

    @staticmethod
    def _phase(phases: Sequence[PhaseResult], concurrency: int) -> PhaseResult:
        return next(p for p in phases if p.concurrency == concurrency)


async def measure(server: RunningServer, *, records: int, warmup: int) -> tuple[PhaseResult, ...]:
    """Warm-up, then one phase per concurrency, all on one fresh account with a subscriber."""
    pds_url = server.url
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
                    server.cpu_seconds,
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
    return tuple(phases)


@contextlib.asynccontextmanager
async def plc_directory(workdir: Path) -> AsyncIterator[str]:
    """Our local PLC directory, shared by both PDSes; yields its URL (named `localhost`, as the
    reference's own dev setups do; both PDSes resolve it to this loopback server)."""
    port = free_port()
    async with server_process(
        "local PLC directory",
        [sys.executable, "-m", "pds.plc"],
        env={"PLC_PORT": str(port), "PLC_DATA_DIRECTORY": str(workdir / "plc")},
        url=f"http://127.0.0.1:{port}",
        health_path="/_health",
        log_path=workdir / "plc" / "server.log",
        cwd=REPO_ROOT,
    ):
        yield f"http://localhost:{port}"


@contextlib.asynccontextmanager
async def our_pds(data_dir: Path, plc_url: str) -> AsyncIterator[RunningServer]:
    """Our PDS in dev mode, as `./scripts/run` starts it."""
    port = free_port()
    env = {
        "PDS_DEV_MODE": "true",
        "PDS_PORT": str(port),
        "PDS_DATA_DIRECTORY": str(data_dir),
        "PDS_DID_PLC_URL": plc_url,
        "PDS_RATE_LIMITS_ENABLED": "false",
        "LOG_LEVEL": "WARNING",  # the reference runs with LOG_ENABLED=false
    }
    async with server_process(
        OURS,
        [sys.executable, "-m", "pds"],
        env=env,
        url=f"http://127.0.0.1:{port}",
        health_path="/xrpc/_health",
        log_path=data_dir / "server.log",
        cwd=REPO_ROOT,
    ) as server:
        yield server


async def run_all(
    workdir: Path,
    reference: ts_pds.ReferenceInstall | None,
    *,
    records: int,
    warmup: int,
    rounds: int,
) -> list[TargetResult]:
    """Alternate ours and the reference `rounds` times, so a burst of load elsewhere on the
    machine lands on both rather than on whichever ran at that moment."""
    ours: list[tuple[PhaseResult, ...]] = []
    theirs: list[tuple[PhaseResult, ...]] = []
    async with plc_directory(workdir) as plc_url:
        for number in range(rounds):
            async with our_pds(workdir / f"ours-{number}", plc_url) as server:
                ours.append(await measure(server, records=records, warmup=warmup))
            if reference is not None:
                theirs.append(
                    await _measure_reference(
                        reference, workdir / f"reference-{number}", plc_url, records, warmup
                    )
                )
    results = [TargetResult(OURS, tuple(ours))]
    if reference is not None:
        name = f"reference (@atproto/pds {reference.pds_version}, {_node(reference)})"
        results.append(TargetResult(name, tuple(theirs)))
    return results


async def _measure_reference(
    install: ts_pds.ReferenceInstall, data_dir: Path, plc_url: str, records: int, warmup: int
) -> tuple[PhaseResult, ...]:
    port = free_port()
    async with ts_pds.reference_pds(
        install,
        port=port,
        data_dir=data_dir,
        plc_url=plc_url,
        rotation_key_hex=K256Keypair.generate().private_key_hex(),
    ) as server:
        return await measure(server, records=records, warmup=warmup)


def _node(install: ts_pds.ReferenceInstall) -> str:
    version = subprocess.run(
        [str(install.node), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"Node {version}"


def format_results(results: Sequence[TargetResult], *, records: int) -> str:
    rounds = len(results[0].rounds)
    lines = [
        f"createRecord: {records} app.bsky.feed.post records per phase into one repo, firehose "
        f"subscriber attached; {rounds} round(s), alternating targets, merged below",
        "",
        f"  {'target':<52} {'conc':>4} {'records/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU ms/rec':>10} {'firehose':>11}  records/s by round",
    ]
    for result in results:
        for concurrency in CONCURRENCIES:
            phase = result.at(concurrency)
            by_round = ", ".join(f"{rate:,.0f}" for rate in result.rates(concurrency))
            lines.append(
                f"  {result.name:<52} {concurrency:>4} {phase.records_per_s:>10,.1f} "
                f"{phase.p50_ms:>8.2f} {phase.p99_ms:>8.2f} {phase.cpu_ms_per_record:>10.2f} "
                f"{f'{phase.delivered}/{phase.records}':>11}  {by_round}"
            )
    lines.append("  (CPU ms/rec: the server process's own CPU time per record, all threads)")
    return "\n".join(lines)


def format_ratios(ours: TargetResult, reference: TargetResult) -> str:
    lines = ["", "ours / reference:"]
    for concurrency in CONCURRENCIES:
        mine, theirs = ours.at(concurrency), reference.at(concurrency)
        lines.append(
            f"  concurrency {concurrency}: {mine.records_per_s / theirs.records_per_s:.2f}x "
            f"records/s; p50 {mine.p50_ms / theirs.p50_ms:.2f}x, "
            f"p99 {mine.p99_ms / theirs.p99_ms:.2f}x, "
            f"CPU/record {mine.cpu_ms_per_record / theirs.cpu_ms_per_record:.2f}x "
            "(lower is better)"
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
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per target")
    parser.add_argument("--skip-reference", action="store_true", help="measure our PDS only")
    parser.add_argument(
        "--reference-dir", type=Path, help="install (or reuse) the reference here, kept afterwards"
    )
    args = parser.parse_args(argv)
    if args.records < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--records and --rounds must be >= 1, --warmup >= 0")
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores")
    with contextlib.ExitStack() as scratch:
        reference = None
        if args.skip_reference:
            print("reference: skipped (--skip-reference)")
        else:
            reference = _prepare_reference(args.reference_dir or _temp_dir(scratch, "reference"))
        workdir = _temp_dir(scratch, "data")
        results = asyncio.run(
            run_all(
                workdir, reference, records=args.records, warmup=args.warmup, rounds=args.rounds
            )
        )
    print(format_results(results, records=args.records))
    if len(results) == 2:
        print(format_ratios(results[0], results[1]))


def _temp_dir(scratch: contextlib.ExitStack, purpose: str) -> Path:
    """A directory removed when the run ends."""
    prefix = f"pds-writes-bench-{purpose}-"
    return Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))


if __name__ == "__main__":
    main()
