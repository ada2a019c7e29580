"""`com.atproto.sync.subscribeRepos`: the firehose over WebSocket (binary DAG-CBOR frames).

Before upgrading, the query is checked: a malformed `cursor` is an XRPC `InvalidRequest` (400),
a request that is not a WebSocket upgrade gets 426. After the upgrade every problem is an error
frame followed by a close, as the event-stream spec asks: `FutureCursor` for a cursor above the
head seq, `ConsumerTooSlow` for a subscriber whose buffer overflowed. A cursor older than the
backfill window first gets an `#info` `OutdatedCursor` message.

A connection runs three things at once: the sender (replay, then live), a reader that discards
whatever the client sends and notices when it goes away, and a watch on the subscription's
too-slow flag, which can fire while the sender is stuck writing to a stalled socket. The first
to finish ends the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Final

from aiohttp import WSCloseCode, web

from atcore import frames, nsids
from atcore.xrpc import InvalidRequest, json_error_response
from pds.firehose.events import info_frame
from pds.firehose.outbox import FirehoseError, StartPlan, Subscription, plan_start, replay
from pds.firehose.service import FIREHOSE, Firehose

log = logging.getLogger(__name__)

MAX_CURSOR: Final = 2**63 - 1
_DIGITS: Final = re.compile(r"[0-9]{1,19}")
_CLIENT_MESSAGE_LIMIT: Final = 64 * 1024
OUTDATED_CURSOR_MESSAGE: Final = "Requested cursor exceeded limit. Possibly missing events"


def add_routes(app: web.Application) -> None:
    path = nsids.xrpc_path(nsids.SYNC_SUBSCRIBE_REPOS)
    app.router.add_get(path, subscribe_repos, allow_head=False)


def parse_cursor(request: web.Request) -> int | None:
    """The `cursor` query parameter: absent, or one non-negative integer."""
    values = request.query.getall("cursor", [])
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("Params/cursor must be a single value")
    raw = values[0]
    if _DIGITS.fullmatch(raw) is None or int(raw) > MAX_CURSOR:
        raise InvalidRequest("Params/cursor must be a non-negative integer")
    return int(raw)


async def subscribe_repos(request: web.Request) -> web.StreamResponse:
    firehose = request.app[FIREHOSE]
    cursor = parse_cursor(request)
    ws = web.WebSocketResponse(
        heartbeat=firehose.config.heartbeat_seconds,
        compress=False,  # deflating every frame per subscriber costs more CPU than it saves
        max_msg_size=_CLIENT_MESSAGE_LIMIT,
    )
    if not ws.can_prepare(request).ok:
        return json_error_response(426, "InvalidRequest", "Upgrade Required: use a WebSocket")
    await ws.prepare(request)
    firehose.track(ws)
    subscription = firehose.subscribe()
    try:
        await _serve(firehose, ws, subscription, cursor)
    finally:
        firehose.fanout.unsubscribe(subscription)
        firehose.untrack(ws)
        await _close(ws, request, firehose.config.send_timeout_seconds)
    return ws


async def _serve(
    firehose: Firehose, ws: web.WebSocketResponse, subscription: Subscription, cursor: int | None
) -> None:
    timeout = firehose.config.send_timeout_seconds
    try:
        async with firehose.db.read() as conn:
            plan = await plan_start(conn, cursor, firehose.window_start_ms())
    except FirehoseError as exc:
        await _send_error(ws, exc.name, str(exc), timeout)
        return
    tasks = {
        asyncio.create_task(_pump(firehose, ws, subscription, plan)),
        asyncio.create_task(_discard_client_messages(ws)),
        asyncio.create_task(subscription.too_slow.wait()),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if subscription.too_slow.is_set():
        await _send_error(ws, "ConsumerTooSlow", "Stream consumer too slow", timeout)
        return
    for task in done:
        failure = None if task.cancelled() else task.exception()
        if failure is not None and not isinstance(failure, ConnectionError):
            log.error("firehose subscription failed", exc_info=failure)


async def _pump(
    firehose: Firehose, ws: web.WebSocketResponse, subscription: Subscription, plan: StartPlan
) -> None:
    """Send the replay, then live events, until something stops it."""
    if plan.outdated:
        await ws.send_bytes(info_frame("OutdatedCursor", OUTDATED_CURSOR_MESSAGE))
    frames_sent = firehose.metrics.frames_sent
    page_size = firehose.config.page_size
    async for batch in replay(firehose.db, subscription, plan.start_after, page_size=page_size):
        for event in batch:
            await ws.send_bytes(event.frame)
        frames_sent.inc(len(batch))


async def _discard_client_messages(ws: web.WebSocketResponse) -> None:
    """Servers ignore client frames (spec); returns once the client has closed or gone."""
    async for _message in ws:
        pass


async def _send_error(ws: web.WebSocketResponse, name: str, message: str, seconds: float) -> None:
    """The last frame of a connection; bounded, since the peer may have stopped reading."""
    if ws.closed:
        return
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(seconds):
            await ws.send_bytes(frames.encode_error(name, message))


async def _close(ws: web.WebSocketResponse, request: web.Request, seconds: float) -> None:
    """Close politely, or drop the TCP connection of a peer that no longer reads."""
    if ws.closed:
        return
    try:
        async with asyncio.timeout(seconds):
            await ws.close(code=WSCloseCode.OK)
    except (ConnectionError, TimeoutError):
        if request.transport is not None:
            request.transport.abort()
