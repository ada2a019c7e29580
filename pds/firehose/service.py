"""The firehose as one service of the PDS: fanout, crawler notices, metrics, open connections.

`Firehose` is built from the application context (database, sequencer signal, HTTP session,
settings) once the context exists; `pds.firehose.app` runs it with the application and stores it
under `FIREHOSE`. Tuning lives in `FirehoseConfig`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import WSCloseCode, web

from pds.context import AppContext
from pds.db.engine import Database
from pds.firehose.crawlers import MIN_INTERVAL_SECONDS, CrawlerNotifier
from pds.firehose.fanout import DEFAULT_IDLE_POLL_SECONDS, Fanout
from pds.firehose.metrics import FirehoseMetrics
from pds.firehose.outbox import DEFAULT_PAGE_SIZE, Subscription
from pds.sequencer import now_ms
from pds.settings import (
    DEFAULT_FIREHOSE_BUFFER_BYTES,
    DEFAULT_FIREHOSE_BUFFER_EVENTS,
    PdsSettings,
)

_HOUR_MS: Final = 3_600_000
_CLOSE_TIMEOUT_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class FirehoseConfig:
    """Firehose tuning. Buffers hold references to shared frames, so the byte bound is about
    how much one stalled subscriber can keep alive, not a per-subscriber copy."""

    backfill_window_hours: int = 72
    buffer_events: int = DEFAULT_FIREHOSE_BUFFER_EVENTS
    buffer_bytes: int = DEFAULT_FIREHOSE_BUFFER_BYTES
    page_size: int = DEFAULT_PAGE_SIZE
    idle_poll_seconds: float = DEFAULT_IDLE_POLL_SECONDS
    crawl_interval_seconds: float = MIN_INTERVAL_SECONDS
    heartbeat_seconds: float = 30.0
    send_timeout_seconds: float = 10.0


class Firehose:
    """Everything `subscribeRepos` needs, alive for the application's lifetime."""

    def __init__(
        self,
        ctx: AppContext,
        config: FirehoseConfig,
        *,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.db: Database = ctx.db
        self.config = config
        self.metrics = FirehoseMetrics()
        self.fanout = Fanout(
            ctx.db,
            ctx.sequencer.signal,
            self.metrics,
            page_size=config.page_size,
            idle_poll_seconds=config.idle_poll_seconds,
        )
        self.crawlers = CrawlerNotifier(
            ctx.http,
            ctx.settings.hostname,
            ctx.settings.crawlers,
            self.metrics,
            min_interval=config.crawl_interval_seconds,
        )
        self._signal = ctx.sequencer.signal
        self._clock_ms = clock_ms
        self._connections: set[web.WebSocketResponse] = set()
        self._remove_crawl_listener: Callable[[], None] | None = None

    def window_start_ms(self) -> int:
        """The oldest `sequenced_at` a replay still reaches."""
        return self._clock_ms() - self.config.backfill_window_hours * _HOUR_MS

    @classmethod
    def config_for(cls, app: web.Application, settings: PdsSettings) -> FirehoseConfig:
        """The config put under `FIREHOSE_CONFIG` (tests), else the one the settings describe."""
        return app.get(FIREHOSE_CONFIG) or FirehoseConfig(
            backfill_window_hours=settings.backfill_window_hours,
            buffer_events=settings.firehose_buffer_events,
            buffer_bytes=settings.firehose_buffer_bytes,
        )

    def subscribe(self) -> Subscription:
        return self.fanout.subscribe(self.config.buffer_events, self.config.buffer_bytes)

    def track(self, ws: web.WebSocketResponse) -> None:
        self._connections.add(ws)

    def untrack(self, ws: web.WebSocketResponse) -> None:
        self._connections.discard(ws)

    async def start(self) -> None:
        await self.fanout.start()
        self.crawlers.notify_of_update()
        self._remove_crawl_listener = self._signal.add_listener(self.crawlers.notify_of_update)

    async def close_connections(self) -> None:
        """Tell every subscriber we are going away (their handlers then return)."""
        connections = list(self._connections)
        for ws in connections:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
                    await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    async def close(self) -> None:
        if self._remove_crawl_listener is not None:
            self._remove_crawl_listener()
            self._remove_crawl_listener = None
        await self.fanout.stop()
        await self.crawlers.close()


FIREHOSE: Final = web.AppKey("pds_firehose", Firehose)
FIREHOSE_CONFIG: Final = web.AppKey("pds_firehose_config", FirehoseConfig)


def firehose_of(request: web.Request) -> Firehose:
    return request.app[FIREHOSE]
