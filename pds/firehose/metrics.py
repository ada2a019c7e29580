"""Prometheus metrics for the sequencer and the firehose, served at `/metrics`.

Each application gets its own `CollectorRegistry` (no process-global state, so several PDSes in
one process, as in tests, keep separate numbers):

- `pds_sequencer_head_seq`: the highest seq the firehose has broadcast;
- `pds_firehose_subscribers`: open `subscribeRepos` connections;
- `pds_firehose_events_total` and `pds_firehose_events_per_second` (mean over the last minute,
  for scrapers that do not compute `rate()` themselves);
- `pds_firehose_frames_sent_total`: frames written to subscribers (events x subscribers);
- `pds_firehose_slow_consumers_dropped_total`: subscribers cut off with `ConsumerTooSlow`;
- `pds_crawler_requests_total{outcome}`: `requestCrawl` notifications sent, by outcome;
- `pds_sequencer_pruned_events_total` and `pds_sequencer_pruned_through_seq`: events deleted by
  history pruning (`pds.firehose.pruner`), and the highest seq deleted so far.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST as CONTENT_TYPE

RATE_WINDOW_SECONDS: Final = 60
CONTENT_TYPE_LATEST: Final = CONTENT_TYPE


class RateMeter:
    """Events per second over a sliding window, in one-second buckets."""

    def __init__(
        self, window_seconds: int = RATE_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first

    def add(self, count: int) -> None:
        second = int(self._clock())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        self._expire(second)

    def per_second(self) -> float:
        self._expire(int(self._clock()))
        return sum(count for _, count in self._buckets) / self.window_seconds

    def _expire(self, now: int) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.window_seconds:
            self._buckets.popleft()


class FirehoseMetrics:
    """The firehose's instruments, registered in a registry of their own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rate = RateMeter(clock=clock)
        self.head_seq = Gauge(
            "pds_sequencer_head_seq",
            "Highest seq broadcast on the firehose",
            registry=self.registry,
        )
        self.subscribers = Gauge(
            "pds_firehose_subscribers", "Open subscribeRepos connections", registry=self.registry
        )
        self.events = Counter(
            "pds_firehose_events", "Events broadcast on the firehose", registry=self.registry
        )
        self.events_per_second = Gauge(
            "pds_firehose_events_per_second",
            f"Events broadcast per second, mean over the last {RATE_WINDOW_SECONDS} s",
            registry=self.registry,
        )
        self.events_per_second.set_function(self.rate.per_second)
        self.frames_sent = Counter(
            "pds_firehose_frames_sent", "Frames written to subscribers", registry=self.registry
        )
        self.slow_consumers_dropped = Counter(
            "pds_firehose_slow_consumers_dropped",
            "Subscribers disconnected with ConsumerTooSlow",
            registry=self.registry,
        )
        self.crawl_requests = Counter(
            "pds_crawler_requests",
            "requestCrawl notifications sent to crawlers",
            ["outcome"],
            registry=self.registry,
        )

        self.pruned_events = Counter(
            "pds_sequencer_pruned_events",
            "Events deleted from the firehose history (older than the backfill window)",
            registry=self.registry,
        )
        self.pruned_through = Gauge(
            "pds_sequencer_pruned_through_seq",
            "Highest seq deleted by history pruning (0: none)",
            registry=self.registry,
        )

    def pruned(self, count: int, through: int) -> None:
        self.pruned_events.inc(count)
        self.pruned_through.set(through)

    def broadcast(self, count: int, head: int) -> None:
        self.events.inc(count)
        self.rate.add(count)
        self.head_seq.set(head)

    def render(self) -> bytes:
        return generate_latest(self.registry)
