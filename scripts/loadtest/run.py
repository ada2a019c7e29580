"""Load-test the one-machine stack: `python -m scripts.loadtest.run [--users 16 --run-time 60]`.

1. Starts `./scripts/run` exactly as a user does, on ephemeral ports, in a temporary directory.
2. Seeds accounts and check-ins with `scripts/seed` and waits until the feed serves them all.
3. Runs `scripts/loadtest/locustfile.py` headless: half the users write check-ins, half read the
   feed (see the locustfile), for a bounded time and user count.
4. Checks that every acknowledged check-in reached the feed, and how long the index took to
   catch up once the load stopped.
5. Stops the stack with SIGINT and prints a Markdown table (docs/benchmarks.md).

Locust is not a runtime dependency: `pip install locust` (the `bench` extra).

Errors: `StackError` (from `scripts.stack.http`) when the stack, the seed or locust fail; exit 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from scripts.stack.demo import count_feed_items
from scripts.stack.http import StackError
from scripts.stack.process import ROOT, RunScript, stop_on_sigterm

LOCUSTFILE: Final = Path(__file__).with_name("locustfile.py")
WRITE_NAMES: Final = ("applyWrites check-in", "setup: anchor check-in")
CATCH_UP_TIMEOUT_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    requests: int
    failures: int
    per_second: float
    p50: float
    p95: float
    p99: float
    max: float

    def markdown(self) -> str:
        return (
            f"| {self.name} | {self.requests} | {self.failures} | {self.per_second:.1f} | "
            f"{self.p50:.0f} | {self.p95:.0f} | {self.p99:.0f} | {self.max:.0f} |"
        )


def seed(script: RunScript, accounts: int, checkins: int) -> int:
    result = subprocess.run(
        [
            str(ROOT / "scripts" / "seed"),
            *("--pds", script.pds_url, "--accounts", str(accounts)),
            *("--checkins", str(checkins), "--photo-ratio", "0.1"),
            "--no-progress",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"scripts/seed failed: {result.stderr.strip()}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return int(report["checkins_present"]) + int(report["checkins_written"])


def wait_for_feed(script: RunScript, expected: int) -> float:
    """Seconds until the anonymous feed holds `expected` items."""
    started = time.monotonic()
    while (count := count_feed_items(script.feedgen_url, script.feed_uri)) < expected:
        if time.monotonic() - started > CATCH_UP_TIMEOUT_S:
            raise StackError(f"the feed holds {count} of {expected} check-ins")
        time.sleep(0.2)
    return time.monotonic() - started


def run_locust(script: RunScript, out: Path, users: int, spawn_rate: float, seconds: int) -> None:
    env = {
        **os.environ,
        "SKYSPOT_FEEDGEN": script.feedgen_url,
        "SKYSPOT_FEED_URI": script.feed_uri,
        "SKYSPOT_FEED_SERVICE_DID": script.service_did,
    }
    command = [
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)),
        *("--headless", "--only-summary", "--loglevel", "WARNING"),
        *("--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", f"{seconds}s"),
        *("--host", script.pds_url, "--csv", str(out / "locust"), "--stop-timeout", "10"),
    ]
    with (out / "locust.log").open("w") as log:
        result = subprocess.run(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if not (out / "locust_stats.csv").exists():
        raise StackError(f"locust exited {result.returncode}: see {out / 'locust.log'}")


def read_stats(out: Path) -> list[Row]:
    with (out / "locust_stats.csv").open(newline="") as handle:
        return [
            Row(
                name=record["Name"],
                requests=int(record["Request Count"]),
                failures=int(record["Failure Count"]),
                per_second=float(record["Requests/s"]),
                p50=float(record["50%"]),
                p95=float(record["95%"]),
                p99=float(record["99%"]),
                max=float(record["Max Response Time"]),
            )
            for record in csv.DictReader(handle)
        ]


def report(rows: list[Row], args: argparse.Namespace, seeded: int, catch_up: float) -> str:
    written = sum(r.requests - r.failures for r in rows if r.name in WRITE_NAMES)
    lines = [
        f"`python -m scripts.loadtest.run --users {args.users} --run-time {args.run_time}` "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}; locust shares the CPUs "
        "with the stack)",
        "",
        f"Index before the run: {seeded} seeded check-ins. Acknowledged check-in writes during "
        f"the run: {written}; all {seeded + written} were in the feed {catch_up:.1f} s after the "
        "load stopped.",
        "",
        "| request | count | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(row.markdown() for row in rows),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parse = argparse.ArgumentParser(prog="python -m scripts.loadtest.run", description=__doc__)
    parse.add_argument("--users", type=int, default=16, help="concurrent users (half write)")
    parse.add_argument("--spawn-rate", type=float, default=8.0, help="users started per second")
    parse.add_argument("--run-time", type=int, default=60, help="seconds of load")
    parse.add_argument("--seed-accounts", type=int, default=10)
    parse.add_argument("--seed-checkins", type=int, default=500)
    args = parse.parse_args(argv)
    stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="skyspot-loadtest-") as tmp:
        out = Path(tmp)
        script = RunScript.start(out / "stack")
        try:
            seeded = seed(script, args.seed_accounts, args.seed_checkins)
            wait_for_feed(script, seeded)
            run_locust(script, out, args.users, args.spawn_rate, args.run_time)
            rows = read_stats(out)
            written = sum(r.requests - r.failures for r in rows if r.name in WRITE_NAMES)
            catch_up = wait_for_feed(script, seeded + written)
            print(report(rows, args, seeded, catch_up))
        except StackError as exc:
            print(f"load test: {exc}", file=sys.stderr)
            return 1
        finally:
            if script.process.poll() is None and script.stop(signal.SIGTERM) != 143:
                print("scripts/run did not stop cleanly", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
