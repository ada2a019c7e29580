"""Everything a request handler needs, built once at startup: `FeedgenContext` under `CONTEXT`.

`build_context` opens the index read-only, the shared HTTP session and the DID resolver, and wires
the auth verifier, the feed registry and the ranking on top; `close_context` releases them in
reverse. `feedgen.app` runs both around the application's life.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from atcore.identity import FEED_GENERATOR_SERVICE, DidResolver, service_did_document
from atcore.index import Backend, create_index_engine, parse_database_url
from feedgen.algos import FeedRegistry
from feedgen.algos.nearby import NearbyFeeds, RankingConfig
from feedgen.auth import ServiceAuthVerifier
from feedgen.db.engine_reader import EngineReader
from feedgen.db.pg_reader import PgReader
from feedgen.db.queries import IndexReader
from feedgen.db.sqlite_reader import SqliteReader
from feedgen.metrics import Metrics
from feedgen.settings import FeedgenSettings

READ_POOL_SIZE: Final = 8


@dataclass(slots=True)
class FeedgenContext:
    settings: FeedgenSettings
    http: aiohttp.ClientSession
    resolver: DidResolver
    auth: ServiceAuthVerifier
    registry: FeedRegistry
    reader: IndexReader
    feeds: NearbyFeeds
    metrics: Metrics
    did_document: dict[str, Any] | None  # served at /.well-known/did.json when we are a did:web


CONTEXT: Final = web.AppKey("feedgen_context", FeedgenContext)


def context_of(request: web.Request) -> FeedgenContext:
    return request.app[CONTEXT]


def ranking_config(settings: FeedgenSettings) -> RankingConfig:
    return RankingConfig(
        window_ms=settings.freshness_window_ms,
        penalties=settings.band_penalties_ms,
        page_cache_seconds=settings.page_cache_seconds,
    )


def own_did_document(settings: FeedgenSettings) -> dict[str, Any] | None:
    """Our did:web document (`#bsky_fg` -> the public URL); None for a did:plc identity."""
    if not settings.uses_did_web:
        return None
    document = service_did_document(
        settings.service_did, services={FEED_GENERATOR_SERVICE: settings.public_url}
    )
    return document.to_json()


def open_reader(database_url: str, *, sqlite_threads: int = 2) -> IndexReader:
    """The index, read only: PostgreSQL and CockroachDB through `PgReader` (asyncpg), a SQLite
    file through `SqliteReader`, an in-memory SQLite index through an engine."""
    backend, url = parse_database_url(database_url)
    if backend is not Backend.SQLITE:
        return PgReader(url, pool_size=READ_POOL_SIZE)
    if url.database and url.database != ":memory:":
        return SqliteReader(Path(url.database), threads=sqlite_threads)
    return EngineReader(create_index_engine(url, read_only=True, pool_size=READ_POOL_SIZE))


async def build_context(settings: FeedgenSettings, metrics: Metrics) -> FeedgenContext:
    reader = open_reader(settings.database_url, sqlite_threads=settings.db_threads)
    http = aiohttp.ClientSession()
    resolver = DidResolver(
        session=http, plc_url=settings.did_plc_url, allow_http_loopback=settings.dev_mode
    )
    return FeedgenContext(
        settings=settings,
        http=http,
        resolver=resolver,
        auth=ServiceAuthVerifier(service_did=settings.service_did, keys=resolver),
        registry=FeedRegistry.from_settings(settings),
        reader=reader,
        feeds=NearbyFeeds(reader, ranking_config(settings), metrics=metrics),
        metrics=metrics,
        did_document=own_did_document(settings),
    )


async def close_context(ctx: FeedgenContext) -> None:
    await ctx.resolver.aclose()
    await ctx.http.close()
    await ctx.reader.close()
