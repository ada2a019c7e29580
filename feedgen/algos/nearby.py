"""Serving pages of the "nearby" ranking: anchor, bands, cursor, first-page cache.

A request without a cursor starts a read: the anchor is the feed's fixed point (region feeds) or
the viewer's latest visible check-in (None for anonymous viewers and viewers without one, which
gives the global feed, newest first); page 1's time is now. That `RankingPlan` travels in the
cursor, so every later page is computed against the same anchor, time and penalties.

A page asks the bands one at a time, most promising first, and stops as soon as the page is full
and the next band cannot place a row in it (`RankingPlan.search`, run by the index reader). With
strict banding a page inside the near band never touches the world band, whose scan would skip
over every nearer check-in.

Hot first pages (the app polls with `limit=1`) come from a short-lived cache keyed by (feed,
anchor, limit), so viewers at the same anchor share them, and concurrent misses share one
computation; the viewer-to-anchor lookup is cached for the same short time.

Each item's `feedContext` names its band and distance (`band=near;km=1.3`, `band=global`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from atcore.identity.cache import SingleFlight, TtlCache
from feedgen.algos import FeedDefinition
from feedgen.algos.bands import BAND_NAMES, GLOBAL_NAME, Anchor, distance_km
from feedgen.algos.order import FeedRow, Position, RankingPlan
from feedgen.cursor import Cursor, decode_cursor, encode_cursor
from feedgen.db.queries import IndexReader
from feedgen.metrics import Metrics

CACHE_SIZE: Final = 10_000
MAX_LIMIT: Final = 100

Clock = Callable[[], int]
"""Wall-clock time in epoch milliseconds."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SkeletonItem:
    post: str
    feed_context: str


@dataclass(frozen=True, slots=True)
class SkeletonPage:
    items: tuple[SkeletonItem, ...]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class RankingConfig:
    window_ms: int
    penalties: tuple[int, ...] | None  # None: strict banding
    page_cache_seconds: float


FirstPageKey = tuple[str, Anchor | None, int]


class NearbyFeeds:
    """Pages of every feed the registry defines (they differ only in their anchor)."""

    def __init__(
        self,
        reader: IndexReader,
        config: RankingConfig,
        *,
        metrics: Metrics | None = None,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self._reader = reader
        self._config = config
        self._metrics = metrics
        self._clock = clock
        ttl = config.page_cache_seconds
        self._anchors: TtlCache[str, tuple[Anchor | None]] | None = None
        self._first_pages: TtlCache[FirstPageKey, SkeletonPage] | None = None
        if ttl > 0:
            self._anchors = TtlCache(max_size=CACHE_SIZE, ttl=ttl)
            self._first_pages = TtlCache(max_size=CACHE_SIZE, ttl=ttl)
        self._flights: SingleFlight[FirstPageKey, SkeletonPage] = SingleFlight()

    async def page(
        self, feed: FeedDefinition, viewer: str | None, limit: int, cursor: str | None
    ) -> SkeletonPage:
        """One page; `cursor` None starts a read. Raises `BadCursor` for a foreign cursor."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be within 1..{MAX_LIMIT}")
        if cursor is not None:
            resumed = decode_cursor(cursor, feed.uri)
            return await self._serve(feed, resumed.plan, resumed.last, limit)
        anchor = feed.fixed_anchor or (await self._viewer_anchor(viewer) if viewer else None)
        key: FirstPageKey = (feed.uri, anchor, limit)
        cached = self._first_pages.get(key) if self._first_pages is not None else None
        self._count_cache(cached is not None)
        if cached is not None:
            return cached
        return await self._flights.run(key, lambda: self._first_page(feed, anchor, limit, key))

    async def _first_page(
        self, feed: FeedDefinition, anchor: Anchor | None, limit: int, key: FirstPageKey
    ) -> SkeletonPage:
        config = self._config
        plan = RankingPlan.build(
            t0_ms=self._clock(),
            window_ms=config.window_ms,
            anchor=anchor,
            penalties=config.penalties,
        )
        page = await self._serve(feed, plan, None, limit)
        if self._first_pages is not None:
            self._first_pages.put(key, page)
        return page

    async def _viewer_anchor(self, viewer: str) -> Anchor | None:
        if self._anchors is not None:
            cached = self._anchors.get(viewer)
            if cached is not None:
                return cached[0]
        anchor = await self._reader.latest_anchor(viewer)
        if self._anchors is not None:
            self._anchors.put(viewer, (anchor,))
        return anchor

    async def _serve(
        self, feed: FeedDefinition, plan: RankingPlan, last: Position | None, limit: int
    ) -> SkeletonPage:
        rows = await self._rows(plan, last, limit)
        items = tuple(SkeletonItem(row.post_uri, feed_context(plan, row)) for row in rows)
        next_cursor = None
        if len(rows) == limit:
            next_cursor = encode_cursor(Cursor(plan, rows[-1].position), feed.uri)
        return SkeletonPage(items, next_cursor)

    async def _rows(self, plan: RankingPlan, last: Position | None, limit: int) -> list[FeedRow]:
        result = await self._reader.page(plan, last, limit)
        if self._metrics is not None:
            for band in result.bands_asked:
                self._metrics.band_queries.labels(band=band_name(plan, band)).inc()
        return result.rows

    def _count_cache(self, hit: bool) -> None:
        if self._metrics is not None and self._first_pages is not None:
            self._metrics.first_page_cache.labels(result="hit" if hit else "miss").inc()


def band_name(plan: RankingPlan, band: int) -> str:
    return BAND_NAMES[band] if plan.anchor is not None else GLOBAL_NAME


def feed_context(plan: RankingPlan, row: FeedRow) -> str:
    if plan.anchor is None:
        return f"band={GLOBAL_NAME}"
    km = distance_km(plan.anchor, row.lat_e6, row.lon_e6)
    return f"band={BAND_NAMES[row.band]};km={km:.1f}"
