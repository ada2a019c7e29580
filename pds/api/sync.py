"""com.atproto.sync reads: repositories, commits, record proofs, blocks, blob listings, blobs.

Availability follows the reference PDS: an unknown DID is `RepoNotFound`; a taken-down or
deactivated account's repo is `RepoTakendown` / `RepoDeactivated`, except to the account itself
or the admin (optional `Authorization` on every read here, as in the reference). All of these are
400s with the lexicon's error name; malformed parameters are 400 `InvalidRequest`.

Large bodies stream: `getRepo` sends its CAR with chunked transfer straight from one consistent
read snapshot, and `getBlob` streams from the blob store with `Content-Length`, honouring a
single `Range` (206 with `Content-Range`, 416 when it starts past the end). Anything that can
fail is checked before the response starts, so errors are still JSON; a failure after that point
closes the connection, so the client sees a truncated body rather than a plausible one.

A blob is served with its sniffed type and headers that stop a browser from running it as a page
(`X-Content-Type-Options: nosniff`, a sandboxing `Content-Security-Policy`, and `attachment`
disposition, as in the reference).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Final, TypeVar

from aiohttp import web

from atcore import nsids
from atcore.car import write_car
from atcore.cid import CID, CidError
from atcore.syntax import InvalidSyntax, parse_did, parse_nsid, parse_record_key, parse_tid
from atcore.xrpc import InvalidRequest, json_error_response
from pds import ratelimit as rl
from pds.account_status import AccountStatus, status_of
from pds.api.params import optional_query_int, optional_query_str, query_str
from pds.auth.tokens import ACCESS_STANDARD, AuthScope
from pds.blobstore import BlobNotFound, RangeNotSatisfiable, parse_http_range
from pds.context import AppContext, context_of
from pds.db import accounts as account_sql
from pds.db import blobs as blob_sql
from pds.db import sync as sync_sql
from pds.db.accounts import AccountRow
from pds.repo.errors import RepoNotFound
from pds.repo.reader import RepoReader

log = logging.getLogger(__name__)

CAR_CONTENT_TYPE: Final = "application/vnd.ipld.car"
DEFAULT_LIST_LIMIT: Final = 500
MAX_LIST_LIMIT: Final = 1000
BLOB_SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
# Scopes that may read their own unavailable repo: every session, even a taken-down account's.
_OWNER_SCOPES: Final = ACCESS_STANDARD | {AuthScope.TAKENDOWN}

_T = TypeVar("_T")


def add_routes(app: web.Application) -> None:
    routes: list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        (nsids.SYNC_GET_REPO, get_repo),
        (nsids.SYNC_GET_LATEST_COMMIT, get_latest_commit),
        (nsids.SYNC_GET_RECORD, get_record),
        (nsids.SYNC_GET_BLOCKS, get_blocks),
        (nsids.SYNC_LIST_REPOS, list_repos),
        (nsids.SYNC_GET_REPO_STATUS, get_repo_status),
        (nsids.SYNC_LIST_BLOBS, list_blobs),
        (nsids.SYNC_GET_BLOB, get_blob),
    ]
    for nsid, handler in routes:
        app.router.add_get(nsids.xrpc_path(nsid), handler)


# -- parameters -------------------------------------------------------------------------------
def _syntax_param(request: web.Request, name: str, parse: Callable[[str], _T], kind: str) -> _T:
    value = query_str(request, name)
    try:
        return parse(value)
    except (InvalidSyntax, CidError):
        raise InvalidRequest(f"Params/{name} must be a valid {kind}") from None


def _optional_syntax_param(
    request: web.Request, name: str, parse: Callable[[str], _T], kind: str
) -> _T | None:
    if optional_query_str(request, name) is None:
        return None
    return _syntax_param(request, name, parse, kind)


def _did_param(request: web.Request) -> str:
    return str(_syntax_param(request, "did", parse_did, "did"))


def _limit_param(request: web.Request) -> int:
    limit = optional_query_int(request, "limit", minimum=1, maximum=MAX_LIST_LIMIT)
    return DEFAULT_LIST_LIMIT if limit is None else limit


def _reader(ctx: AppContext) -> RepoReader:
    # The writer's block cache is content-addressed, so readers share it safely.
    return RepoReader(ctx.db, ctx.repo_writer.cache)


def _repo_not_found(did: str) -> InvalidRequest:
    return InvalidRequest(f"Could not find repo for DID: {did}", error="RepoNotFound")


# -- availability -----------------------------------------------------------------------------
async def _is_owner_or_admin(ctx: AppContext, request: web.Request, did: str) -> bool:
    """Optional auth: credentials, when sent, must be valid; says whether they own `did`."""
    if "Authorization" not in request.headers:
        return False
    if ctx.auth.is_admin(request):
        ctx.auth.admin(request)
        return True
    credentials = await ctx.auth.access(request, scopes=_OWNER_SCOPES)
    return credentials.did == did


async def _available_account(ctx: AppContext, request: web.Request, did: str) -> AccountRow:
    """The account hosting `did`'s repo, if the caller may read it (see the module notes)."""
    privileged = await _is_owner_or_admin(ctx, request, did)
    async with ctx.db.read() as conn:
        account = await account_sql.get_account(conn, did)
    if account is None:
        raise _repo_not_found(did)
    if not privileged:
        if account.taken_down:
            raise InvalidRequest(f"Repo has been takendown: {did}", error="RepoTakendown")
        if account.deactivated:
            raise InvalidRequest(f"Repo has been deactivated: {did}", error="RepoDeactivated")
    return account


