"""com.atproto.repo: record writes (create, put, delete, applyWrites), and the routes of all.

Writes follow the reference PDS: the caller's access token is checked, the `repo` (DID or
handle) must be an account here (`AccountNotFound` 403), not taken down or deactivated (401), and
the caller's own (`AuthenticationRequired` 401 otherwise). The body is read as JSON at the edge,
each write is prepared (`pds.repo.prepare`) and the writer commits it; repository refusals
(`pds.repo.errors`) become 400s with the reference's error names (`InvalidSwap`, `BlobNotFound`...).
createRecord, unless `validate` is false, also deletes the caller's older like or repost of the
same post, follow or block of the same account, in the same commit (`pds.repo.conflicts`).

The reads (getRecord, listRecords, describeRepo) are in `pds.api.repo_read`; both register here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from aiohttp import web

from atcore import nsids
from atcore.cid import CID, CidError
from atcore.syntax import is_valid_at_identifier
from atcore.xrpc import AuthenticationRequired, Forbidden, InvalidRequest
from pds import ratelimit as rl
from pds.api import repo_read
from pds.api.params import (
    Body,
    json_body,
)
from pds.api.repo_read import REPO, RepoServices, account_row, services
from pds.auth.verifier import AccessCredentials
from pds.context import CONTEXT, AppContext, context_of
from pds.repo.errors import AccountUnavailable, RepoError, RepoNotFound
from pds.repo.plan import WriteResult
from pds.repo.prepare import NO_SWAP, PreparedWrite, SwapRecord, WritePreparer
from pds.repo.reader import RepoReader
from pds.repo.writer import WriteOutcome

JSON_LIMIT: Final = 1_000_000  # the reference's jsonLimit for record writes
MAX_WRITES: Final = 200

_CREATE: Final = f"{nsids.REPO_APPLY_WRITES}#create"
_UPDATE: Final = f"{nsids.REPO_APPLY_WRITES}#update"
_DELETE: Final = f"{nsids.REPO_APPLY_WRITES}#delete"
_KINDS: Final = {_CREATE: "create", _UPDATE: "update", _DELETE: "delete"}


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_post(nsids.xrpc_path(nsids.REPO_CREATE_RECORD), create_record)
    app.router.add_post(nsids.xrpc_path(nsids.REPO_PUT_RECORD), put_record)
    app.router.add_post(nsids.xrpc_path(nsids.REPO_DELETE_RECORD), delete_record)
    app.router.add_post(nsids.xrpc_path(nsids.REPO_APPLY_WRITES), apply_writes)
    app.router.add_get(nsids.xrpc_path(nsids.REPO_GET_RECORD), repo_read.get_record)
    app.router.add_get(nsids.xrpc_path(nsids.REPO_LIST_RECORDS), repo_read.list_records)
    app.router.add_get(nsids.xrpc_path(nsids.REPO_DESCRIBE_REPO), repo_read.describe_repo)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Build the repo services once the context exists; drain the writer at shutdown."""
    ctx = app[CONTEXT]
    writer = ctx.repo_writer
    app[REPO] = RepoServices(
        WritePreparer(ctx.catalog, writer.clock), RepoReader(ctx.db, writer.cache)
    )
    try:
        yield
    finally:
        await writer.close()


# -- writes ----------------------------------------------------------------------------------


async def create_record(request: web.Request) -> web.Response:
    ctx, credentials, body = await _write_request(request)
    did = await _own_repo(ctx, credentials, body.string("repo"))
    await _spend(ctx, request, did, 3)
    swap_commit = _cid(body, "swapCommit")
    validate = body.optional_boolean("validate")
    write = _prepare(
        lambda p: p.create(
            did,
            body.string("collection"),
            _record(body),
            rkey=body.optional_string("rkey", max_length=512),
            validate=validate,
            # The reference's "backlink conflicts": an older like/repost of the same subject,
            # follow/block of the same account, goes in the same commit (`pds.repo.conflicts`).
            replace_conflicts=validate is not False,
        ),
        request,
    )
    outcome = await _commit(ctx, did, [write], swap_commit)
    # The conflicts' deletes come first; the create is the last result.
    return web.json_response(_write_output(outcome, outcome.results[-1]))


