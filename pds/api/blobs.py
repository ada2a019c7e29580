"""com.atproto.repo.uploadBlob and listMissingBlobs.

uploadBlob streams the request body straight into the blob store (never buffering it whole) under
`PDS_BLOB_UPLOAD_LIMIT`: a declared `Content-Length` over the limit is refused before a byte is
read, and a body that grows past it is cut off as it arrives; both are 413 `PayloadTooLarge`. The
caller is an account with an access token, or (as in the reference PDS) a service-auth JWT issued
by the account itself with `lxm` = uploadBlob. The stored MIME type is sniffed from the content,
because SDKs commonly send `*/*`; the response is the blob reference to put in a record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from atcore import nsids
from atcore.xrpc import AuthenticationRequired, InvalidRequest, PayloadTooLarge, UpstreamTimeout
from pds import ratelimit as rl
from pds.api.params import optional_query_int, optional_query_str
from pds.auth.verifier import AccessCredentials
from pds.blobs import store_upload
from pds.blobstore import BlobTooLarge, UploadTimedOut
from pds.context import AppContext, context_of
from pds.db import accounts as account_sql
from pds.db import blobs as blob_sql

UPLOAD_CHUNK_BYTES: Final = 64 * 1024
DEFAULT_LIST_LIMIT: Final = 500
MAX_LIST_LIMIT: Final = 1000


def add_routes(app: web.Application) -> None:
    app.router.add_post(nsids.xrpc_path(nsids.REPO_UPLOAD_BLOB), upload_blob)
    app.router.add_get(nsids.xrpc_path(nsids.REPO_LIST_MISSING_BLOBS), list_missing_blobs)


async def upload_blob(request: web.Request) -> web.Response:
    ctx = context_of(request)
    did = await _uploader(ctx, request)
    limit = ctx.settings.blob_upload_limit
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request entity too large (the limit is {limit} bytes)")
    await ctx.rate_limiter.consume(request, (rl.UPLOAD_BLOB, did))
    try:
        ref = await store_upload(
            ctx.db,
            ctx.blobstore,
            ctx.repo_writer.blob_locks,
            did,
            _body_chunks(request),
            max_size=limit,
            declared_mime=request.headers.get("Content-Type"),
        )
    except BlobTooLarge as exc:
        raise PayloadTooLarge(f"request entity too large (the limit is {limit} bytes)") from exc
    except UploadTimedOut as exc:
        raise UpstreamTimeout("Operation timed out, please try again.") from exc
    return web.json_response({"blob": ref.to_json()})


async def _uploader(ctx: AppContext, request: web.Request) -> str:
    """The uploading account: from an access token, or from a service JWT the account issued."""
    credentials = await ctx.auth.access_or_service(
        request, lxm=nsids.REPO_UPLOAD_BLOB, check_takedown=True
    )
    if isinstance(credentials, AccessCredentials):
        return str(credentials.did)
    async with ctx.db.read() as conn:
        account = await account_sql.get_account(conn, credentials.did)
    if account is None:
        raise InvalidRequest(
            f"Could not find repo for DID: {credentials.did}", error="RepoNotFound"
        )
    if account.taken_down:
        raise AuthenticationRequired("Account has been taken down", error="AccountTakedown")
    return str(account.did)


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(UPLOAD_CHUNK_BYTES):
        yield chunk


async def list_missing_blobs(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    limit = optional_query_int(request, "limit", minimum=1, maximum=MAX_LIST_LIMIT)
    cursor = optional_query_str(request, "cursor")
    async with ctx.db.read() as conn:
        missing = await blob_sql.list_missing_blobs(
            conn, credentials.did, cursor=cursor, limit=limit or DEFAULT_LIST_LIMIT
        )
    body: dict[str, object] = {"blobs": [{"cid": cid, "recordUri": uri} for cid, uri in missing]}
    if missing:
        body["cursor"] = missing[-1][0]
    return web.json_response(body)
