"""com.atproto.server: app passwords, service auth, account status, password reset, deletion,
invite codes (the account's email: `pds.api.server_email`).

getServiceAuth follows the reference's rules: `aud` must be a DID (or `did#service`), `exp` at
most an hour ahead (a minute when no `lxm` is named), account-management methods cannot be
delegated at all (`PROTECTED_METHODS`), privileged ones only from a full or privileged session,
and a taken-down account may only mint a token for `createAccount` (to migrate away). The method
sets live in `pds.auth.methods`.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Final

from aiohttp import web

from atcore import nsids
from atcore.syntax import Datetime, InvalidSyntax, is_valid_nsid, parse_datetime
from atcore.xrpc import AuthenticationRequired, InvalidRequest
from pds import ratelimit as rl
from pds.accounts import MAX_EMAIL_LENGTH
from pds.api.params import (
    json_body,
    optional_json_body,
    optional_query_bool,
    optional_query_int,
    optional_query_str,
    query_str,
)
from pds.auth.methods import is_privileged_method, is_protected_method
from pds.auth.passwords import OLD_PASSWORD_MAX_LENGTH
from pds.auth.service_jwt import create_service_jwt, is_did_or_service_ref
from pds.auth.tokens import ACCESS_FULL, ACCESS_PRIVILEGED, ACCESS_STANDARD, AuthScope
from pds.context import AppContext, context_of
from pds.db import invites, moderation
from pds.db.email_tokens import Purpose
from pds.email_codes import TOKEN_INPUT_MAX_LENGTH

SERVICE_AUTH_MAX_SECONDS: Final = 3600
SERVICE_AUTH_NO_LXM_MAX_SECONDS: Final = 60


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(nsids.xrpc_path(nsids.SERVER_CREATE_APP_PASSWORD), create_app_password)
    router.add_get(nsids.xrpc_path(nsids.SERVER_LIST_APP_PASSWORDS), list_app_passwords)
    router.add_post(nsids.xrpc_path(nsids.SERVER_REVOKE_APP_PASSWORD), revoke_app_password)
    router.add_get(nsids.xrpc_path(nsids.SERVER_GET_SERVICE_AUTH), get_service_auth)
    router.add_get(nsids.xrpc_path(nsids.SERVER_CHECK_ACCOUNT_STATUS), check_account_status)
    router.add_post(nsids.xrpc_path(nsids.SERVER_ACTIVATE_ACCOUNT), activate_account)
    router.add_post(nsids.xrpc_path(nsids.SERVER_DEACTIVATE_ACCOUNT), deactivate_account)
    router.add_post(nsids.xrpc_path(nsids.SERVER_REQUEST_PASSWORD_RESET), request_password_reset)
    router.add_post(nsids.xrpc_path(nsids.SERVER_RESET_PASSWORD), reset_password)
    router.add_post(nsids.xrpc_path(nsids.SERVER_REQUEST_ACCOUNT_DELETE), request_account_delete)
    router.add_post(nsids.xrpc_path(nsids.SERVER_DELETE_ACCOUNT), delete_account)
    router.add_post(nsids.xrpc_path(nsids.SERVER_CREATE_INVITE_CODE), create_invite_code)
    router.add_get(nsids.xrpc_path(nsids.SERVER_GET_ACCOUNT_INVITE_CODES), get_account_invite_codes)


# -- app passwords ----------------------------------------------------------------------------
async def create_app_password(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL, check_takedown=True)
    body = await json_body(request)
    name = body.string("name")
    privileged = body.optional_boolean("privileged") or False
    created = await ctx.sessions.create_app_password(credentials.did, name, privileged)
    return web.json_response(
        {
            "name": created.name,
            "password": created.password,
            "createdAt": _iso(created.created_at),
            "privileged": created.privileged,
        }
    )


async def list_app_passwords(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    rows = await ctx.sessions.list_app_passwords(credentials.did)
    passwords = [
        {"name": row.name, "createdAt": _iso(row.created_at), "privileged": row.privileged}
        for row in rows
    ]
    return web.json_response({"passwords": passwords})


async def revoke_app_password(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    body = await json_body(request)
    await ctx.sessions.revoke_app_password(credentials.did, body.string("name"))
    return web.Response(status=200)


# -- service auth -----------------------------------------------------------------------------
async def get_service_auth(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_STANDARD | {AuthScope.TAKENDOWN})
    aud = query_str(request, "aud")
    lxm = optional_query_str(request, "lxm")
    exp = optional_query_int(request, "exp")
    if not is_did_or_service_ref(aud) or not aud.startswith(("did:plc:", "did:web:")):
        raise InvalidRequest("aud must be a valid atproto DID or did#serviceId reference")
    if lxm is not None and not is_valid_nsid(lxm):
        raise InvalidRequest("lxm must be a valid NSID")
    if credentials.scope is AuthScope.TAKENDOWN and lxm != nsids.SERVER_CREATE_ACCOUNT:
        raise InvalidRequest("Bad token scope", error="InvalidToken")
    if lxm is not None and is_privileged_method(lxm) and credentials.scope not in ACCESS_PRIVILEGED:
        raise InvalidRequest(
            f"insufficient access to request a service auth token for the following method: {lxm}"
        )
    _check_expiry(exp, has_lxm=bool(lxm))
    if lxm is not None and is_protected_method(lxm):
        raise InvalidRequest(
            f"cannot request a service auth token for the following protected method: {lxm}"
        )
    keypair = await ctx.accounts.signing_key(credentials.did)
    token = create_service_jwt(keypair=keypair, iss=credentials.did, aud=aud, lxm=lxm, exp=exp)
    return web.json_response({"token": token})


def _check_expiry(exp: int | None, *, has_lxm: bool) -> None:
    if exp is None:
        return
    ahead = exp - time.time()
    if ahead < 0:
        raise InvalidRequest("expiration is in past", error="BadExpiration")
    if ahead > SERVICE_AUTH_MAX_SECONDS:
        raise InvalidRequest(
            "cannot request a token with an expiration more than an hour in the future",
            error="BadExpiration",
        )
    if not has_lxm and ahead > SERVICE_AUTH_NO_LXM_MAX_SECONDS:
        raise InvalidRequest(
            "cannot request a method-less token with an expiration more than a minute in the "
            "future",
            error="BadExpiration",
        )


# -- account status ---------------------------------------------------------------------------
async def check_account_status(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    account = await ctx.accounts.get(credentials.did)
    if account is None:
        raise InvalidRequest("Account not found", error="AccountNotFound")
    async with ctx.db.read() as conn:
        counts = await moderation.repo_counts(conn, credentials.did)
    valid_did = await ctx.accounts.is_did_document_valid(credentials.did, account)
    return web.json_response(
        {
            "activated": not account.deactivated,
            "validDid": valid_did,
            "repoCommit": counts.commit_cid,
            "repoRev": counts.rev,
            "repoBlocks": counts.blocks,
            "indexedRecords": counts.records,
            "privateStateValues": 0,
            "expectedBlobs": counts.expected_blobs,
            "importedBlobs": counts.imported_blobs,
        }
    )


async def activate_account(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL)
    await ctx.accounts.activate(credentials.did)
    return web.Response(status=200)


async def deactivate_account(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL | {AuthScope.TAKENDOWN})
    body = await optional_json_body(request)
    raw_delete_after = body.optional_string("deleteAfter")
    delete_after = None if raw_delete_after is None else _epoch_ms(raw_delete_after)
    await ctx.accounts.deactivate(credentials.did, delete_after=delete_after)
    return web.Response(status=200)


# -- password reset (`pds.password_reset`) ----------------------------------------------------
async def request_password_reset(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ip = rl.caller_ip(request)
    await ctx.rate_limiter.consume(
        request, (rl.REQUEST_PASSWORD_RESET_HOUR, ip), (rl.REQUEST_PASSWORD_RESET_DAY, ip)
    )
    body = await json_body(request)
    resets = ctx.password_resets
    account = await resets.account_for(body.string("email", max_length=MAX_EMAIL_LENGTH))
    await ctx.rate_limiter.consume(
        request,
        (rl.REQUEST_PASSWORD_RESET_ACCOUNT_HOUR, account.did),
        (rl.REQUEST_PASSWORD_RESET_ACCOUNT_DAY, account.did),
    )
    await resets.mail_code(account)
    return web.Response(status=200)


async def reset_password(request: web.Request) -> web.Response:
    ctx = context_of(request)
    await ctx.rate_limiter.consume(request, (rl.RESET_PASSWORD, rl.caller_ip(request)))
    body = await json_body(request)
    token = body.string("token", max_length=TOKEN_INPUT_MAX_LENGTH)
    password = body.string("password")
    await ctx.password_resets.reset(token, password)
    return web.Response(status=200)


# -- deletion ---------------------------------------------------------------------------------
async def request_account_delete(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL, check_takedown=True)
    await ctx.rate_limiter.consume(
        request,
        (rl.REQUEST_ACCOUNT_DELETE_HOUR, credentials.did),
        (rl.REQUEST_ACCOUNT_DELETE_DAY, credentials.did),
    )
    email = await email_of(ctx, credentials.did)
    token = await ctx.email_codes.issue(credentials.did, Purpose.DELETE_ACCOUNT)
    await ctx.mailer.send_account_delete(to=email, token=token)
    return web.Response(status=200)


async def email_of(ctx: AppContext, did: str) -> str:
    """Where to mail the account a code (deletion, PLC operation); InvalidRequest without one."""
    account = await ctx.accounts.get(did)
    if account is None:
        raise InvalidRequest("account not found")
    if account.email is None:
        raise InvalidRequest("account does not have an email address")
    return account.email


async def delete_account(request: web.Request) -> web.Response:
    ctx = context_of(request)
    body = await json_body(request)
    did = body.string("did")
    password = body.string("password")
    token = body.string("token", max_length=TOKEN_INPUT_MAX_LENGTH)
    await ctx.rate_limiter.consume(request, (rl.DELETE_ACCOUNT, rl.caller_ip(request)))
    if len(password) > OLD_PASSWORD_MAX_LENGTH:
        raise AuthenticationRequired("Password too long. Consider resetting your password.")
    account = await ctx.accounts.get(did)
    if account is None:
        raise InvalidRequest("account not found")
    if not await ctx.sessions.verify_account_password(account.did, password):
        raise AuthenticationRequired("Invalid did or password")
    # Spent before the deletion starts: two requests with one code cannot both delete.
    await ctx.email_codes.use(account.did, Purpose.DELETE_ACCOUNT, token)
    await ctx.accounts.delete_account(account.did)
    return web.Response(status=200)


# -- invites ----------------------------------------------------------------------------------
async def create_invite_code(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.auth.admin(request)
    body = await json_body(request)
    uses = body.integer("useCount", minimum=1)
    for_account = body.optional_string("forAccount") or "admin"
    code = invite_code_for(ctx.settings.hostname)
    await ctx.accounts.create_invite_codes([code], uses=uses, for_account=for_account)
    return web.json_response({"code": code})


async def get_account_invite_codes(request: web.Request) -> web.Response:
    """The codes made for the caller, with their uses; disabled ones are never listed.

    `createAvailable` (earning codes over time) is accepted and does nothing: as in the
    reference without an invite interval configured, and this PDS has no such setting.
    """
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL, check_takedown=True)
    include_used = optional_query_bool(request, "includeUsed")
    optional_query_bool(request, "createAvailable")  # still a boolean, or a 400
    if await ctx.accounts.get(credentials.did) is None:
        raise InvalidRequest("Account not found", error="NotFound")
    async with ctx.db.read() as conn:
        codes = await invites.list_codes_for_account(conn, credentials.did)
    listed = [
        code
        for code in codes
        if not code.disabled and (include_used is not False or len(code.uses) < code.available_uses)
    ]
    return web.json_response({"codes": [_invite_code_json(code) for code in listed]})


def _invite_code_json(code: invites.InviteCodeDetail) -> dict[str, object]:
    return {
        "code": code.code,
        "available": code.available_uses,
        "disabled": code.disabled,
        "forAccount": code.for_account,
        "createdBy": code.created_by,
        "createdAt": _iso(code.created_at),
        "uses": [{"usedBy": use.used_by, "usedAt": _iso(use.used_at)} for use in code.uses],
    }


def invite_code_for(hostname: str) -> str:
    """`<hostname with dashes>-xxxxx-xxxxx` in lowercase base32, like the reference."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    token = "".join(secrets.choice(alphabet) for _ in range(10))
    return f"{hostname.replace('.', '-')}-{token[:5]}-{token[5:]}"


# -- helpers ----------------------------------------------------------------------------------
def _iso(epoch_ms: int) -> str:
    return Datetime.from_datetime(dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC))


def _epoch_ms(text: str) -> int:
    try:
        return parse_datetime(text).epoch_ms
    except InvalidSyntax:
        raise InvalidRequest("Input/deleteAfter must be a valid datetime") from None
