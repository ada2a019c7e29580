"""com.atproto.repo reads: getRecord, listRecords, describeRepo (no auth), and the services
the repo endpoints share.

listRecords: cursor = last rkey, newest first unless `reverse`, limit 1-100.

getRecord, as the reference: the query is checked first (bad `repo`, `collection`, `rkey` or
`cid` is a 400 here, never forwarded). A repo hosted here (by DID or handle) is answered here and
only here: a missing record is an authoritative `RecordNotFound`, and a taken-down or
deactivated repo gives "Could not locate record". Any other repo is the configured AppView's:
the same query goes to it without service auth and its answer is relayed (status, JSON body,
content type; bounded, with the proxy's timeouts; upstream errors as `pds.proxy` reports them).
With no AppView configured, "Could not locate record".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from atcore.cid import CID, CidError
from atcore.identity import IdentityError
from atcore.syntax import is_valid_at_identifier, is_valid_nsid, is_valid_record_key
from atcore.xrpc import InvalidRequest
from pds.api.params import optional_query_bool, optional_query_int, optional_query_str, query_str
from pds.context import AppContext, context_of
from pds.db import accounts as account_sql
from pds.db.accounts import AccountRow
from pds.repo.prepare import WritePreparer
from pds.repo.reader import RepoReader

INVALID_HANDLE: Final = "handle.invalid"
RECORD_NOT_LOCATED: Final = "Could not locate record"


@dataclass(frozen=True, slots=True)
class RepoServices:
    preparer: WritePreparer  # on the application's lexicon catalog
    reader: RepoReader


REPO: Final = web.AppKey("pds_repo", RepoServices)


def services(request: web.Request) -> RepoServices:
    return request.app[REPO]


async def account_row(ctx: AppContext, identifier: str) -> AccountRow | None:
    async with ctx.db.read() as conn:
        return await account_sql.get_account_by_identifier(conn, identifier)


async def _readable_did(ctx: AppContext, repo: str) -> str | None:
    """The DID of a local, active account named by `repo` (DID or handle), else None."""
    if not is_valid_at_identifier(repo):
        raise InvalidRequest("Params/repo must be a valid did or a handle")
    account = await account_row(ctx, repo)
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
    account = await account_row(ctx, repo)
    if account is None:
        return await _record_from_appview(request, ctx)
    if account.taken_down or account.deactivated:
        raise InvalidRequest(RECORD_NOT_LOCATED)
    found = await services(request).reader.get_record(account.did, collection, rkey, cid)
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
    records, next_cursor = await services(request).reader.list_records(
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
    account = await account_row(ctx, repo)
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
    collections = await services(request).reader.list_collections(account.did)
    return web.json_response(
        {
            "handle": account.handle or INVALID_HANDLE,
            "did": account.did,
            "didDoc": document.to_json(),
            "collections": collections,
            "handleIsCorrect": document.handle is not None and document.handle == account.handle,
        }
    )
