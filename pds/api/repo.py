"""com.atproto.repo: record writes (create, put, delete, applyWrites) and reads.

Writes follow the reference PDS: the caller's access token is checked, the `repo` (DID or
handle) must be an account here (`AccountNotFound` 403), not taken down or deactivated (401), and
the caller's own (`AuthenticationRequired` 401 otherwise). The body is read as JSON at the edge,
each write is prepared (`pds.repo.prepare`) and the writer commits it; repository refusals
(`pds.repo.errors`) become 400s with the reference's error names (`InvalidSwap`, `BlobNotFound`...).

Reads need no auth: getRecord, listRecords (cursor = last rkey, newest first unless `reverse`,
limit 1-100) and describeRepo.

getRecord, as the reference: the query is checked first (bad `repo`, `collection`, `rkey` or
`cid` is a 400 here, never forwarded). A repo hosted here (by DID or handle) is answered here and
only here: a missing record is an authoritative `RecordNotFound`, and a taken-down or
deactivated repo gives "Could not locate record". Any other repo is the configured AppView's:
the same query goes to it without service auth and its answer is relayed (status, JSON body,
content type; bounded, with the proxy's timeouts; upstream errors as `pds.proxy` reports them).
With no AppView configured, "Could not locate record".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from atcore import nsids
from atcore.cid import CID, CidError
from atcore.identity import IdentityError
from atcore.syntax import is_valid_at_identifier, is_valid_nsid, is_valid_record_key
from atcore.xrpc import AuthenticationRequired, Forbidden, InvalidRequest
from pds import ratelimit as rl
from pds.api.params import (
    Body,
    json_body,
    optional_query_bool,
    optional_query_int,
    optional_query_str,
    query_str,
)
from pds.auth.verifier import AccessCredentials
from pds.context import CONTEXT, AppContext, context_of
from pds.db import accounts as account_sql
from pds.db.accounts import AccountRow
from pds.repo.errors import AccountUnavailable, RepoError, RepoNotFound
from pds.repo.plan import WriteResult
from pds.repo.prepare import NO_SWAP, PreparedWrite, SwapRecord, WritePreparer
from pds.repo.reader import RepoReader
from pds.repo.writer import WriteOutcome

JSON_LIMIT: Final = 1_000_000  # the reference's jsonLimit for record writes
MAX_WRITES: Final = 200
INVALID_HANDLE: Final = "handle.invalid"
RECORD_NOT_LOCATED: Final = "Could not locate record"

_CREATE: Final = f"{nsids.REPO_APPLY_WRITES}#create"
_UPDATE: Final = f"{nsids.REPO_APPLY_WRITES}#update"
_DELETE: Final = f"{nsids.REPO_APPLY_WRITES}#delete"
_KINDS: Final = {_CREATE: "create", _UPDATE: "update", _DELETE: "delete"}


@dataclass(frozen=True, slots=True)
class RepoServices:
    preparer: WritePreparer  # on the application's lexicon catalog
    reader: RepoReader


REPO: Final = web.AppKey("pds_repo", RepoServices)


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_post(nsids.xrpc_path(nsids.REPO_CREATE_RECORD), create_record)
    app.router.add_post(nsids.xrpc_path(nsids.REPO_PUT_RECORD), put_record)
    app.router.add_post(nsids.xrpc_path(nsids.REPO_DELETE_RECORD), delete_record)
    app.router.add_post(nsids.xrpc_path(nsids.REPO_APPLY_WRITES), apply_writes)
    app.router.add_get(nsids.xrpc_path(nsids.REPO_GET_RECORD), get_record)
    app.router.add_get(nsids.xrpc_path(nsids.REPO_LIST_RECORDS), list_records)
    app.router.add_get(nsids.xrpc_path(nsids.REPO_DESCRIBE_REPO), describe_repo)


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


def _services(request: web.Request) -> RepoServices:
    return request.app[REPO]


# -- writes ----------------------------------------------------------------------------------


async def create_record(request: web.Request) -> web.Response:
    ctx, credentials, body = await _write_request(request)
    did = await _own_repo(ctx, credentials, body.string("repo"))
    await _spend(ctx, request, did, 3)
    swap_commit = _cid(body, "swapCommit")
    write = _prepare(
        lambda p: p.create(
            did,
            body.string("collection"),
            _record(body),
            rkey=body.optional_string("rkey", max_length=512),
            validate=body.optional_boolean("validate"),
        ),
        request,
    )
    outcome = await _commit(ctx, did, [write], swap_commit)
    return web.json_response(_write_output(outcome, outcome.results[0]))


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
    preparer = _services(request).preparer
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
    account = await _account(ctx, repo)
    if account is None:
        raise Forbidden("Account not found", error="AccountNotFound")
    if account.taken_down:
        raise AuthenticationRequired("Account has been taken down", error="AccountTakedown")
    if account.deactivated:
        raise AuthenticationRequired("Account is deactivated", error="AccountDeactivated")
    if account.did != credentials.did:
        raise AuthenticationRequired("Authentication Required")
    return str(account.did)


async def _account(ctx: AppContext, identifier: str) -> AccountRow | None:
    async with ctx.db.read() as conn:
        return await account_sql.get_account_by_identifier(conn, identifier)


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
        return make(_services(request).preparer)
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


async def _readable_did(ctx: AppContext, repo: str) -> str | None:
    """The DID of a local, active account named by `repo` (DID or handle), else None."""
    if not is_valid_at_identifier(repo):
        raise InvalidRequest("Params/repo must be a valid did or a handle")
    account = await _account(ctx, repo)
    if account is None or account.taken_down or account.deactivated:
        return None
    return str(account.did)


def _collection_param(request: web.Request) -> str:
    collection = query_str(request, "collection")
    if not is_valid_nsid(collection):
        raise InvalidRequest("Params/collection must be a valid nsid")
    return collection


async def get_record(request: web.Request) -> web.Response:
    """A record of a repo hosted here; any other repo's from the AppView (see the docstring)."""
    ctx = context_of(request)
    repo = query_str(request, "repo")
    if not is_valid_at_identifier(repo):
        raise InvalidRequest("Params/repo must be a valid did or a handle")
    collection = _collection_param(request)
    rkey = query_str(request, "rkey")
    if not is_valid_record_key(rkey):
        raise InvalidRequest("Params/rkey must be a valid Record Key")
    cid = _cid_param(request)
    account = await _account(ctx, repo)
    if account is None:
        return await _record_from_appview(request, ctx)
    if account.taken_down or account.deactivated:
        raise InvalidRequest(RECORD_NOT_LOCATED)
    found = await _services(request).reader.get_record(account.did, collection, rkey, cid)
    if found is None:
        uri = f"at://{account.did}/{collection}/{rkey}"
        raise InvalidRequest(f"{RECORD_NOT_LOCATED}: {uri}", error="RecordNotFound")
    return web.json_response(found.to_json())


