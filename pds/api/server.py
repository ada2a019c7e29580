"""com.atproto.server: describeServer, createAccount and the session endpoints.

createAccount with a `did` is the first step of a migration to this PDS: it needs a service JWT
from that DID (minted by its current PDS) and makes a deactivated account (`pds.migration`).

Session responses (createSession, getSession, refreshSession) carry the account's DID document
(resolved through the cached DID resolver, so its `#atproto_pds` endpoint is this PDS's public
URL), `active` and, for an inactive account, `status`, as the reference does.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from atcore import nsids
from atcore.crypto import CryptoError, parse_did_key
from atcore.identity import IdentityError
from atcore.syntax import INVALID_HANDLE
from atcore.xrpc import AuthenticationRequired, InvalidRequest
from pds import ratelimit as rl
from pds.account_status import AccountStatus, status_of
from pds.accounts import NewAccount
from pds.api.params import json_body
from pds.auth.passwords import OLD_PASSWORD_MAX_LENGTH
from pds.auth.tokens import TokenPair
from pds.auth.verifier import ServiceCredentials
from pds.context import AppContext, context_of
from pds.db.accounts import AccountRow
from pds.migration import InboundMigration, parse_input_did
from pds.settings import PdsSettings

log = logging.getLogger(__name__)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get(nsids.xrpc_path(nsids.SERVER_DESCRIBE_SERVER), describe_server)
    router.add_post(nsids.xrpc_path(nsids.SERVER_CREATE_ACCOUNT), create_account)
    router.add_post(nsids.xrpc_path(nsids.SERVER_CREATE_SESSION), create_session)
    router.add_get(nsids.xrpc_path(nsids.SERVER_GET_SESSION), get_session)
    router.add_post(nsids.xrpc_path(nsids.SERVER_REFRESH_SESSION), refresh_session)
    router.add_post(nsids.xrpc_path(nsids.SERVER_DELETE_SESSION), delete_session)


async def describe_server(request: web.Request) -> web.Response:
    return web.json_response(server_description(context_of(request).settings))


def server_description(settings: PdsSettings) -> dict[str, Any]:
    """The describeServer answer; `links` and `contact` hold only what is configured."""
    links = {
        "privacyPolicy": settings.privacy_policy_url,
        "termsOfService": settings.terms_of_service_url,
    }
    email = settings.contact_email_address
    return {
        "did": settings.service_did,
        "availableUserDomains": list(settings.service_handle_domains),
        "inviteCodeRequired": settings.invite_required,
        "blobUploadLimit": settings.blob_upload_limit,
        "links": {name: url for name, url in links.items() if url is not None},
        "contact": {} if email is None else {"email": email},
    }


# -- accounts ---------------------------------------------------------------------------------
async def create_account(request: web.Request) -> web.Response:
    ctx = context_of(request)
    service = await ctx.auth.optional_service(request, lxm=nsids.SERVER_CREATE_ACCOUNT)
    body = await json_body(request)
    if body.data.get("plcOp") is not None:
        # As the reference outside entryway deployments: a brought DID's document is updated
        # later, through submitPlcOperation.
        raise InvalidRequest('Unsupported input: "plcOp"')
    raw_did = body.optional_string("did")
    new = NewAccount(
        handle=body.string("handle"),
        password=body.string("password"),
        email=body.optional_string("email"),
        invite_code=body.optional_string("inviteCode"),
        recovery_key=_recovery_key(body.optional_string("recoveryKey")),
    )
    await ctx.rate_limiter.consume(request, (rl.CREATE_ACCOUNT, rl.caller_ip(request)))
    if raw_did is not None:
        return await _create_migrating_account(ctx, raw_did, service, new)
    created = await ctx.accounts.create_account(new)
    return web.json_response(
        {
            "handle": created.handle,
            "did": created.did,
            "didDoc": created.did_doc,
            "accessJwt": created.tokens.access_jwt,
            "refreshJwt": created.tokens.refresh_jwt,
        }
    )


async def _create_migrating_account(
    ctx: AppContext, raw_did: str, service: ServiceCredentials | None, new: NewAccount
) -> web.Response:
    """createAccount with an existing DID: a deactivated account (see `pds.migration`)."""
    did = parse_input_did(raw_did)
    if service is None or service.did != did:
        raise AuthenticationRequired(f"Missing auth to create account with did: {did}")
    migrated = await InboundMigration(ctx.accounts, ctx.did_resolver).create_account(did, new)
    body: dict[str, Any] = {
        "handle": migrated.handle,
        "did": migrated.did,
        "accessJwt": migrated.tokens.access_jwt,
        "refreshJwt": migrated.tokens.refresh_jwt,
    }
    if migrated.did_doc is not None:
        body["didDoc"] = migrated.did_doc
    return web.json_response(body)


def _recovery_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        parse_did_key(raw)
    except CryptoError:
        raise InvalidRequest("recoveryKey must be a did:key of a supported curve") from None
    return raw


# -- sessions ---------------------------------------------------------------------------------
async def create_session(request: web.Request) -> web.Response:
    ctx = context_of(request)
    body = await json_body(request)
    identifier = body.string("identifier")
    password = body.string("password")
    allow_takendown = body.optional_boolean("allowTakendown") or False
    key = f"{identifier}-{rl.caller_ip(request)}"
    await ctx.rate_limiter.consume(
        request, (rl.CREATE_SESSION_SHORT, key), (rl.CREATE_SESSION_DAY, key)
    )
    if len(password) > OLD_PASSWORD_MAX_LENGTH:
        raise AuthenticationRequired("Password too long. Consider resetting your password.")
    login = await ctx.sessions.login(identifier, password)
    account = login.account
    if account.taken_down and not allow_takendown:
        raise AuthenticationRequired("Account has been taken down", error="AccountTakedown")
    pair = await ctx.sessions.create_session(
        account.did, login.app_password, taken_down=account.taken_down
    )
    return web.json_response(await session_body(ctx, account, pair))


async def get_session(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    account = await ctx.accounts.get(credentials.did)
    if account is None:
        raise InvalidRequest(f"Could not find user info for account: {credentials.did}")
    return web.json_response(await session_body(ctx, account))


async def refresh_session(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = ctx.auth.refresh(request)
    account = await ctx.accounts.get(credentials.did)
    if account is None:
        raise InvalidRequest(f"Could not find user info for account: {credentials.did}")
    if account.taken_down:
        raise AuthenticationRequired("Account has been taken down", error="AccountTakedown")
    rotated = await ctx.sessions.rotate_refresh_token(credentials.token_id)
    if rotated is None:
        raise InvalidRequest("Token has been revoked", error="ExpiredToken")
    return web.json_response(await session_body(ctx, account, rotated))


async def delete_session(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = ctx.auth.refresh(request, allow_expired=True)
    await ctx.sessions.revoke_refresh_token(credentials.token_id)
    return web.Response(status=200)


async def session_body(
    ctx: AppContext, account: AccountRow, tokens: TokenPair | None = None
) -> dict[str, Any]:
    status = status_of(account)
    body: dict[str, Any] = {}
    if tokens is not None:
        body["accessJwt"] = tokens.access_jwt
        body["refreshJwt"] = tokens.refresh_jwt
    body["did"] = account.did
    did_doc = await did_doc_for_session(ctx, account.did)
    if did_doc is not None:
        body["didDoc"] = did_doc
    body["handle"] = account.handle or INVALID_HANDLE
    if account.email is not None:
        body["email"] = account.email
    body["emailConfirmed"] = account.email_confirmed_at is not None
    body["active"] = status is AccountStatus.ACTIVE
    if status is not AccountStatus.ACTIVE:
        body["status"] = status.value
    return body


async def did_doc_for_session(ctx: AppContext, did: str) -> dict[str, Any] | None:
    """The account's DID document as the world sees it; left out when it cannot be resolved."""
    try:
        document = await ctx.did_resolver.resolve(did)
    except IdentityError as exc:
        log.warning("could not resolve the DID document of %s: %s", did, exc)
        return None
    return document.to_json()