async def put_record(request: web.Request) -> web.Response:
    ctx, credentials, body = await _write_request(request)
    did = await _own_repo(ctx, credentials, body.string("repo"))
    await _spend(ctx, request, did, 2)
    swap_commit = _cid(body, "swapCommit")
    swap_record: SwapRecord = NO_SWAP
    if "swapRecord" in body.data:  # present-but-null means "the record must not exist yet"
        swap_record = None if body.data["swapRecord"] is None else _cid(body, "swapRecord")
    write = _prepare(
        lambda p: p.put(
            did,
            body.string("collection"),
            body.string("rkey", max_length=512),
            _record(body),
            validate=body.optional_boolean("validate"),
            swap_record=swap_record,
        ),
        request,
    )
    outcome = await _commit(ctx, did, [write], swap_commit)
    return web.json_response(_write_output(outcome, outcome.results[0]))


async def delete_record(request: web.Request) -> web.Response:
    ctx, credentials, body = await _write_request(request)
    did = await _own_repo(ctx, credentials, body.string("repo"))
    await _spend(ctx, request, did, 1)
    swap_commit = _cid(body, "swapCommit")
    swap = _cid(body, "swapRecord")
    write = _prepare(
        lambda p: p.delete(
            did,
            body.string("collection"),
            body.string("rkey", max_length=512),
            swap_record=NO_SWAP if swap is None else swap,
            missing_ok=True,
        ),
        request,
    )
    outcome = await _commit(ctx, did, [write], swap_commit)
    return web.json_response(_commit_output(outcome))


async def apply_writes(request: web.Request) -> web.Response:
    ctx, credentials, body = await _write_request(request)
    did = await _own_repo(ctx, credentials, body.string("repo"))
    raw_writes = body.data.get("writes")
    if not isinstance(raw_writes, list):
        raise InvalidRequest(
            'Input must have the property "writes"'
            if raw_writes is None
            else ("Input/writes must be an array")
        )
    if len(raw_writes) > MAX_WRITES:
        raise InvalidRequest(f"Too many writes. Max: {MAX_WRITES}")
    validate = body.optional_boolean("validate")
    swap_commit = _cid(body, "swapCommit")
    items = [_write_item(raw, index) for index, raw in enumerate(raw_writes)]
    await _spend(ctx, request, did, sum(rl.REPO_WRITE_POINTS[kind] for kind, _ in items))
    preparer = services(request).preparer
    writes = [_prepare_item(preparer, did, kind, item, validate) for kind, item in items]
    outcome = await _commit(ctx, did, writes, swap_commit)
    output: dict[str, Any] = {"results": [_apply_result(r) for r in outcome.results]}
    output.update(_commit_output(outcome))
    return web.json_response(output)


def _write_item(raw: Any, index: int) -> tuple[str, Body]:
    where = f"Input/writes/{index}"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be an object")
    kind = _KINDS.get(str(raw.get("$type")))
    if kind is None:
        raise InvalidRequest(
            f'{where} must be an object which includes the "$type" property'
            if "$type" not in raw
            else f"Action not supported: {raw.get('$type')}"
        )
    return kind, Body(raw, where)


def _prepare_item(
    preparer: WritePreparer, did: str, kind: str, item: Body, validate: bool | None
) -> PreparedWrite:
    collection = item.string("collection")
    try:
        if kind == "delete":
            return preparer.delete(did, collection, item.string("rkey", max_length=512))
        value = item.data.get("value")
        if not isinstance(value, dict):
            raise InvalidRequest(f"{item.where}/value must be an object")
        if kind == "create":
            rkey = item.optional_string("rkey", max_length=512)
            return preparer.create(did, collection, value, rkey=rkey, validate=validate)
        rkey = item.string("rkey", max_length=512)
        return preparer.update(did, collection, rkey, value, validate=validate)
    except RepoError as exc:
        raise InvalidRequest(exc.message, error=exc.error) from None