def _cid_param(request: web.Request) -> str | None:
    """The optional `cid`, checked (`CID.parse` takes only the canonical form we store)."""
    text = optional_query_str(request, "cid")
    if text is None:
        return None
    try:
        CID.parse(text)
    except CidError:
        raise InvalidRequest("Params/cid must be a cid string") from None
    return text


async def _record_from_appview(request: web.Request, ctx: AppContext) -> web.Response:
    """The configured AppView's answer to the same query, checked and relayed.

    No service auth: the read is public. Only the configured AppView is asked (not a service
    named by `atproto-proxy`), so this unauthenticated endpoint cannot be pointed elsewhere.
    """
    appview = ctx.proxy.config.appview
    if appview is None:
        raise InvalidRequest(RECORD_NOT_LOCATED)
    answer = await ctx.proxy.fetch_json(request, appview, authorization=None)
    return answer.to_response()


async def list_records(request: web.Request) -> web.Response:
    ctx = context_of(request)
    repo = query_str(request, "repo")
    collection = _collection_param(request)
    limit = optional_query_int(request, "limit", minimum=1, maximum=100) or 50
    cursor = optional_query_str(request, "cursor")
    reverse = optional_query_bool(request, "reverse") or False
    did = await _readable_did(ctx, repo)
    if did is None:
        raise InvalidRequest(f"Could not find repo: {repo}")
    records, next_cursor = await _services(request).reader.list_records(
        did, collection, limit=limit, cursor=cursor, reverse=reverse
    )
    output: dict[str, Any] = {"records": [record.to_json() for record in records]}
    if next_cursor is not None:
        output["cursor"] = next_cursor
    return web.json_response(output)


async def describe_repo(request: web.Request) -> web.Response:
    ctx = context_of(request)
    repo = query_str(request, "repo")
    if not is_valid_at_identifier(repo):
        raise InvalidRequest("Params/repo must be a valid did or a handle")
    account = await _account(ctx, repo)
    if account is None:
        raise InvalidRequest(f"Could not find repo for DID: {repo}", error="RepoNotFound")
    if account.taken_down:
        raise InvalidRequest(f"Repo has been takendown: {repo}", error="RepoTakendown")
    if account.deactivated:
        raise InvalidRequest(f"Repo has been deactivated: {repo}", error="RepoDeactivated")
    try:
        document = await ctx.did_resolver.resolve(account.did)
    except IdentityError as exc:
        raise InvalidRequest(f"Could not resolve DID: {exc}") from None
    collections = await _services(request).reader.list_collections(account.did)
    return web.json_response(
        {
            "handle": account.handle or INVALID_HANDLE,
            "did": account.did,
            "didDoc": document.to_json(),
            "collections": collections,
            "handleIsCorrect": document.handle is not None and document.handle == account.handle,
        }
    )
