"""Account migration endpoints (createAccount with a `did` lives in `pds.api.server`).

Into this PDS: `com.atproto.server.reserveSigningKey`, `com.atproto.repo.importRepo`,
`com.atproto.identity.getRecommendedDidCredentials` and `com.atproto.identity.submitPlcOperation`.
Away from it: `com.atproto.identity.requestPlcOperationSignature` (mails a code) and
`com.atproto.identity.signPlcOperation` (signs the new PDS's operation with our rotation key once
the code checks out). Auth follows the reference: importRepo, the signature request and signing
need a full session (the latter two also a taken-down one, so a taken-down user can still leave);
the credential and submit calls take any access token. The logic lives in `pds.migration`,
`pds.plc_operations` and `pds.repo.importer`.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from atcore import nsids
from atcore.identity.plc import PlcService, op_to_json
from atcore.xrpc import InvalidRequest, PayloadTooLarge
from pds import ratelimit as rl
from pds.api.params import Body, json_body, optional_json_body
from pds.api.server_account import email_of
from pds.auth.tokens import ACCESS_FULL, AuthScope
from pds.context import context_of
from pds.db.email_tokens import Purpose
from pds.email_codes import TOKEN_INPUT_MAX_LENGTH
from pds.migration import InboundMigration, parse_input_did
from pds.plc_operations import OperationChanges, PlcOperations
from pds.repo.errors import RepoError
from pds.repo.importer import RepoImporter

CAR_MIME: Final = "application/vnd.ipld.car"
_READ_CHUNK: Final = 256 * 1024


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(nsids.xrpc_path(nsids.SERVER_RESERVE_SIGNING_KEY), reserve_signing_key)
    router.add_post(nsids.xrpc_path(nsids.REPO_IMPORT_REPO), import_repo)
    router.add_get(
        nsids.xrpc_path(nsids.IDENTITY_GET_RECOMMENDED_DID_CREDENTIALS),
        get_recommended_did_credentials,
    )
    router.add_post(
        nsids.xrpc_path(nsids.IDENTITY_REQUEST_PLC_SIGNATURE), request_plc_operation_signature
    )
    router.add_post(nsids.xrpc_path(nsids.IDENTITY_SIGN_PLC_OPERATION), sign_plc_operation)
    router.add_post(nsids.xrpc_path(nsids.IDENTITY_SUBMIT_PLC_OPERATION), submit_plc_operation)


# -- into this PDS ----------------------------------------------------------------------------
async def reserve_signing_key(request: web.Request) -> web.Response:
    ctx = context_of(request)
    body = await optional_json_body(request)
    raw_did = body.optional_string("did")
    did = None if raw_did is None else parse_input_did(raw_did)
    await ctx.rate_limiter.consume(request, (rl.RESERVE_SIGNING_KEY, rl.caller_ip(request)))
    migration = InboundMigration(ctx.accounts, ctx.did_resolver)
    return web.json_response({"signingKey": await migration.reserve_signing_key(did)})


async def import_repo(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL, check_takedown=True)
    if not ctx.settings.accepting_repo_imports:
        raise InvalidRequest("Service is not accepting repo imports")
    if request.content_type != CAR_MIME:
        raise InvalidRequest(f"Wrong request encoding (Content-Type): expected {CAR_MIME}")
    limit = ctx.settings.max_repo_import_size
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request entity too large (the limit is {limit} bytes)")
    await ctx.rate_limiter.consume(request, (rl.IMPORT_REPO, credentials.did))
    car = await _read_car_body(request, limit)
    try:
        await RepoImporter(ctx.repo_writer).import_car(credentials.did, car)
    except RepoError as exc:
        raise InvalidRequest(exc.message, error=exc.error) from None
    return web.Response(status=200)


async def _read_car_body(request: web.Request, limit: int) -> bytes:
    buffer = bytearray()
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        buffer += chunk
        if len(buffer) > limit:
            raise PayloadTooLarge(f"request entity too large (the limit is {limit} bytes)")
    if not buffer:
        raise InvalidRequest("Request body is empty: expected a CAR file")
    return bytes(buffer)


async def get_recommended_did_credentials(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    operations = PlcOperations(ctx.accounts, ctx.did_resolver)
    return web.json_response(await operations.recommended_credentials(credentials.did))


async def submit_plc_operation(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    body = await json_body(request)
    operation = body.data.get("operation")
    if operation is None:
        raise InvalidRequest('Input must have the property "operation"')
    await PlcOperations(ctx.accounts, ctx.did_resolver).submit(credentials.did, operation)
    return web.Response(status=200)


# -- away from this PDS -----------------------------------------------------------------------
async def request_plc_operation_signature(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL | {AuthScope.TAKENDOWN})
    await ctx.rate_limiter.consume(
        request,
        (rl.REQUEST_PLC_SIGNATURE_HOUR, credentials.did),
        (rl.REQUEST_PLC_SIGNATURE_DAY, credentials.did),
    )
    email = await email_of(ctx, credentials.did)
    token = await ctx.email_codes.issue(credentials.did, Purpose.PLC_OPERATION)
    await ctx.mailer.send_plc_operation(to=email, token=token)
    return web.Response(status=200)


async def sign_plc_operation(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_FULL | {AuthScope.TAKENDOWN})
    body = await json_body(request)
    token = body.optional_string("token", max_length=TOKEN_INPUT_MAX_LENGTH)
    if not token:
        raise InvalidRequest("email confirmation token required to sign PLC operations")
    changes = _operation_changes(body)
    await ctx.rate_limiter.consume(request, (rl.SIGN_PLC_OPERATION, credentials.did))
    codes = ctx.email_codes
    canonical = await codes.check(credentials.did, Purpose.PLC_OPERATION, token)
    operations = PlcOperations(ctx.accounts, ctx.did_resolver)
    operation = await operations.sign(credentials.did, changes)
    # Spent only once the operation is signed (a directory outage does not burn the code), and
    # only one of two concurrent requests with the same code gets its operation back.
    await codes.spend(credentials.did, Purpose.PLC_OPERATION, canonical)
    return web.json_response({"operation": op_to_json(operation)})


def _operation_changes(body: Body) -> OperationChanges:
    services = body.optional_object("services")
    return OperationChanges(
        rotation_keys=_optional_strings(body, "rotationKeys"),
        also_known_as=_optional_strings(body, "alsoKnownAs"),
        verification_methods=_optional_string_map(body, "verificationMethods"),
        services=None if services is None else _services(services),
    )


def _optional_strings(body: Body, name: str) -> list[str] | None:
    value = body.data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest(f"{body.where}/{name} must be an array of strings")
    return list(value)


def _optional_string_map(body: Body, name: str) -> dict[str, str] | None:
    inner = body.optional_object(name)
    if inner is None:
        return None
    return {key: inner.string(key) for key in inner.data}


def _services(body: Body) -> dict[str, PlcService]:
    services: dict[str, PlcService] = {}
    for name in body.data:
        entry = body.optional_object(name)
        if entry is None:
            raise InvalidRequest(f"{body.where}/{name} must be an object")
        services[name] = PlcService(type=entry.string("type"), endpoint=entry.string("endpoint"))
    return services
