"""Account migration refusals, and importRepo as a round trip.

The DIDs here are the test's own: a did:plc it registered at the shared directory with its own
rotation and signing keys (an account "hosted elsewhere"), so it can mint service JWTs, build
repositories and sign PLC operations of every kind, good and bad.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atcore import dagcbor, nsids
from atcore.car import write_car
from atcore.cid import CID
from atcore.commit import UnsignedCommit, sign
from atcore.crypto import K256Keypair, parse_did_key
from atcore.datajson import BlobRef
from atcore.identity.plc import (
    PlcOperation,
    create_genesis_op,
    create_update_op,
    did_for_genesis,
    op_to_json,
)
from atcore.mst import MST
from atcore.syntax import parse_did, parse_tid
from atcore.tid import TidClock, tid_from_parts, tid_to_parts
from pds.auth.service_jwt import create_service_jwt
from pds.db.email_tokens import Purpose
from pds.db.engine import Database
from pds.email_codes import EmailCodes
from tests.pds.migration_support import TwoPds, start_two_pds
from tests.pds.repo_support import verify_repo_car
from tests.pds.stack import create_account, unique_name
from tests.pds.test_blobs_api import make_png
from tests.pds.xrpc_client import Reply, Xrpc, bearer

CAR = {"Content-Type": "application/vnd.ipld.car"}


@pytest.fixture(scope="module")
def two_pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoPds]:
    with start_two_pds(tmp_path_factory.mktemp("refusals")) as stacks:
        yield stacks


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class OwnDid:
    """A did:plc registered by the test, first pointing at PDS A."""

    did: str
    handle: str
    rotation: K256Keypair
    signing: K256Keypair
    last: PlcOperation

    def service_jwt(self, aud: str, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "keypair": self.signing,
            "iss": self.did,
            "aud": aud,
            "lxm": nsids.SERVER_CREATE_ACCOUNT,
        }
        claims.update(overrides)
        return create_service_jwt(**claims)


async def register_did(http: aiohttp.ClientSession, pds: TwoPds) -> OwnDid:
    rotation, signing = K256Keypair.generate(), K256Keypair.generate()
    handle = f"{unique_name('own')}.test"
    genesis = create_genesis_op(
        signer=rotation,
        rotation_keys=[rotation.did()],
        signing_key=signing.did(),
        handle=handle,
        pds_endpoint=pds.a.pds_url,
    )
    did = did_for_genesis(genesis)
    async with http.post(f"{pds.plc_url}/{did}", json=op_to_json(genesis)) as response:
        assert response.status == 200, await response.text()
    return OwnDid(did, handle, rotation, signing, genesis)


async def create_on(xrpc: Xrpc, own: OwnDid, token: str | None, **extra: Any) -> Reply:
    headers = {} if token is None else bearer(token)
    body = {"did": own.did, "handle": own.handle, "password": "migrating-pw", **extra}
    return await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, body, headers=headers)


async def migrated_in(http: aiohttp.ClientSession, pds: TwoPds) -> tuple[OwnDid, str]:
    """An own DID with a deactivated account on B; returns it and its access token."""
    own = await register_did(http, pds)
    reply = await create_on(Xrpc(http, pds.b), own, own.service_jwt(pds.b.settings.service_did))
    return own, reply.ok()["accessJwt"]


def repo_car(
    did: str, key: K256Keypair, records: dict[str, dict[str, Any]], rev: str | None = None
) -> bytes:
    """A signed repository export built with atcore alone (`rev`: its commit's, else now)."""
    blocks = {path: dagcbor.encode(value) for path, value in records.items()}
    cids = {path: CID.for_dag_cbor(block) for path, block in blocks.items()}
    tree = MST.from_items(cids.items())
    commit_rev = TidClock().next() if rev is None else parse_tid(rev)
    unsigned = UnsignedCommit(did=parse_did(did), data=tree.root_cid(), rev=commit_rev)
    commit = sign(unsigned, key)
    commit_block = commit.encode()
    commit_cid = CID.for_dag_cbor(commit_block)
    record_blocks = [(cids[path], block) for path, block in blocks.items()]
    return write_car(
        [commit_cid], [(commit_cid, commit_block), *tree.iter_blocks(), *record_blocks]
    )


def post(text: str) -> dict[str, Any]:
    return {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-01-01T00:00:00.000Z"}


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


# -- importRepo ---------------------------------------------------------------------------------
async def status_of(xrpc: Xrpc, token: str) -> dict[str, Any]:
    reply = await xrpc.query(nsids.SERVER_CHECK_ACCOUNT_STATUS, headers=bearer(token))
    result: dict[str, Any] = reply.ok()
    return result


async def test_import_refusals_store_nothing(two_pds: TwoPds, http: aiohttp.ClientSession) -> None:
    xb = Xrpc(http, two_pds.b)
    own, token = await migrated_in(http, two_pds)
    before = await status_of(xb, token)
    good = repo_car(own.did, own.signing, {"app.bsky.feed.post/3kaaaaaaaaaa2": post("hi")})
    stranger = await register_did(http, two_pds)
    record_root = write_car(
        [CID.for_dag_cbor(dagcbor.encode(post("x")))],
        [(CID.for_dag_cbor(dagcbor.encode(post("x"))), dagcbor.encode(post("x")))],
    )
    bad_cars = {
        "another did": repo_car(stranger.did, stranger.signing, {}),
        "garbage": b"this is not a CAR file at all",
        "truncated": good[: len(good) - 20],
        "root is a record": record_root,
        "empty": b"",
    }
    for case, car in bad_cars.items():
        reply = await xb.request(
            "POST",
            nsids.xrpc_path(nsids.REPO_IMPORT_REPO),
            data=car,
            headers={**CAR, **bearer(token)},
        )
        assert (reply.status, reply.error) == (400, "InvalidRequest"), (case, reply.body)
        assert await status_of(xb, token) == before, case
    wrong_type = await xb.request(
        "POST",
        nsids.xrpc_path(nsids.REPO_IMPORT_REPO),
        data=good,
        headers={"Content-Type": "application/json", **bearer(token)},
    )
    assert wrong_type.status == 400

    active = create_account(two_pds.b, "active")
    active_before = await status_of(xb, active.access_jwt)
    own_car = repo_car(active.did, K256Keypair.generate(), {})
    refused = await xb.request(
        "POST",
        nsids.xrpc_path(nsids.REPO_IMPORT_REPO),
        data=own_car,
        headers={**CAR, **bearer(active.access_jwt)},
    )
    assert refused.status == 400
    assert "deactivated" in refused.body["message"]
    assert await status_of(xb, active.access_jwt) == active_before


record_keys = st.from_regex(r"3[a-z2-7]{12}", fullmatch=True)
texts = st.text(max_size=40)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.dictionaries(record_keys, texts, max_size=25))
async def test_import_round_trips_through_get_repo(
    two_pds: TwoPds, records: dict[str, str]
) -> None:
    async with aiohttp.ClientSession() as http:
        xb = Xrpc(http, two_pds.b)
        own, token = await migrated_in(http, two_pds)
        values = {f"app.bsky.feed.post/{rkey}": post(text) for rkey, text in records.items()}
        car = repo_car(own.did, own.signing, values)
        for _ in range(2):  # importing again changes nothing
            reply = await xb.request(
                "POST",
                nsids.xrpc_path(nsids.REPO_IMPORT_REPO),
                data=car,
                headers={**CAR, **bearer(token)},
            )
            assert reply.status == 200, reply.body
        status = await status_of(xb, token)
        assert status["indexedRecords"] == len(values)
        credentials = (
            await xb.query(nsids.IDENTITY_GET_RECOMMENDED_DID_CREDENTIALS, headers=bearer(token))
        ).ok()
        key = parse_did_key(credentials["verificationMethods"]["atproto"])
        params = {"did": own.did}
        async with http.get(
            two_pds.b.pds_url + nsids.xrpc_path(nsids.SYNC_GET_REPO),
            params=params,
            headers=bearer(token),
        ) as response:
            assert response.status == 200
            exported = await response.read()
        _, got = verify_repo_car(exported, own.did, key)  # re-signed with B's key for it
        assert got == values


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


async def test_blob_uploaded_before_the_import_is_kept(
    two_pds: TwoPds, http: aiohttp.ClientSession
) -> None:
    xb = Xrpc(http, two_pds.b)
    own, token = await migrated_in(http, two_pds)
    png = make_png(20, 10, seed=3)
    uploaded = await xb.request(
        "POST",
        nsids.xrpc_path(nsids.REPO_UPLOAD_BLOB),
        data=png,
        headers={"Content-Type": "image/png", **bearer(token)},
    )
    blob = uploaded.ok()["blob"]
    record = {**post("with a photo"), "embed": {"$type": "app.bsky.embed.images", "images": []}}
    record["embed"]["images"].append({"alt": "noise", "image": BlobRef.from_json(blob).to_data()})
    car = repo_car(own.did, own.signing, {"app.bsky.feed.post/3kaaaaaaaaab2": record})
    reply = await xb.request(
        "POST",
        nsids.xrpc_path(nsids.REPO_IMPORT_REPO),
        data=car,
        headers={**CAR, **bearer(token)},
    )
    assert reply.status == 200, reply.body
    missing = await xb.query(nsids.REPO_LIST_MISSING_BLOBS, headers=bearer(token))
    assert missing.ok()["blobs"] == []
    status = await status_of(xb, token)
    assert (status["expectedBlobs"], status["importedBlobs"]) == (1, 1)
    params = {"did": own.did, "cid": blob["ref"]["$link"]}
    async with http.get(
        two_pds.b.pds_url + nsids.xrpc_path(nsids.SYNC_GET_BLOB),
        params=params,
        headers=bearer(token),
    ) as response:
        assert response.status == 200
        assert await response.read() == png


@pytest.mark.parametrize(
    ("env", "status", "message"),
    [
        ({"PDS_ACCEPTING_REPO_IMPORTS": "false"}, 400, "not accepting repo imports"),
        ({"PDS_MAX_REPO_IMPORT_SIZE": "600"}, 413, "the limit is 600 bytes"),
    ],
)
async def test_operator_can_close_or_bound_repo_imports(
    tmp_path: Path, http: aiohttp.ClientSession, env: dict[str, str], status: int, message: str
) -> None:
    with start_two_pds(tmp_path, **env) as pds:
        xb = Xrpc(http, pds.b)
        own, token = await migrated_in(http, pds)
        before = await status_of(xb, token)
        records = {f"app.bsky.feed.post/3kaaaaaaaaa{i}a": post("x" * 40) for i in range(2, 8)}
        car = repo_car(own.did, own.signing, records)
        assert len(car) > 600
        reply = await xb.request(
            "POST", nsids.xrpc_path(nsids.REPO_IMPORT_REPO), data=car,
            headers={**CAR, **bearer(token)},
        )  # fmt: skip
        assert reply.status == status, reply.body
        assert message in reply.body["message"]
        assert await status_of(xb, token) == before


async def test_imported_head_comes_after_the_imported_rev(
    two_pds: TwoPds, http: aiohttp.ClientSession
) -> None:
    """Revs grow for a DID across hosts: an export whose rev is ahead of this PDS's clock (the
    old host's clock ran fast) still gets a newer head here."""
    xb = Xrpc(http, two_pds.b)
    own, token = await migrated_in(http, two_pds)
    now_us, _ = tid_to_parts(str(TidClock().next()))
    ahead = str(tid_from_parts(now_us + 120_000_000, 7))  # two minutes ahead
    car = repo_car(own.did, own.signing, {"app.bsky.feed.post/3kaaaaaaaaaa2": post("x")}, ahead)
    reply = await xb.request(
        "POST", nsids.xrpc_path(nsids.REPO_IMPORT_REPO), data=car,
        headers={**CAR, **bearer(token)},
    )  # fmt: skip
    assert reply.status == 200, reply.body
    assert (await status_of(xb, token))["repoRev"] > ahead
