"""Account migration between two live PDSes sharing one PLC directory, the official way.

The steps follow the atproto account-migration guide (and `goat account migrate`), with the
`atproto` SDK as the client wherever it has the call: service auth on the old PDS, createAccount
with the DID on the new one, repo export and import, missing blobs, preferences, recommended DID
credentials, the emailed PLC signature on the old PDS, submitting it on the new one, activation
and deactivation. Then everything a relay, an AppView or the user relies on is checked on the new
PDS with atcore alone (never the code under test).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from atproto import Client, models

from atcore import nsids
from atcore.car import read_car
from atcore.crypto import parse_did_key
from skyspot_client import PhotoInput, post_checkin
from tests.pds.migration_support import TwoPds, firehose_events, mailed_code, start_two_pds
from tests.pds.repo_support import verify_repo_car
from tests.pds.stack import LiveAccount, Stack, account_events, create_account
from tests.pds.test_blobs_api import make_png
from tests.pds.xrpc_client import Xrpc, bearer


@pytest.fixture(scope="module")
def two_pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoPds]:
    with start_two_pds(tmp_path_factory.mktemp("migration")) as stacks:
        yield stacks


@pytest.fixture
def closing_clients() -> Iterator[list[Client]]:
    """SDK clients the test makes; their HTTP connections are closed afterwards."""
    clients: list[Client] = []
    yield clients
    for client in clients:
        client.request.close()


def sdk_client(stack: Stack, identifier: str, password: str) -> Client:
    """An SDK client logged in on `stack`, and staying there.

    The SDK follows the session's DID document to the account's PDS; while a migration is under
    way that document still names the old PDS, so the client is pinned back (as the SDK's
    migration recipe does).
    """
    client = Client(base_url=stack.pds_url)
    client.login(identifier, password, fetch_bsky_profile=False)
    client.update_base_url(stack.pds_url)
    return client


def populate(client: Client, did: str) -> None:
    """A check-in with a real PNG photo, its companion post, and two plain records."""
    photo = PhotoInput(make_png(64, 48, seed=7), alt="Noise over Lisbon")
    post_checkin(client, lat=38.713909, lon=-9.133476, place="Miradouro da Graça", photos=[photo])
    for text in ("first", "second"):
        client.com.atproto.repo.create_record(
            models.ComAtprotoRepoCreateRecord.Data(
                repo=did,
                collection="app.bsky.feed.post",
                record={"$type": "app.bsky.feed.post", "text": text, "createdAt": _now()},
            )
        )


def _now() -> str:
    from atcore.syntax import Datetime

    return Datetime.now()


PREFERENCES = [
    {"$type": "app.bsky.actor.defs#adultContentPref", "enabled": False},
    {"$type": "app.bsky.actor.defs#savedFeedsPrefV2", "items": []},
]


async def records_of(xrpc: Xrpc, did: str) -> dict[str, tuple[str, Any]]:
    """uri -> (cid, value) of every record, through describeRepo and listRecords."""
    described = (await xrpc.query(nsids.REPO_DESCRIBE_REPO, {"repo": did})).ok()
    found: dict[str, tuple[str, Any]] = {}
    for collection in described["collections"]:
        params = {"repo": did, "collection": collection, "limit": "100"}
        listed = (await xrpc.query(nsids.REPO_LIST_RECORDS, params)).ok()
        for record in listed["records"]:
            found[record["uri"]] = (record["cid"], record["value"])
    return found


async def blobs_of(xrpc: Xrpc, did: str) -> dict[str, bytes]:
    listed = (await xrpc.query(nsids.SYNC_LIST_BLOBS, {"did": did})).ok()["cids"]
    found: dict[str, bytes] = {}
    for cid in listed:
        params = {"did": did, "cid": cid}
        reply = await xrpc.http.get(
            xrpc.stack.pds_url + nsids.xrpc_path(nsids.SYNC_GET_BLOB), params=params
        )
        async with reply:
            assert reply.status == 200
            found[cid] = await reply.read()
    return found


async def test_migrate_an_account_from_a_to_b(
    two_pds: TwoPds, caplog: pytest.LogCaptureFixture, closing_clients: list[Client]
) -> None:
    caplog.set_level("WARNING", logger="pds.mailer")
    a, b = two_pds.a, two_pds.b
    account = create_account(a, "mover")
    did = account.did
    old = sdk_client(a, account.handle, account.password)
    closing_clients.append(old)
    populate(old, did)
    async with aiohttp.ClientSession() as http:
        xa, xb = Xrpc(http, a), Xrpc(http, b)
        put = await xa.procedure(
            nsids.BSKY_ACTOR_PUT_PREFERENCES,
            {"preferences": PREFERENCES},
            headers=bearer(account.access_jwt),
        )
        assert put.status == 200, put.body
        before = await records_of(xa, did)
        assert len(before) == 4
        photos = await blobs_of(xa, did)
        assert len(photos) == 1

        new = await migrate(old, account, a, b, xa, xb, caplog)
        closing_clients.append(new)

        # The DID now names B: its URL, its rotation key and the account's new signing key.
        async with http.get(f"{two_pds.plc_url}/{did}/data") as response:
            data = await response.json()
        assert data["services"]["atproto_pds"]["endpoint"] == b.pds_url
        assert b.settings.plc_rotation_keypair.did() in data["rotationKeys"]
        new_key = data["verificationMethods"]["atproto"]
        old_key_data = old.com.atproto.identity.get_recommended_did_credentials()
        assert new_key != old_key_data.verification_methods["atproto"]

        # B's repository verifies against the DID's new key and holds every record of A's.
        car = new.com.atproto.sync.get_repo(models.ComAtprotoSyncGetRepo.Params(did=did))
        commit, exported = verify_repo_car(car, did, parse_did_key(new_key))
        assert {f"at://{did}/{path}" for path in exported} == set(before)
        assert await records_of(xb, did) == before
        for uri, (cid, value) in before.items():
            _, collection, rkey = uri.removeprefix("at://").split("/")
            params = {"repo": did, "collection": collection, "rkey": rkey}
            got = (await xb.query(nsids.REPO_GET_RECORD, params)).ok()
            assert (got["cid"], got["value"]) == (cid, value)

        # The photo is served by B, byte for byte as A served it.
        assert await blobs_of(xb, did) == photos

        # B's firehose announces the account: #identity, #account active, #sync of the repo.
        events = await account_events(b, did)
        frames = await firehose_events(http, b, did, until_seq=events[-1][1]["seq"])
        kinds = [frame.type for frame in frames]
        assert {"#identity", "#account", "#sync"} <= set(kinds)
        assert "#commit" not in kinds  # nothing before activation; import emits no commit
        account_frames = [f.body for f in frames if f.type == "#account"]
        assert account_frames[-1]["active"] is True
        sync = [f.body for f in frames if f.type == "#sync"][-1]
        roots, _ = read_car(sync["blocks"])
        assert roots == [commit.cid]
        assert sync["rev"] == commit.rev

        # A reports the account deactivated; preferences came along.
        status = (
            await xa.query(nsids.SERVER_CHECK_ACCOUNT_STATUS, headers=bearer(account.access_jwt))
        ).ok()
        assert status["activated"] is False
        assert status["validDid"] is False
        prefs = (
            await xb.query(
                nsids.BSKY_ACTOR_GET_PREFERENCES,
                headers=bearer((await xb.login(did, account.password)).ok()["accessJwt"]),
            )
        ).ok()
        assert prefs["preferences"] == PREFERENCES

        # Writing on B goes on from the imported repository.
        created = new.com.atproto.repo.create_record(
            models.ComAtprotoRepoCreateRecord.Data(
                repo=did,
                collection="app.bsky.feed.post",
                record={"$type": "app.bsky.feed.post", "text": "from B", "createdAt": _now()},
            )
        )
        after = await records_of(xb, did)
        assert created.uri in after
        assert len(after) == len(before) + 1
        car = new.com.atproto.sync.get_repo(models.ComAtprotoSyncGetRepo.Params(did=did))
        verify_repo_car(car, did, parse_did_key(new_key))


async def migrate(
    old: Client,
    account: LiveAccount,
    a: Stack,
    b: Stack,
    xa: Xrpc,
    xb: Xrpc,
    caplog: pytest.LogCaptureFixture,
) -> Client:
    """The official migration steps; returns the SDK client logged in on B."""
    did = account.did
    token = old.com.atproto.server.get_service_auth(
        models.ComAtprotoServerGetServiceAuth.Params(
            aud=b.settings.service_did, lxm=nsids.SERVER_CREATE_ACCOUNT
        )
    ).token
    fresh = Client(base_url=b.pds_url)
    created = fresh.com.atproto.server.create_account(
        models.ComAtprotoServerCreateAccount.Data(
            did=did, handle=account.handle, email=account.email, password=account.password
        ),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.did == did
    fresh.request.close()
    new = sdk_client(b, did, account.password)
    session = new.com.atproto.server.get_session()
    assert (session.active, session.status) == (False, "deactivated")

    car = old.com.atproto.sync.get_repo(models.ComAtprotoSyncGetRepo.Params(did=did))
    with warnings.catch_warnings():
        # The SDK hands httpx raw bytes as `data=`, which httpx deprecates (SDK 0.0.73).
        warnings.filterwarnings("ignore", "Use 'content=<...>'", DeprecationWarning)
        assert new.com.atproto.repo.import_repo(car)
        missing = new.com.atproto.repo.list_missing_blobs().blobs
        assert len(missing) == 1
        for blob in missing:
            params = models.ComAtprotoSyncGetBlob.Params(did=did, cid=blob.cid)
            uploaded = new.upload_blob(old.com.atproto.sync.get_blob(params))
            assert str(uploaded.blob.cid) == blob.cid
    assert new.com.atproto.repo.list_missing_blobs().blobs == []

    prefs = (
        await xa.query(nsids.BSKY_ACTOR_GET_PREFERENCES, headers=bearer(account.access_jwt))
    ).ok()
    new_bearer = bearer((await xb.login(did, account.password)).ok()["accessJwt"])
    put = await xb.procedure(nsids.BSKY_ACTOR_PUT_PREFERENCES, prefs, headers=new_bearer)
    assert put.status == 200, put.body

    credentials = new.com.atproto.identity.get_recommended_did_credentials()
    old.com.atproto.identity.request_plc_operation_signature()
    code = mailed_code(caplog, account.email)
    signed = await xa.procedure(
        nsids.IDENTITY_SIGN_PLC_OPERATION,
        {
            "token": code,
            "rotationKeys": credentials.rotation_keys,
            "alsoKnownAs": credentials.also_known_as,
            "verificationMethods": dict(credentials.verification_methods),
            "services": {
                name: dict(service) for name, service in dict(credentials.services).items()
            },
        },
        headers=bearer(account.access_jwt),
    )
    operation = signed.ok()["operation"]
    assert new.com.atproto.identity.submit_plc_operation(
        models.ComAtprotoIdentitySubmitPlcOperation.Data(operation=operation)
    )
    assert new.com.atproto.server.activate_account()
    assert old.com.atproto.server.deactivate_account()
    assert new.com.atproto.server.get_session().active is True
    return new
