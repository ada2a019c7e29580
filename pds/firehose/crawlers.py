"""Telling relays (`PDS_CRAWLERS`) that this PDS has news: `com.atproto.sync.requestCrawl`.

As the reference PDS does, we notify every configured crawler at startup and after writes, but
at most once per `min_interval` (20 minutes): a relay that has started crawling us stays
subscribed, so the reminder only matters for a relay that forgot us. Notifications run in the
background and never delay a write; a crawler that fails is logged and counted, and retried at
the next notification.

Errors: `CrawlerConfigError` (a `ValueError`) for a crawler entry that is not an http(s) URL or
a bare host name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from atcore import nsids
from pds.firehose.metrics import FirehoseMetrics

log = logging.getLogger(__name__)

MIN_INTERVAL_SECONDS: Final = 20 * 60
REQUEST_TIMEOUT_SECONDS: Final = 10.0


class CrawlerConfigError(ValueError):
    """A `PDS_CRAWLERS` entry is not a usable crawler address."""


def crawler_url(entry: str) -> str:
    """The requestCrawl URL for a crawler given as a URL or a bare host (https assumed)."""
    base = entry.strip()
    if "://" not in base:
        base = f"https://{base}"
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CrawlerConfigError(f"crawler {entry!r} is not an http(s) URL or a host name")
    if parts.query or parts.fragment:
        raise CrawlerConfigError(f"crawler {entry!r} must not carry a query or fragment")
    return base.rstrip("/") + nsids.xrpc_path(nsids.SYNC_REQUEST_CRAWL)


class CrawlerNotifier:
    """Sends `requestCrawl` for `hostname` to every crawler, at most once per interval."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        hostname: str,
        crawlers: Sequence[str],
        metrics: FirehoseMetrics,
        *,
        min_interval: float = MIN_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.hostname = hostname
        self.urls = [crawler_url(entry) for entry in crawlers]
        self.metrics = metrics
        self.min_interval = min_interval
        self._clock = clock
        self._last_sent: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def notify_of_update(self) -> None:
        """Notify the crawlers unless that was done less than `min_interval` ago."""
        if not self.urls:
            return
        now = self._clock()
        if self._last_sent is not None and now - self._last_sent < self.min_interval:
            return
        self._last_sent = now
        self._spawn(self._notify_all())

    async def _notify_all(self) -> None:
        await asyncio.gather(*(self._notify(url) for url in self.urls))

    async def _notify(self, url: str) -> None:
        try:
            async with self.http.post(
                url,
                json={"hostname": self.hostname},
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            ) as response:
                await response.read()
                if response.status >= 400:
                    log.warning("requestCrawl to %s answered %d", url, response.status)
                    self.metrics.crawl_requests.labels(outcome="rejected").inc()
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("requestCrawl to %s failed: %s", url, exc)
            self.metrics.crawl_requests.labels(outcome="error").inc()
            return
        self.metrics.crawl_requests.labels(outcome="ok").inc()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work, name="request-crawl")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for notifications in flight (each is bounded by its timeout)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