# -- repositories and commits -----------------------------------------------------------------
async def get_repo(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    did = _did_param(request)
    since = _optional_syntax_param(request, "since", parse_tid, "tid")
    await ctx.rate_limiter.consume(request, (rl.SYNC_GET_REPO, rl.caller_ip(request)))
    await _available_account(ctx, request, did)
    return await _stream_car(request, _reader(ctx).export_car(did, since))


async def _stream_car(request: web.Request, chunks: AsyncIterator[bytes]) -> web.StreamResponse:
    """Send a CAR with chunked transfer; errors before the first chunk are still XRPC errors."""
    try:
        try:
            first = await anext(chunks, b"")
        except RepoNotFound as exc:
            raise InvalidRequest(exc.message, error="RepoNotFound") from None
        response = web.StreamResponse(headers={"Content-Type": CAR_CONTENT_TYPE})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        await response.write(first)
        await _finish_stream(request, response, chunks)
        return response
    finally:
        # An export holds a read snapshot open: end it now, even when the client left early.
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


async def _finish_stream(
    request: web.Request, response: web.StreamResponse, chunks: AsyncIterable[bytes]
) -> None:
    """Write the rest of a prepared response's body; a failure now cuts the connection."""
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except (ConnectionResetError, TimeoutError):
        raise  # the client went away
    except Exception:
        # The status line is sent: the only honest signal left is to end the body early.
        log.exception("streamed response failed", extra={"path": request.path})
        if request.transport is not None:
            request.transport.close()
        return
    await response.write_eof()


async def get_latest_commit(request: web.Request) -> web.Response:
    ctx = context_of(request)
    did = _did_param(request)
    await _available_account(ctx, request, did)
    head = await _reader(ctx).get_head(did)
    if head is None:
        raise InvalidRequest(f"Could not find root for DID: {did}", error="RepoNotFound")
    cid, rev = head
    return web.json_response({"cid": str(cid), "rev": rev})


async def get_record(request: web.Request) -> web.Response:
    ctx = context_of(request)
    did = _did_param(request)
    collection = _syntax_param(request, "collection", parse_nsid, "nsid")
    rkey = _syntax_param(request, "rkey", parse_record_key, "record-key")
    await _available_account(ctx, request, did)
    try:
        car = await _reader(ctx).record_proof_car(did, collection, rkey)
    except RepoNotFound:
        raise _repo_not_found(did) from None
    return web.Response(body=car, content_type=CAR_CONTENT_TYPE)


async def get_blocks(request: web.Request) -> web.Response:
    ctx = context_of(request)
    did = _did_param(request)
    raw = request.query.getall("cids", [])
    if not raw:
        raise InvalidRequest('Params must have the property "cids"')
    try:
        cids = list(dict.fromkeys(CID.parse(text) for text in raw))
    except CidError:
        raise InvalidRequest("Params/cids must be an array of valid cids") from None
    await _available_account(ctx, request, did)
    found = await _reader(ctx).get_blocks(did, cids)
    missing = [str(cid) for cid in cids if cid not in found]
    if missing:
        raise InvalidRequest(f"Could not find cids: {','.join(missing)}")
    car = write_car([], [(cid, found[cid]) for cid in cids])
    return web.Response(body=car, content_type=CAR_CONTENT_TYPE)


async def list_repos(request: web.Request) -> web.Response:
    ctx = context_of(request)
    limit = _limit_param(request)
    cursor = _optional_syntax_param(request, "cursor", parse_did, "did (a cursor from listRepos)")
    async with ctx.db.read() as conn:
        rows = await sync_sql.list_hosted_repos(conn, after=cursor, limit=limit)
    repos = []
    for row in rows:
        entry: dict[str, object] = {"did": row.did, "head": row.head, "rev": row.rev}
        entry.update(_status_fields(row.taken_down, row.deactivated))
        repos.append(entry)
    body: dict[str, object] = {"repos": repos}
    if rows:
        body["cursor"] = rows[-1].did
    return web.json_response(body)


def _status_fields(taken_down: bool, deactivated: bool) -> dict[str, object]:
    if taken_down:
        return {"active": False, "status": str(AccountStatus.TAKENDOWN)}
    if deactivated:
        return {"active": False, "status": str(AccountStatus.DEACTIVATED)}
    return {"active": True}


async def get_repo_status(request: web.Request) -> web.Response:
    ctx = context_of(request)
    did = _did_param(request)
    async with ctx.db.read() as conn:
        account = await account_sql.get_account(conn, did)
    if account is None:
        raise _repo_not_found(did)
    status = status_of(account)
    body: dict[str, object] = {"did": did, "active": status is AccountStatus.ACTIVE}
    if status is AccountStatus.ACTIVE:
        head = await _reader(ctx).get_head(did)
        if head is not None:
            body["rev"] = head[1]
    else:
        body["status"] = str(status)
    return web.json_response(body)


# -- blobs ------------------------------------------------------------------------------------
async def list_blobs(request: web.Request) -> web.Response:
    ctx = context_of(request)
    did = _did_param(request)
    since = _optional_syntax_param(request, "since", parse_tid, "tid")
    limit = _limit_param(request)
    cursor = _optional_syntax_param(request, "cursor", CID.parse, "cid (a cursor from listBlobs)")
    await _available_account(ctx, request, did)
    async with ctx.db.read() as conn:
        cids = await blob_sql.list_blob_cids(
            conn,
            did,
            since=since,
            cursor=None if cursor is None else str(cursor),
            limit=limit,
        )
    body: dict[str, object] = {"cids": cids}
    if cids:
        body["cursor"] = cids[-1]
    return web.json_response(body)


async def get_blob(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    did = _did_param(request)
    cid = _syntax_param(request, "cid", CID.parse, "cid")
    await _available_account(ctx, request, did)
    async with ctx.db.read() as conn:
        served = await blob_sql.get_served_blob(conn, did, str(cid))
    if served is None:
        raise InvalidRequest("Blob not found", error="BlobNotFound")
    byte_range = parse_http_range(request.headers.get("Range"))
    start, end = byte_range if byte_range is not None else (0, None)
    try:
        reader = await ctx.blobstore.get(did, cid, start=start, end=end)
    except BlobNotFound:
        raise InvalidRequest("Blob not found", error="BlobNotFound") from None
    except RangeNotSatisfiable as exc:
        return json_error_response(
            416,
            "InvalidRange",
            f"Range not satisfiable: the blob has {exc.size} bytes",
            {"Content-Range": f"bytes */{exc.size}", **BLOB_SECURITY_HEADERS},
        )
    async with reader:
        response = web.StreamResponse(
            status=206 if byte_range is not None else 200,
            headers={
                "Content-Type": served.mime_type,
                "Content-Disposition": f'attachment; filename="{cid}"',
                "Accept-Ranges": "bytes",
                **BLOB_SECURITY_HEADERS,
            },
        )
        if byte_range is not None:
            response.headers["Content-Range"] = reader.content_range
        response.content_length = reader.length
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
        else:
            await _finish_stream(request, response, reader)
    return response
