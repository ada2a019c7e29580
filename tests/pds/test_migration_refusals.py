"""Account migration refusals: createAccount with a DID, reserved keys, PLC operations.

The DIDs here are the test's own (`tests.pds.own_did`): registered at the shared directory with
their own keys, so the tests can mint service JWTs and sign PLC operations, good and bad.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from atcore import nsids
from atcore.crypto import K256Keypair, parse_did_key
from atcore.identity.plc import (
    create_update_op,
    op_to_json,
)
from atcore.syntax import parse_did
from pds.db.email_tokens import Purpose
from pds.db.engine import Database
from pds.email_codes import EmailCodes
from tests.pds.migration_support import TwoPds, start_two_pds
from tests.pds.own_did import (
    create_on,
    migrated_in,
    register_did,
)
from tests.pds.stack import create_account
from tests.pds.xrpc_client import Xrpc, bearer


@pytest.fixture(scope="module")
def two_pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoPds]:
    with start_two_pds(tmp_path_factory.mktemp("refusals")) as stacks:
        yield stacks


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- createAccount with a DID -------------------------------------------------------------------
async def test_create_account_with_did_needs_the_dids_service_jwt(
    two_pds: TwoPds, http: aiohttp.ClientSession
) -> None:
    b, xb = two_pds.b, Xrpc(http, two_pds.b)
    own, other = await register_did(http, two_pds), await register_did(http, two_pds)
    aud = b.settings.service_did
    refusals = {
        "none": (None, 401, "AuthenticationRequired"),
        "expired": (own.service_jwt(aud, exp=int(time.time()) - 5), 401, "JwtExpired"),
        "wrong aud": (own.service_jwt(two_pds.a.settings.service_did), 401, "BadJwtAudience"),
        "wrong lxm": (own.service_jwt(aud, lxm=nsids.SERVER_CREATE_SESSION), 401, None),
        "wrong key": (own.service_jwt(aud, keypair=K256Keypair.generate()), 401, None),
        "other did": (other.service_jwt(aud), 401, "AuthenticationRequired"),
    }
    for case, (token, status, error) in refusals.items():
        reply = await create_on(xb, own, token)
        assert reply.status == status, (case, reply.body)
        if error is not None:
            assert reply.error == error, (case, reply.body)
    plc_op = await create_on(xb, own, own.service_jwt(aud), plcOp={"type": "plc_operation"})
    assert (plc_op.status, plc_op.error) == (400, "InvalidRequest")
    assert "plcOp" in plc_op.body["message"]
    # None of that made an account: a handle lookup finds nobody.
    found = await xb.query(nsids.IDENTITY_RESOLVE_HANDLE, {"handle": own.handle})
    assert found.status == 400

    created = (await create_on(xb, own, own.service_jwt(aud))).ok()
    assert created["did"] == own.did
    session = (await xb.query(nsids.SERVER_GET_SESSION, headers=bearer(created["accessJwt"]))).ok()
    assert (session["active"], session["status"]) == (False, "deactivated")
    again = await create_on(xb, own, own.service_jwt(aud))
    assert again.status == 400
    async with http.get(f"{two_pds.plc_url}/{own.did}/log/last") as response:
        assert await response.json() == op_to_json(own.last)  # no PLC operation was sent


async def test_reserved_signing_key_is_used(two_pds: TwoPds, http: aiohttp.ClientSession) -> None:
    xb = Xrpc(http, two_pds.b)
    own = await register_did(http, two_pds)
    reserved = (await xb.procedure(nsids.SERVER_RESERVE_SIGNING_KEY, {"did": own.did})).ok()
    again = (await xb.procedure(nsids.SERVER_RESERVE_SIGNING_KEY, {"did": own.did})).ok()
    assert reserved == again
    parse_did_key(reserved["signingKey"])
    token = (await create_on(xb, own, own.service_jwt(two_pds.b.settings.service_did))).ok()
    credentials = (
        await xb.query(
            nsids.IDENTITY_GET_RECOMMENDED_DID_CREDENTIALS, headers=bearer(token["accessJwt"])
        )
    ).ok()
    assert credentials["verificationMethods"]["atproto"] == reserved["signingKey"]
    assert credentials["rotationKeys"] == [two_pds.b.settings.plc_rotation_keypair.did()]
    assert credentials["alsoKnownAs"] == [f"at://{own.handle}"]
    endpoint = credentials["services"]["atproto_pds"]
    assert endpoint == {"type": "AtprotoPersonalDataServer", "endpoint": two_pds.b.pds_url}
    bad = await xb.procedure(nsids.SERVER_RESERVE_SIGNING_KEY, {"did": "not-a-did"})
    assert bad.status == 400


# -- PLC operations -----------------------------------------------------------------------------
async def test_submit_refuses_operations_not_pointing_here(
    two_pds: TwoPds, http: aiohttp.ClientSession
) -> None:
    b, xb = two_pds.b, Xrpc(http, two_pds.b)
    own, token = await migrated_in(http, two_pds)
    credentials = (
        await xb.query(nsids.IDENTITY_GET_RECOMMENDED_DID_CREDENTIALS, headers=bearer(token))
    ).ok()
    key = credentials["verificationMethods"]["atproto"]
    ours = b.settings.plc_rotation_keypair.did()

    def update(**changes: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "rotation_keys": [own.rotation.did(), ours],
            "signing_key": key,
            "pds_endpoint": b.pds_url,
        }
        fields.update(changes)
        return op_to_json(create_update_op(own.last, signer=own.rotation, **fields))

    refused = {
        "drops our rotation key": update(rotation_keys=[own.rotation.did()]),
        "points elsewhere": update(pds_endpoint="https://elsewhere.example"),
        "names another key": update(signing_key=K256Keypair.generate().did()),
        "another handle": update(handle="someone-else.test"),
    }
    for case, operation in refused.items():
        reply = await xb.procedure(
            nsids.IDENTITY_SUBMIT_PLC_OPERATION, {"operation": operation}, headers=bearer(token)
        )
        assert (reply.status, reply.error) == (400, "InvalidRequest"), (case, reply.body)
        async with http.get(f"{two_pds.plc_url}/{own.did}/log/last") as response:
            assert await response.json() == op_to_json(own.last), case
    early = await xb.procedure(nsids.SERVER_ACTIVATE_ACCOUNT, {}, headers=bearer(token))
    assert early.status == 400  # the DID still names A

    accepted = await xb.procedure(
        nsids.IDENTITY_SUBMIT_PLC_OPERATION, {"operation": update()}, headers=bearer(token)
    )
    assert accepted.status == 200, accepted.body
    activated = await xb.procedure(nsids.SERVER_ACTIVATE_ACCOUNT, {}, headers=bearer(token))
    assert activated.status == 200, activated.body


async def test_sign_plc_operation_needs_the_mailed_token(
    two_pds: TwoPds, http: aiohttp.ClientSession
) -> None:
    a, xa = two_pds.a, Xrpc(http, two_pds.a)
    account = create_account(a, "leaver")
    headers = bearer(account.access_jwt)
    sign_nsid = nsids.IDENTITY_SIGN_PLC_OPERATION
    missing = await xa.procedure(sign_nsid, {}, headers=headers)
    assert missing.status == 400
    wrong = await xa.procedure(sign_nsid, {"token": "AAAAA-BBBBB"}, headers=headers)
    assert (wrong.status, wrong.error) == (400, "InvalidToken")
    did = parse_did(account.did)
    # Codes issued straight into A's database (one by a clock an hour behind).
    db = Database(a.settings.sqlite_path)
    try:
        past = EmailCodes(db, clock=lambda: time.time() - 3600)
        stale = await past.issue(did, Purpose.PLC_OPERATION)
        expired = await xa.procedure(sign_nsid, {"token": stale}, headers=headers)
        assert (expired.status, expired.error) == (400, "ExpiredToken")
        other_purpose = await EmailCodes(db).issue(did, Purpose.DELETE_ACCOUNT)
        misused = await xa.procedure(sign_nsid, {"token": other_purpose}, headers=headers)
        assert (misused.status, misused.error) == (400, "InvalidToken")
        good = await EmailCodes(db).issue(did, Purpose.PLC_OPERATION)
    finally:
        await db.close()
    bad_shape = await xa.procedure(
        sign_nsid, {"token": good, "rotationKeys": "not a list"}, headers=headers
    )
    assert bad_shape.status == 400
    signed = (await xa.procedure(sign_nsid, {"token": good}, headers=headers)).ok()
    assert signed["operation"]["type"] == "plc_operation"
    assert signed["operation"]["services"]["atproto_pds"]["endpoint"] == a.pds_url
    reused = await xa.procedure(sign_nsid, {"token": good}, headers=headers)
    assert (reused.status, reused.error) == (400, "InvalidToken")
    anonymous = await xa.procedure(nsids.IDENTITY_REQUEST_PLC_SIGNATURE, {})
    assert anonymous.status == 401
