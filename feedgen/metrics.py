"""The feed generator's Prometheus metrics, in a registry of their own (one per application).

- `feedgen_requests_total{method, status}` and `feedgen_request_seconds{method}`: every XRPC call.
- `feedgen_first_page_cache_total{result}`: `hit` / `miss` of the hot first-page cache.
- `feedgen_band_queries_total{band}`: band statements actually run (pruned bands are not).
- `feedgen_viewers_total{kind}`: `anonymous`, `verified`, `rejected` service JWTs.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """All collectors, registered in a private registry (tests may build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "feedgen_requests",
            "XRPC requests by method and HTTP status",
            ["method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "feedgen_request_seconds",
            "XRPC request latency",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_page_cache = Counter(
            "feedgen_first_page_cache",
            "First-page cache lookups",
            ["result"],
            registry=self.registry,
        )
        self.band_queries = Counter(
            "feedgen_band_queries",
            "Band statements run against the index",
            ["band"],
            registry=self.registry,
        )
        self.viewers = Counter(
            "feedgen_viewers",
            "getFeedSkeleton callers by kind of authentication",
            ["kind"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
