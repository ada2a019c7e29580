"""The plc.directory HTTP API.

POST /{did}             submit a signed operation (200 on success or exact duplicate)
GET  /{did}             the DID document (application/did+ld+json)
GET  /{did}/data        the PLC state: rotation keys, verification methods, aliases, services
GET  /{did}/log         the current chain of operations
GET  /{did}/log/audit   every operation, nullified ones included, with cid and createdAt
GET  /{did}/log/last    the latest current operation
GET  /export            JSON lines; `after=<seq>` gives `sequenced_op` lines, `after=<time>`
                        (or no `after`) the legacy createdAt-ordered form; `count` <= 1000
GET  /_health           {"version": ...}, 503 when the database does not answer

The legacy export pages by `createdAt`, so operations sharing the boundary millisecond can be
skipped between pages (plc.directory's legacy form has the same flaw); use `after=<seq>`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from atcore.identity.errors import PlcOperationError
from atcore.identity.plc import PlcDocumentData, document_data, is_plc_did, op_to_json
from atcore.identity.plc_parse import LogEntry, format_timestamp, parse_timestamp
from atcore.syntax import Did, is_valid_did
from pds.plc.store import PlcStore
from pds.plc.validate import parse_incoming_op

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Clock = Callable[[], datetime]

STORE_KEY: Final = web.AppKey("plc_store", PlcStore)
CLOCK_KEY: Final = web.AppKey[Clock]("plc_clock")
VERSION: Final = "skyspot-plc/0.1"
MAX_EXPORT_COUNT: Final = 1000
DID_DOCUMENT_TYPE: Final = "application/did+ld+json"


class PlcHttpError(Exception):
    """An error response: HTTP status plus the `message` plc.directory puts in its JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def add_routes(router: web.UrlDispatcher) -> None:
    # Fixed paths first: the router tries resources in registration order.
    router.add_get("/_health", health)
    router.add_get("/export", export)
    router.add_post("/{did}", submit_operation)
    router.add_get("/{did}", did_document)
    router.add_get("/{did}/data", did_data)
    router.add_get("/{did}/log", operation_log)
    router.add_get("/{did}/log/audit", audit_log)
    router.add_get("/{did}/log/last", last_operation)


# -- writes ---------------------------------------------------------------------------------------
async def submit_operation(request: web.Request) -> web.Response:
    did = _path_did(request)
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise PlcHttpError(400, f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # absurd nesting: the decoder gives up before we would
        raise PlcHttpError(400, "request body is not valid JSON: nested too deeply") from exc
    try:
        op = parse_incoming_op(body)
        result = await request.app[STORE_KEY].submit(did, op, request.app[CLOCK_KEY]())
    except PlcOperationError as exc:
        raise PlcHttpError(400, str(exc)) from exc
    if not result.duplicate:
        log.info("accepted %s for %s (nullified %d)", result.cid, did, len(result.nullified))
    return web.Response(status=200)


# -- reads ----------------------------------------------------------------------------------------
async def did_document(request: web.Request) -> web.Response:
    data = await _current_data(request)
    return web.json_response(data.to_document().to_json(), content_type=DID_DOCUMENT_TYPE)


async def did_data(request: web.Request) -> web.Response:
    data = await _current_data(request)
    return web.json_response(data.to_json())


async def operation_log(request: web.Request) -> web.Response:
    entries = await _log(request, include_nullified=False)
    return web.json_response([op_to_json(entry.operation) for entry in entries])


async def audit_log(request: web.Request) -> web.Response:
    entries = await _log(request, include_nullified=True)
    return web.json_response([entry.to_json() for entry in entries])


async def last_operation(request: web.Request) -> web.Response:
    entries = await _log(request, include_nullified=False)
    return web.json_response(op_to_json(entries[-1].operation))


async def export(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    count = _export_count(request.query.get("count"))
    after = request.query.get("after")
    lines: list[dict[str, Any]]
    if after is not None and after.isdigit():
        sequenced = await store.export_after_seq(int(after), count)
        lines = [
            {"type": "sequenced_op", **_export_fields(s.entry), "seq": s.seq} for s in sequenced
        ]
    else:
        since = _export_time(after)
        entries = await store.export_after_time(since, count)
        lines = [{**_export_fields(e), "nullified": e.nullified} for e in entries]
    body = "\n".join(json.dumps(line, separators=(",", ":")) for line in lines)
    return web.Response(text=body, content_type="application/jsonlines")


async def health(request: web.Request) -> web.Response:
    try:
        await request.app[STORE_KEY].check_health()
    except Exception:
        log.exception("PLC health check failed")
        return web.json_response({"version": VERSION, "error": "Service Unavailable"}, status=503)
    return web.json_response({"version": VERSION})


# -- helpers --------------------------------------------------------------------------------------
def _path_did(request: web.Request) -> Did:
    did = request.match_info["did"]
    if not is_valid_did(did):
        raise PlcHttpError(400, f"invalid DID: {did[:100]!r}")
    if not is_plc_did(did):
        raise PlcHttpError(400, f"not a did:plc identifier: {did[:100]!r}")
    return Did(did)


async def _log(request: web.Request, *, include_nullified: bool) -> list[LogEntry]:
    did = _path_did(request)
    entries = await request.app[STORE_KEY].log(did, include_nullified=include_nullified)
    if not entries:
        raise PlcHttpError(404, f"DID not registered: {did}")
    return entries


async def _current_data(request: web.Request) -> PlcDocumentData:
    entries = await _log(request, include_nullified=False)
    last = entries[-1]
    data = document_data(last.did, last.operation)
    if data is None:
        raise PlcHttpError(410, f"DID not available: {last.did}")
    return data


def _export_fields(entry: LogEntry) -> dict[str, Any]:
    return {
        "did": str(entry.did),
        "operation": op_to_json(entry.operation),
        "cid": str(entry.cid),
        "createdAt": format_timestamp(entry.created_at),
    }


def _export_count(raw: str | None) -> int:
    if raw is None:
        return MAX_EXPORT_COUNT
    if not raw.isdigit() or int(raw) < 1:
        raise PlcHttpError(400, "invalid count parameter: expected a positive integer")
    return min(int(raw), MAX_EXPORT_COUNT)


def _export_time(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_timestamp(raw)
    except PlcOperationError as exc:
        raise PlcHttpError(400, f"invalid after parameter: {raw[:40]!r}") from exc
