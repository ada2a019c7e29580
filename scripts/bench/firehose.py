"""Benchmark: firehose delivery to 1 and 50 subscribers, and commit-to-subscriber latency.

Run: `.venv/bin/python -m scripts.bench.firehose [--events N] [--live N] [--subscribers 1,50]`

Our PDS (`python -m pds`) and the local PLC directory run as their own processes; the driver
(this process) writes over HTTP and holds every subscriber. Two phases per subscriber count:

- replay: `--events` events are stored first; the subscribers connect together with `cursor=0`
  and read until the head. Events/s is per subscriber (events over the time the slowest one
  took) and in total (frames delivered over that time): the backfill path at full speed.
- live: the subscribers attach without a cursor, then `--live` posts are written at
  concurrency 8. Latency is from the event's `time` (stamped when it was sequenced, in the
  commit's transaction) to its arrival at a subscriber, on this machine's clock (millisecond
  resolution), pooled over all subscribers; events/s counts frames delivered while the writes
  and their delivery ran.

The server's CPU time per phase is shown as well: on a shared two-core machine the driver's own
decoding competes with the server, so wall-clock rates understate what the server can do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from atcore import frames, nsids
from scripts.bench._servers import RunningServer
from scripts.bench._util import percentile
from scripts.bench._write_load import Account, create_account, post_record
from scripts.bench.pds_writes import our_pds, plc_directory

WRITE_CONCURRENCY = 8
STREAM_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    subscribers: int
    events: int  # events each subscriber received
    seconds: float
    server_cpu_s: float
    latencies_ms: tuple[float, ...] = ()

    @property
    def per_subscriber_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def total_per_s(self) -> float:
        return self.events * self.subscribers / self.seconds


class Subscriber:
    """Counts frames until a seq; records arrival latencies against each event's `time`."""

    def __init__(self) -> None:
        self.received = 0
        self.last_seq = 0
        self.latencies_ms: list[float] = []
        self.finished_at = 0.0
        self.connected = asyncio.Event()

    async def run(
        self, ws_url: str, http: aiohttp.ClientSession, until: asyncio.Future[int]
    ) -> None:
        async with http.ws_connect(ws_url, max_msg_size=0) as ws:
            self.connected.set()
            async for message in ws:
                arrived = time.time()
                frame = frames.decode(message.data)
                if not isinstance(frame, frames.MessageFrame):
                    raise RuntimeError(f"error frame: {frame}")
                self.received += 1
                self.last_seq = frame.body["seq"]
                sequenced = datetime.fromisoformat(frame.body["time"]).timestamp()
                self.latencies_ms.append((arrived - sequenced) * 1000)
                if until.done() and self.last_seq >= until.result():
                    self.finished_at = time.perf_counter()
                    return


async def write_posts(
    http: aiohttp.ClientSession, pds_url: str, account: Account, count: int
) -> None:
    url = pds_url + nsids.xrpc_path(nsids.REPO_CREATE_RECORD)
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:
            body: dict[str, Any] = {
                "repo": account.did,
                "collection": "app.bsky.feed.post",
                "record": post_record(index),
            }
            async with http.post(url, json=body, headers=account.headers) as response:
                if response.status != 200:
                    raise RuntimeError(f"createRecord: {response.status} {await response.text()}")
                await response.read()

    await asyncio.gather(*(worker() for _ in range(WRITE_CONCURRENCY)))


async def metric(http: aiohttp.ClientSession, pds_url: str, name: str) -> float:
    """One unlabelled sample from the PDS's own `/metrics`."""
    async with http.get(pds_url + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"{name} missing from /metrics")


async def head_seq(http: aiohttp.ClientSession, pds_url: str) -> int:
    """The highest seq the firehose has broadcast."""
    return int(await metric(http, pds_url, "pds_sequencer_head_seq"))


async def settled_head(http: aiohttp.ClientSession, pds_url: str) -> int:
    """The head once the fanout has caught up with the writes (it stops moving)."""
    previous = -1
    while True:
        current = await head_seq(http, pds_url)
        if current == previous:
            return current
        previous = current
        await asyncio.sleep(0.2)


