"""The feed generator's HTTP surface.

- `GET /xrpc/app.bsky.feed.describeFeedGenerator`: `{did, feeds: [{uri}], links?}` exactly as the
  lexicon says (`links` only when a privacy policy or terms URL is configured).
- `GET /xrpc/app.bsky.feed.getFeedSkeleton?feed=&limit=&cursor=`: `{feed: [{post, feedContext}],
  cursor?, reqId}`. `limit` defaults to 50 and is clamped to 1..100; a missing cursor means the
  end of the feed. Errors: 400 `InvalidRequest` (malformed parameters), 400 `UnknownFeed`, 400
  `BadCursor`, 401 for an invalid service JWT (named as the reference names it), 502 when the
  viewer's DID document cannot be fetched.
- `GET /.well-known/did.json`: our did:web document with `#bsky_fg` (404 for a did:plc identity).
- `GET /xrpc/_health`: `{version}` when the index answers, 503 otherwise.
- `GET /metrics`: Prometheus text format.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import uuid
from importlib import metadata
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from atcore import nsids
from atcore.syntax import InvalidSyntax, parse_at_uri
from atcore.xrpc import (
    AuthenticationRequired,
    InvalidRequest,
    NotEnoughResources,
    UpstreamFailure,
    require_bearer_token,
)
from feedgen.algos import UnknownFeed
from feedgen.algos.nearby import MAX_LIMIT, SkeletonPage
from feedgen.auth import AuthError, AuthUnavailable
from feedgen.context import context_of
from feedgen.cursor import BadCursor
from feedgen.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

DEFAULT_LIMIT: Final = 50
_INTEGER: Final = re.compile(r"-?[0-9]{1,18}").fullmatch
MIN_LIMIT: Final = 1
INDEX_ERRORS: Final = (
    SQLAlchemyError,
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


def add_routes(app: web.Application) -> None:
    app.add_routes(
        [
            web.get(nsids.xrpc_path(nsids.BSKY_FEED_DESCRIBE_FEED_GENERATOR), describe),
            web.get(nsids.xrpc_path(nsids.BSKY_FEED_GET_FEED_SKELETON), get_feed_skeleton),
            web.get("/.well-known/did.json", did_document),
            web.get("/xrpc/_health", health),
            web.get("/metrics", metrics),
        ]
    )


async def describe(request: web.Request) -> web.Response:
    ctx = context_of(request)
    body: dict[str, Any] = {
        "did": ctx.settings.service_did,
        "feeds": [{"uri": feed.uri} for feed in ctx.registry.feeds],
    }
    links = {
        name: url
        for name, url in (
            ("privacyPolicy", ctx.settings.privacy_policy_url),
            ("termsOfService", ctx.settings.terms_of_service_url),
        )
        if url
    }
    if links:
        body["links"] = links
    return web.json_response(body)


async def get_feed_skeleton(request: web.Request) -> web.Response:
    ctx = context_of(request)
    feed_uri, limit, cursor = _skeleton_params(request)
    try:
        viewer = await ctx.auth.viewer(request.headers.get("Authorization"))
    except AuthUnavailable as exc:
        raise UpstreamFailure(str(exc)) from None
    except AuthError as exc:
        ctx.metrics.viewers.labels(kind="rejected").inc()
        raise AuthenticationRequired(str(exc), error=exc.name) from None
    ctx.metrics.viewers.labels(kind="anonymous" if viewer is None else "verified").inc()
    try:
        feed = ctx.registry.lookup(feed_uri)
        page = await ctx.feeds.page(feed, viewer, limit, cursor)
    except UnknownFeed as exc:
        raise InvalidRequest(str(exc), error="UnknownFeed") from None
    except BadCursor as exc:
        raise InvalidRequest(str(exc), error="BadCursor") from None
    return web.json_response(_skeleton_body(page))


def _skeleton_params(request: web.Request) -> tuple[str, int, str | None]:
    query = request.query
    feed = query.get("feed")
    if not feed:
        raise InvalidRequest('Error: Params must have the property "feed"')
    try:
        parse_at_uri(feed)
    except InvalidSyntax:
        raise InvalidRequest("Error: feed must be a valid at-uri") from None
    return feed, _limit(query.get("limit")), query.get("cursor") or None


def _limit(raw: str | None) -> int:
    """The page size: 50 when absent, clamped to 1..100; not an integer is a 400."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if _INTEGER(raw) is None:
        raise InvalidRequest("Error: limit must be an integer") from None
    return max(MIN_LIMIT, min(MAX_LIMIT, int(raw)))


def _skeleton_body(page: SkeletonPage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "feed": [{"post": item.post, "feedContext": item.feed_context} for item in page.items],
        "reqId": uuid.uuid4().hex,  # per response, cached first pages included
    }
    if page.cursor is not None:
        body["cursor"] = page.cursor
    return body


async def did_document(request: web.Request) -> web.Response:
    document = context_of(request).did_document
    if document is None:
        raise web.HTTPNotFound(text="this feed generator is not a did:web")
    return web.json_response(document)


async def health(request: web.Request) -> web.Response:
    try:
        await context_of(request).reader.ping()
    except INDEX_ERRORS as exc:
        log.warning("health check: index unavailable: %s", exc)
        raise NotEnoughResources("index unavailable") from None
    return web.json_response({"version": _version()})


async def metrics(request: web.Request) -> web.Response:
    ctx = context_of(request)
    require_bearer_token(request, ctx.settings.metrics_token, "/metrics")
    body = ctx.metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def _version() -> str:
    try:
        return metadata.version("skyspot")
    except metadata.PackageNotFoundError:
        return "unknown"
