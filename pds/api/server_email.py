"""com.atproto.server: the account's email address (the logic lives in `pds.email_address`).

Auth and limits follow the reference PDS: confirming takes any access token of a signed-in,
not taken-down account (app passwords too); changing the address takes a full session. Asking
for a code is limited to 5 an hour and 15 a day per account. Taking a code (confirmEmail,
updateEmail) is limited per account too (ours: the reference has no limit there).
"""

from __future__ import annotations

from aiohttp import web

from atcore import nsids
from pds import ratelimit as rl
from pds.accounts import MAX_EMAIL_LENGTH
from pds.api.params import json_body
from pds.auth.tokens import ACCESS_FULL
from pds.context import context_of
from pds.email_codes import TOKEN_INPUT_MAX_LENGTH


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(
        nsids.xrpc_path(nsids.SERVER_REQUEST_EMAIL_CONFIRMATION), request_email_confirmation
    )
    router.add_post(nsids.xrpc_path(nsids.SERVER_CONFIRM_EMAIL), confirm_email)
    router.add_post(nsids.xrpc_path(nsids.SERVER_REQUEST_EMAIL_UPDATE), request_email_update)
    router.add_post(nsids.xrpc_path(nsids.SERVER_UPDATE_EMAIL), update_email)


async def request_email_confirmation(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, check_takedown=True)
    await ctx.rate_limiter.consume(
        request,
        (rl.REQUEST_EMAIL_CONFIRMATION_HOUR, credentials.did),
        (rl.REQUEST_EMAIL_CONFIRMATION_DAY, credentials.did),
    )
    await ctx.email_addresses.request_confirmation(credentials.did)
    return web.Response(status=200)


async def confirm_email(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, check_takedown=True)
    body = await json_body(request)
    email = body.string("email", max_length=MAX_EMAIL_LENGTH)
    token = body.string("token", max_length=TOKEN_INPUT_MAX_LENGTH)
    await ctx.rate_limiter.consume(request, (rl.CONFIRM_EMAIL, credentials.did))
    await ctx.email_addresses.confirm(credentials.did, email, token)
    return web.Response(status=200)


async def request_email_update(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL, check_takedown=True)
    await ctx.rate_limiter.consume(
        request,
        (rl.REQUEST_EMAIL_UPDATE_HOUR, credentials.did),
        (rl.REQUEST_EMAIL_UPDATE_DAY, credentials.did),
    )
    token_required = await ctx.email_addresses.request_update(credentials.did)
    return web.json_response({"tokenRequired": token_required})


async def update_email(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL, check_takedown=True)
    body = await json_body(request)
    email = body.string("email", max_length=MAX_EMAIL_LENGTH)
    token = body.optional_string("token", max_length=TOKEN_INPUT_MAX_LENGTH)
    # `emailAuthFactor` (sign-in codes by email) is not offered here; as in the reference's
    # handler, the flag is ignored.
    body.optional_boolean("emailAuthFactor")
    await ctx.rate_limiter.consume(request, (rl.UPDATE_EMAIL, credentials.did))
    await ctx.email_addresses.update(credentials.did, email, token)
    return web.Response(status=200)