async def replay_phase(
    http: aiohttp.ClientSession, server: RunningServer, subscribers: int, head: int
) -> PhaseResult:
    ws_url = _ws_url(server.url) + "?cursor=0"
    until: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    until.set_result(head)
    subs = [Subscriber() for _ in range(subscribers)]
    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    async with asyncio.timeout(STREAM_TIMEOUT_S):
        await asyncio.gather(*(s.run(ws_url, http, until) for s in subs))
    seconds = max(s.finished_at for s in subs) - started
    _check(subs, head)
    return PhaseResult("replay", subscribers, head, seconds, server.cpu_seconds() - cpu_before)


async def live_phase(
    http: aiohttp.ClientSession,
    server: RunningServer,
    account: Account,
    subscribers: int,
    posts: int,
) -> PhaseResult:
    ws_url = _ws_url(server.url)
    start_head = await settled_head(http, server.url)
    until: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    until.set_result(start_head + posts)  # known up front: nothing else writes meanwhile
    subs = [Subscriber() for _ in range(subscribers)]
    tasks = [asyncio.create_task(s.run(ws_url, http, until)) for s in subs]
    await asyncio.gather(*(s.connected.wait() for s in subs))
    # Write only once the server has registered every subscription (and dropped the last
    # phase's), so each of them is owed every post.
    while await metric(http, server.url, "pds_firehose_subscribers") != subscribers:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    await write_posts(http, server.url, account, posts)
    async with asyncio.timeout(STREAM_TIMEOUT_S):
        await asyncio.gather(*tasks)
    seconds = max(s.finished_at for s in subs) - started
    cpu = server.cpu_seconds() - cpu_before
    _check(subs, start_head + posts)
    latencies = tuple(x for s in subs for x in s.latencies_ms)
    return PhaseResult("live", subscribers, posts, seconds, cpu, latencies)


def _check(subs: Sequence[Subscriber], head: int) -> None:
    for sub in subs:
        if sub.last_seq != head:
            raise RuntimeError(f"a subscriber stopped at seq {sub.last_seq}, not {head}")


def _ws_url(pds_url: str) -> str:
    return pds_url.replace("http://", "ws://") + nsids.xrpc_path(nsids.SYNC_SUBSCRIBE_REPOS)


async def run(
    workdir: Path, *, events: int, live: int, subscriber_counts: Sequence[int]
) -> list[PhaseResult]:
    results: list[PhaseResult] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        plc_directory(workdir) as plc_url,
        our_pds(workdir / "pds", plc_url) as server,
        aiohttp.ClientSession(connector=connector) as http,
    ):
        account = await create_account(http, server.url)
        await write_posts(http, server.url, account, max(0, events - 4))
        head = await settled_head(http, server.url)
        for count in subscriber_counts:
            results.append(await replay_phase(http, server, count, head))
        for count in subscriber_counts:
            results.append(await live_phase(http, server, account, count, live))
    return results


def format_results(results: Sequence[PhaseResult]) -> str:
    lines = [
        f"{'phase':<7} {'subs':>5} {'events':>7} {'ev/s/sub':>10} {'ev/s total':>11} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'server cpu s':>12}"
    ]
    for r in results:
        p50 = f"{percentile(r.latencies_ms, 50):7.1f}" if r.latencies_ms else f"{'-':>7}"
        p99 = f"{percentile(r.latencies_ms, 99):7.1f}" if r.latencies_ms else f"{'-':>7}"
        lines.append(
            f"{r.phase:<7} {r.subscribers:>5} {r.events:>7} {r.per_subscriber_per_s:>10,.0f} "
            f"{r.total_per_s:>11,.0f} {p50} {p99} {r.server_cpu_s:>12.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.firehose", description=__doc__)
    parser.add_argument("--events", type=int, default=2000, help="events stored before replay")
    parser.add_argument("--live", type=int, default=500, help="posts written in the live phase")
    parser.add_argument("--subscribers", default="1,50", help="comma-separated counts")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.subscribers.split(",") if part]
    with tempfile.TemporaryDirectory(prefix="bench-firehose-") as scratch:
        results = asyncio.run(
            run(Path(scratch), events=args.events, live=args.live, subscriber_counts=counts)
        )
    print(
        f"firehose: {args.events} stored events replayed; {args.live} live posts at "
        f"concurrency {WRITE_CONCURRENCY}"
    )
    print(format_results(results))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
