"""importRepo: refusals that store nothing, the operator's switches, and round trips.

The repositories are built with atcore alone for DIDs of the test's own (`tests.pds.own_did`)
whose accounts were created here deactivated, as an incoming migration does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atcore import dagcbor, nsids
from atcore.car import write_car
from atcore.cid import CID
from atcore.crypto import K256Keypair, parse_did_key
from atcore.datajson import BlobRef
from atcore.tid import TidClock, tid_from_parts, tid_to_parts
from tests.pds.migration_support import TwoPds, start_two_pds
from tests.pds.own_did import (
    CAR,
    migrated_in,
    post,
    register_did,
    repo_car,
    status_of,
)
from tests.pds.repo_support import verify_repo_car
from tests.pds.stack import create_account
from tests.pds.test_blobs_api import make_png
from tests.pds.xrpc_client import Xrpc, bearer


@pytest.fixture(scope="module")
def two_pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoPds]:
    with start_two_pds(tmp_path_factory.mktemp("refusals")) as stacks:
        yield stacks


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


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
