"""Prometheus metrics of the consumer, on a registry of its own (no global state).

Exposed at `/metrics` on `CONSUMER_METRICS_PORT` (with `/health`):

- `firehose_partition_info{partition}`: 1, labelled with this process's `CONSUMER_PARTITION`
  (`0/1` when not partitioned), to tell the processes of a partitioned consumer apart;
- `firehose_lag_seconds{source}`: now minus the `time` of the last event processed;
- `firehose_events_total{source,type}` (rate() gives events/s) and
  `firehose_events_per_second{source}`, the rate over the last few seconds, for a quick look;
- `firehose_cursor{source}`: the committed watermark seq;
- `firehose_queue_depth`, `firehose_inflight_events`: frames waiting, events in processing;
- `index_batch_seconds`, `index_batch_events`: write latency and size per batch;
- `firehose_reconnects_total{source,reason}`, `firehose_stream_errors_total{source,error}`;
- `firehose_invalid_total{reason}`: rejected frames, events and records;
- `firehose_verification_failures_total{reason}`: bad signatures, broken chains, inversion;
- `index_write_retries_total{kind}`: serialization failures / database unavailable;
- `firehose_resyncs_total{outcome}`, `firehose_future_cursor{source}` (1 = stopped: alert).

`source` is the service URL, except on the per-partition series - lag, events, cursor - where it
is the partition's cursor key (`<URL>#partition=i/n` when n > 1), so each partition's lag and
cursor can be watched and compared; the reader's series (events/s, reconnects, error frames,
future cursor) are about the connection, which every partition has, and keep the bare URL.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_RATE_WINDOW_S: Final = 10.0


class ConsumerMetrics:
    def __init__(self, partition: str = "0/1") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.partition = Gauge("firehose_partition_info", "This process's CONSUMER_PARTITION",
                               ["partition"], registry=r)  # fmt: skip
        self.partition.labels(partition).set(1)
        self.lag = Gauge("firehose_lag_seconds", "now - time of the last processed event",
                         ["source"], registry=r)  # fmt: skip
        self.events = Counter("firehose_events", "Events received", ["source", "type"], registry=r)
        self.events_per_second = Gauge(
            "firehose_events_per_second", "Events/s over the last seconds", ["source"], registry=r
        )
        self.cursor = Gauge("firehose_cursor", "Committed cursor (watermark seq)", ["source"],
                            registry=r)  # fmt: skip
        self.queue_depth = Gauge("firehose_queue_depth", "Frames waiting to be decoded", registry=r)
        self.inflight = Gauge("firehose_inflight_events", "Events being processed", registry=r)
        self.batch_seconds = Histogram(
            "index_batch_seconds", "Time to write one batch", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        self.batch_events = Histogram(
            "index_batch_events", "Events per written batch", registry=r,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
        )  # fmt: skip
        self.reconnects = Counter("firehose_reconnects", "Reconnections", ["source", "reason"],
                                  registry=r)  # fmt: skip
        self.stream_errors = Counter("firehose_stream_errors", "Error frames received",
                                     ["source", "error"], registry=r)  # fmt: skip
        self.invalid = Counter("firehose_invalid", "Rejected frames, events and records",
                               ["reason"], registry=r)  # fmt: skip
        self.verification_failures = Counter(
            "firehose_verification_failures", "Commits failing verification", ["reason"],
            registry=r,
        )  # fmt: skip
        self.write_retries = Counter("index_write_retries", "Batch write retries", ["kind"],
                                     registry=r)  # fmt: skip
        self.resyncs = Counter("firehose_resyncs", "Repository resyncs", ["outcome"], registry=r)
        self.future_cursor = Gauge("firehose_future_cursor", "1 when a source refused our cursor",
                                   ["source"], registry=r)  # fmt: skip
        self.skipped = Counter("firehose_skipped", "Events not for the index", ["reason"],
                               registry=r)  # fmt: skip
        self._arrivals: dict[str, deque[tuple[float, int]]] = {}

    def event_received(self, source: str, kind: str) -> None:
        self.events.labels(source, kind).inc()

    def observe_time(self, source: str, event_time_s: float | None) -> None:
        if event_time_s is not None:
            self.lag.labels(source).set(max(0.0, time.time() - event_time_s))

    def count_frames(self, source: str, count: int) -> None:
        """Feed the events/s gauge (called by the reader with frames received since last call)."""
        now = time.monotonic()
        window = self._arrivals.setdefault(source, deque())
        window.append((now, count))
        while window and window[0][0] < now - _RATE_WINDOW_S:
            window.popleft()
        span = max(now - window[0][0], 1.0)
        self.events_per_second.labels(source).set(sum(c for _, c in window) / span)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_app(metrics: ConsumerMetrics) -> web.Application:
    async def serve_metrics(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/health", health)
    return app
