"""Benchmark: the firehose consumer on a recorded stream of check-in commits plus unrelated traffic.

Run: `.venv/bin/python -m scripts.bench.consumer [--checkins 100000] [--repos 1000]
      [--backends sqlite,postgresql] [--partitions 1] [--skip-peer] [--quick]`

The stream (`_consumer_stream`) is recorded once and cached in the temp directory: N check-in
commits (check-in + companion post, real signed Sync 1.1 commits) over `--repos` accounts,
interleaved with N unrelated commits (posts, likes) from accounts that never check in.

Sections:

- `decode` (in this process, one core): frames/s for our filtered decode (`decode_frame`: header,
  body, op-path filter; unrelated commits stop there) and for filtered decode + reading the
  check-in record blocks; the peer is the `atproto` SDK's parsing path that its
  `FirehoseSubscribeReposClient` runs per message (`Frame.from_bytes`,
  `parse_subscribe_repos_message`, op filter, `CAR.from_bytes`, record lookup). The SDK never
  verifies, so neither side verifies here.
- `verify` (in this process, one core): check-in commits/s through verification (CAR, commit
  fields, K-256 signature, Sync 1.1 inversion) and record validation (lexicon + rules).
- `index` (separate processes): the stream replayed from a server process (our PLC + a
  subscribeRepos endpoint) into `python -m firehose_consumer` from cursor 0, until the committed
  cursor reaches the last seq: catch-up time, events/s and check-ins/s, with and without
  signature verification, into SQLite and PostgreSQL (the throw-away cluster of `tests.pg`).
  `--partitions N` runs N consumer processes (`CONSUMER_PARTITION=i/N`) on the same database,
  timed from the moment the first one is up until every partition's cursor reaches the last seq;
  consumer CPU is then the sum over them. The
  peer is the SDK's `FirehoseSubscribeReposClient` (`sdk-peer` mode of this script, its own
  process) doing the peer work above on the same stream over the same socket, no database.

Targets: >= 100k frames/s/core filtered decode, >= 20k check-ins/s indexed into SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from atcore.index.engine import create_index_engine
from atcore.index.schema import source_cursor
from firehose_consumer.decode import CHECKIN_PREFIX
from firehose_consumer.partition import Partition
from scripts.bench._consumer_inproc import decode_section, verify_section
from scripts.bench._consumer_stream import Recording, default_directory, record
from scripts.bench._consumer_writes import writes_section
from scripts.bench._servers import free_port, server_process
from scripts.bench._util import Measurement, print_table

ROOT = Path(__file__).resolve().parents[2]


# -- index (processes) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexRun:
    backend: str
    verify: bool
    seconds: float
    cpu_seconds: float
    frames: int
    checkins: int
    partitions: int = 1

    def rows(self) -> list[Measurement]:
        subject = f"ours, {self.backend}, signatures {'on' if self.verify else 'off'}"
        note = f"catch-up {self.seconds:.1f} s, consumer CPU {self.cpu_seconds:.1f} s"
        if self.partitions > 1:
            subject += f", {self.partitions} partitions"
            note += f" (sum over {self.partitions} processes)"
        return [
            Measurement("index: events/s (catch-up)", subject, self.frames / self.seconds, note),
            Measurement(
                "index: check-ins/s (catch-up)", subject, self.checkins / self.seconds, note
            ),
        ]


async def _stream_server(recording: Recording, workdir: Path) -> Any:
    plc_port, stream_port = free_port(), free_port()
    return server_process(
        "stream", [sys.executable, "-m", "scripts.bench._consumer_stream",
                   str(recording.directory), str(plc_port), str(stream_port)],
        env={"PYTHONPATH": str(ROOT)}, url=f"http://127.0.0.1:{stream_port}",
        health_path="/health", log_path=workdir / "stream.log", cwd=ROOT,
    ), plc_port, stream_port  # fmt: skip


async def _cursor(url: str, source: str) -> int:
    engine = create_index_engine(url, read_only=True)
    try:
        async with engine.connect() as conn:
            value = (
                await conn.execute(
                    select(source_cursor.c.seq).where(source_cursor.c.source == source)
                )
            ).scalar_one_or_none()
            return int(value or 0)
    except Exception:  # the schema may not exist yet
        return 0
    finally:
        await engine.dispose()


async def _until_cursors(url: str, keys: Sequence[str], seq: int) -> None:
    """Poll the committed cursors (a file/database written by other processes: no event)."""
    for key in keys:
        while await _cursor(url, key) < seq:  # noqa: ASYNC110
            await asyncio.sleep(0.2)


def _consumer_process(
    env: dict[str, str], partition: Partition, log_path: Path
) -> contextlib.AbstractAsyncContextManager[Any]:
    metrics_port = free_port()
    return server_process(
        f"consumer {partition}",
        [sys.executable, "-m", "firehose_consumer"],
        env={**env, "CONSUMER_PARTITION": str(partition),
             "CONSUMER_METRICS_PORT": str(metrics_port)},
        url=f"http://127.0.0.1:{metrics_port}",
        health_path="/health",
        log_path=log_path,
        cwd=ROOT,
    )  # fmt: skip


async def index_run(
    recording: Recording,
    url: str,
    backend: str,
    verify: bool,
    workdir: Path,
    *,
    partitions: int = 1,
) -> IndexRun:
    server, plc_port, stream_port = await _stream_server(recording, workdir)
    source = f"ws://127.0.0.1:{stream_port}"
    env = {
        "FIREHOSE_SERVICES": source, "DATABASE_URL": url,
        "DID_PLC_URL": f"http://127.0.0.1:{plc_port}", "CONSUMER_DEV_MODE": "true",
        "CONSUMER_START_CURSOR": "0",
        "CONSUMER_VERIFY_SIGNATURES": "true" if verify else "false", "PYTHONPATH": str(ROOT),
    }  # fmt: skip
    parts = [Partition(i, partitions) for i in range(partitions)]
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(server)
        consumers, started = [], 0.0
        for part in parts:  # the clock starts when the first one reads: it does not wait
            log_path = workdir / f"consumer-{backend}-{verify}-{part.index}.log"
            consumers.append(
                await stack.enter_async_context(_consumer_process(env, part, log_path))
            )
            started = started or time.perf_counter()
        await _until_cursors(url, [p.cursor_key(source) for p in parts], recording.frames)
        elapsed = time.perf_counter() - started
        cpu = sum(consumer.cpu_seconds() for consumer in consumers)
    return IndexRun(backend, verify, elapsed, cpu, recording.frames, recording.checkins, partitions)


async def sdk_peer_run(recording: Recording, workdir: Path) -> Measurement:
    server, _plc_port, stream_port = await _stream_server(recording, workdir)
    async with server:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scripts.bench.consumer", "sdk-peer",
            f"ws://127.0.0.1:{stream_port}/xrpc", str(recording.frames), cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await process.communicate()
        elapsed = time.perf_counter() - started
    found = int(out.decode().strip().splitlines()[-1])
    note = f"catch-up {elapsed:.1f} s; parse + filter + records, no verification, no database"
    return Measurement("index: events/s (catch-up)", "atproto SDK client (peer)",
                       recording.frames / elapsed, f"{note}; {found} check-ins seen")  # fmt: skip


def sdk_peer(base_uri: str, last_seq: int) -> None:
    """The peer: `FirehoseSubscribeReposClient` with the same filter and record reads."""
    from atproto import CAR
    from atproto_firehose import FirehoseSubscribeReposClient, parse_subscribe_repos_message

    client = FirehoseSubscribeReposClient({"cursor": 0}, base_uri=base_uri)
    found = 0

    def on_message(message: Any) -> None:
        nonlocal found
        commit = parse_subscribe_repos_message(message)
        ops = getattr(commit, "ops", None) or []
        wanted = [op for op in ops if op.path.startswith(CHECKIN_PREFIX) and op.cid]
        if wanted:
            car = CAR.from_bytes(commit.blocks)
            found += sum(1 for op in wanted if car.blocks.get(op.cid) is not None)
        if getattr(commit, "seq", 0) >= last_seq:
            client.stop()

    client.start(on_message)
    print(found)


async def index_section(recording: Recording, backends: Sequence[str], skip_peer: bool,
                        workdir: Path, partitions: int = 1) -> list[Measurement]:  # fmt: skip
    rows: list[Measurement] = []
    for backend in backends:
        for verify in (True, False):
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{workdir}/index-{verify}.sqlite"
                run = await index_run(
                    recording, url, backend, verify, workdir, partitions=partitions
                )
            else:
                from tests.pg import PgCluster, pg_available

                reason = pg_available()
                if reason is not None:
                    print(f"postgresql: skipped ({reason})")
                    break
                cluster = await asyncio.to_thread(PgCluster)
                try:
                    await asyncio.to_thread(cluster.start)
                    url = cluster.url(await asyncio.to_thread(cluster.create_database))
                    run = await index_run(
                        recording, url, backend, verify, workdir, partitions=partitions
                    )
                finally:
                    await asyncio.to_thread(cluster.destroy)
            print(f"  {backend}, signatures {'on' if verify else 'off'}: {run.seconds:.1f} s",
                  flush=True)  # fmt: skip
            rows += run.rows()
    if not skip_peer:
        rows.append(await sdk_peer_run(recording, workdir))
    return rows


def main(argv: Sequence[str] | None = None) -> list[Measurement]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkins", type=int, default=100_000)
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sections", default="decode,verify,writes,index")
    parser.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="consumer processes in the index section (CONSUMER_PARTITION i/N)",
    )
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1,000 check-ins, SQLite only")
    args = parser.parse_args(argv)
    if args.partitions < 1:
        parser.error("--partitions must be at least 1")
    if args.quick:
        args.checkins, args.repos, args.backends = 1000, 50, "sqlite"
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores",
          flush=True)  # fmt: skip
    started = time.perf_counter()
    recording = record(default_directory(args.checkins, args.repos), checkins=args.checkins,
                       repos=args.repos)  # fmt: skip
    print(f"stream: {recording.checkins:,} check-in commits + {recording.unrelated:,} unrelated "
          f"= {recording.frames:,} frames ({time.perf_counter() - started:.1f} s to record/load)",
          flush=True)  # fmt: skip
    sections = set(args.sections.split(","))
    rows: list[Measurement] = []
    frames = recording.load_frames() if sections & {"decode", "verify", "writes"} else []
    if "decode" in sections:
        rows += decode_section(recording, frames)
    if "verify" in sections:
        rows += verify_section(recording, frames)
    if "writes" in sections:
        with tempfile.TemporaryDirectory(prefix="skyspot-consumer-writes-") as scratch:
            rows += writes_section(recording, frames, Path(scratch))
    if "index" in sections:
        with tempfile.TemporaryDirectory(prefix="skyspot-consumer-bench-") as scratch:
            backends = [b.strip() for b in args.backends.split(",")]
            rows += asyncio.run(
                index_section(recording, backends, args.skip_peer, Path(scratch), args.partitions)
            )
    print_table(rows)
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "sdk-peer":
        sdk_peer(sys.argv[2], int(sys.argv[3]))
    else:
        main()