def _apply_result(result: WriteResult) -> dict[str, Any]:
    action = result.write.action if result.action is None else result.action
    if action == "delete":
        return {"$type": f"{nsids.REPO_APPLY_WRITES}#deleteResult"}
    out: dict[str, Any] = {
        "$type": f"{nsids.REPO_APPLY_WRITES}#{action}Result",
        "uri": result.uri,
        "cid": str(result.cid),
    }
    if result.validation_status is not None:
        out["validationStatus"] = result.validation_status
    return out


async def _write_request(request: web.Request) -> tuple[AppContext, AccessCredentials, Body]:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    return ctx, credentials, await json_body(request, max_bytes=JSON_LIMIT)


async def _own_repo(ctx: AppContext, credentials: AccessCredentials, repo: str) -> str:
    """The DID of `repo` if the caller may write to it (the reference's checks and errors).

    The usual case, the caller's own DID, needs no lookup: the writer refuses writes to a
    taken-down, deactivated or deleted account itself, inside the commit's transaction.
    """
    if repo == credentials.did:
        return repo
    if not is_valid_at_identifier(repo):
        raise InvalidRequest("Input/repo must be a valid did or a handle")
    account = await account_row(ctx, repo)
    if account is None:
        raise Forbidden("Account not found", error="AccountNotFound")
    if account.taken_down:
        raise AuthenticationRequired("Account has been taken down", error="AccountTakedown")
    if account.deactivated:
        raise AuthenticationRequired("Account is deactivated", error="AccountDeactivated")
    if account.did != credentials.did:
        raise AuthenticationRequired("Authentication Required")
    return str(account.did)


async def _spend(ctx: AppContext, request: web.Request, did: str, points: int) -> None:
    await ctx.rate_limiter.consume(
        request, (rl.REPO_WRITE_HOUR, did), (rl.REPO_WRITE_DAY, did), points=points
    )


def _record(body: Body) -> dict[str, Any]:
    value = body.data.get("record")
    if value is None:
        raise InvalidRequest('Input must have the property "record"')
    if not isinstance(value, dict):
        raise InvalidRequest("Input/record must be an object")
    return value


def _cid(body: Body, name: str) -> CID | None:
    text = body.optional_string(name)
    if text is None:
        return None
    try:
        return CID.parse(text)
    except CidError:
        raise InvalidRequest(f"{body.where}/{name} must be a cid string") from None


def _prepare(make: Callable[[WritePreparer], PreparedWrite], request: web.Request) -> PreparedWrite:
    try:
        return make(services(request).preparer)
    except RepoError as exc:
        raise InvalidRequest(exc.message, error=exc.error) from None


async def _commit(
    ctx: AppContext, did: str, writes: list[PreparedWrite], swap_commit: CID | None
) -> WriteOutcome:
    try:
        return await ctx.repo_writer.apply_writes(did, writes, swap_commit)
    except RepoNotFound:
        raise Forbidden("Account not found", error="AccountNotFound") from None
    except AccountUnavailable as exc:
        raise AuthenticationRequired(exc.message, error=exc.error) from None
    except RepoError as exc:
        raise InvalidRequest(exc.message, error=exc.error) from None


def _commit_output(outcome: WriteOutcome) -> dict[str, Any]:
    if outcome.commit is None:
        return {}
    return {"commit": {"cid": str(outcome.commit.cid), "rev": outcome.commit.rev}}


def _write_output(outcome: WriteOutcome, result: WriteResult) -> dict[str, Any]:
    out: dict[str, Any] = {"uri": result.uri, "cid": str(result.cid)}
    out.update(_commit_output(outcome))
    if result.validation_status is not None:
        out["validationStatus"] = result.validation_status
    return out


# -- reads -----------------------------------------------------------------------------------
