"""com.atproto.admin: operator endpoints behind `Basic admin:<PDS_ADMIN_PASSWORD>`.

Subjects follow `com.atproto.admin.defs`: an account (`#repoRef`, by DID), a record
(`com.atproto.repo.strongRef`, by AT URI) or a blob (`#repoBlobRef`, DID + CID). Taking an
account down ends its sessions, refuses its logins and sequences an `#account` event; records
and blobs carry a takedown reference that the read paths honour.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from atcore import nsids
from atcore.syntax import INVALID_HANDLE, Datetime, InvalidSyntax, parse_at_uri, parse_did
from atcore.xrpc import InvalidRequest
from pds.api.params import Body, json_body, optional_query_str
from pds.context import AppContext, context_of
from pds.db import accounts as q
from pds.db import invites, moderation

REPO_REF: Final = nsids.ADMIN_DEFS_REPO_REF
REPO_BLOB_REF: Final = nsids.ADMIN_DEFS_REPO_BLOB_REF
STRONG_REF: Final = nsids.REPO_STRONG_REF


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get(nsids.xrpc_path(nsids.ADMIN_GET_ACCOUNT_INFO), get_account_info)
    router.add_post(nsids.xrpc_path(nsids.ADMIN_UPDATE_SUBJECT_STATUS), update_subject_status)
    router.add_get(nsids.xrpc_path(nsids.ADMIN_GET_SUBJECT_STATUS), get_subject_status)
    router.add_post(nsids.xrpc_path(nsids.ADMIN_UPDATE_ACCOUNT_HANDLE), update_account_handle)
    router.add_post(nsids.xrpc_path(nsids.ADMIN_UPDATE_ACCOUNT_PASSWORD), update_account_password)
    router.add_post(nsids.xrpc_path(nsids.ADMIN_DELETE_ACCOUNT), delete_account)


def _iso(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return Datetime.from_datetime(dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC))


def _did_param(request: web.Request) -> str:
    raw = optional_query_str(request, "did")
    if raw is None:
        raise InvalidRequest('Params must have the property "did"')
    try:
        return parse_did(raw)
    except InvalidSyntax:
        raise InvalidRequest("Params/did must be a valid did") from None


def _did_field(body: Body, name: str = "did") -> str:
    try:
        return parse_did(body.string(name))
    except InvalidSyntax:
        raise InvalidRequest(f"{body.where}/{name} must be a valid did") from None


async def get_account_info(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.auth.admin(request)
    did = _did_param(request)
    async with ctx.db.read() as conn:
        account = await q.get_account(conn, did)
        invited_by = await invites.invited_by(conn, did)
    if account is None:
        raise InvalidRequest("Account not found", error="NotFound")
    view: dict[str, Any] = {
        "did": account.did,
        "handle": account.handle or INVALID_HANDLE,
        "indexedAt": _iso(account.created_at),
        "invitesDisabled": account.invites_disabled,
    }
    optional = {
        "email": account.email,
        "emailConfirmedAt": _iso(account.email_confirmed_at),
        "deactivatedAt": _iso(account.deactivated_at),
    }
    view.update({key: value for key, value in optional.items() if value is not None})
    if invited_by is not None:
        view["invitedBy"] = {"code": invited_by}
    return web.json_response(view)


def _status_attr(body: Body, name: str) -> tuple[bool, str | None] | None:
    attr = body.optional_object(name)
    if attr is None:
        return None
    applied = attr.optional_boolean("applied")
    if applied is None:
        raise InvalidRequest(f'{attr.where} must have the property "applied"')
    return applied, attr.optional_string("ref")


async def update_subject_status(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.auth.admin(request)
    body = await json_body(request)
    subject = body.optional_object("subject")
    if subject is None:
        raise InvalidRequest('Input must have the property "subject"')
    takedown = _status_attr(body, "takedown")
    deactivated = _status_attr(body, "deactivated")
    if takedown and takedown[0] and deactivated and not deactivated[0]:
        raise InvalidRequest("Cannot activate and takedown an account at the same time")
    kind = subject.string("$type")
    if takedown is not None:
        applied, ref = takedown
        # As in the reference, a takedown without a reference is tagged with its time.
        ref = (ref or Datetime.now()) if applied else None
        await _apply_takedown(ctx, kind, subject, ref)
    if deactivated is not None and kind == REPO_REF:
        did = parse_did(_did_field(subject))
        if deactivated[0]:
            await ctx.accounts.deactivate(did, delete_after=None)
        else:
            await ctx.accounts.activate(did)
    output: dict[str, Any] = {"subject": subject.data}
    if takedown is not None:
        output["takedown"] = body.data["takedown"]
    return web.json_response(output)


async def _apply_takedown(ctx: AppContext, kind: str, subject: Body, ref: str | None) -> None:
    if kind == REPO_REF:
        await ctx.accounts.set_takedown(parse_did(_did_field(subject)), ref)
        return
    if kind == STRONG_REF:
        try:
            uri = parse_at_uri(subject.string("uri"))
        except InvalidSyntax:
            raise InvalidRequest("Input/subject/uri must be a valid at-uri") from None
        async with ctx.db.transaction() as conn:
            found = await moderation.set_record_takedown(conn, uri, ref)
    elif kind == REPO_BLOB_REF:
        did = _did_field(subject)
        async with ctx.db.transaction() as conn:
            found = await moderation.set_blob_takedown(conn, did, subject.string("cid"), ref)
    else:
        raise InvalidRequest(f"Invalid subject ({kind})")
    if not found:
        raise InvalidRequest("Subject not found", error="NotFound")


def _takedown_view(ref: str | None) -> dict[str, Any]:
    return {"applied": True, "ref": ref} if ref is not None else {"applied": False}


async def get_subject_status(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.auth.admin(request)
    did = optional_query_str(request, "did")
    uri = optional_query_str(request, "uri")
    blob = optional_query_str(request, "blob")
    async with ctx.db.read() as conn:
        if blob is not None:
            if did is None:
                raise InvalidRequest("Must provide a did to request blob state")
            found = await _blob_status(conn, did, blob)
        elif uri is not None:
            found = await _record_status(conn, uri)
        elif did is not None:
            found = await _account_status(conn, did)
        else:
            raise InvalidRequest("No provided subject")
    if found is None:
        raise InvalidRequest("Subject not found", error="NotFound")
    return web.json_response(found)


async def _blob_status(conn: AsyncConnection, did: str, cid: str) -> dict[str, Any] | None:
    found = await moderation.get_blob_takedown(conn, did, cid)
    if found is None:
        return None
    return {
        "subject": {"$type": REPO_BLOB_REF, "did": did, "cid": cid},
        "takedown": _takedown_view(found.ref),
    }


async def _record_status(conn: AsyncConnection, uri: str) -> dict[str, Any] | None:
    found = await moderation.get_record_takedown(conn, uri)
    if found is None:
        return None
    return {
        "subject": {"$type": STRONG_REF, "uri": uri, "cid": found.cid},
        "takedown": _takedown_view(found.ref),
    }


async def _account_status(conn: AsyncConnection, did: str) -> dict[str, Any] | None:
    account = await q.get_account(conn, did)
    if account is None:
        return None
    return {
        "subject": {"$type": REPO_REF, "did": did},
        "takedown": _takedown_view(account.takedown_ref),
        "deactivated": {"applied": account.deactivated},
    }


async def update_account_handle(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.auth.admin(request)
    body = await json_body(request)
    did = parse_did(_did_field(body))
    await ctx.accounts.update_handle(did, body.string("handle"), allow_reserved=True)
    ctx.did_resolver.invalidate(did)
    return web.Response(status=200)


async def update_account_password(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.auth.admin(request)
    body = await json_body(request)
    await ctx.accounts.update_password(parse_did(_did_field(body)), body.string("password"))
    return web.Response(status=200)


async def delete_account(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.auth.admin(request)
    body = await json_body(request)
    did = parse_did(_did_field(body))
    if await ctx.accounts.get(did) is None:
        raise InvalidRequest("account not found")
    await ctx.accounts.delete_account(did)
    return web.Response(status=200)
