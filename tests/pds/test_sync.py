"""com.atproto.sync reads over HTTP, checked with atcore alone (what a relay would check).

Repositories are built through the repo API on the shared live stack; exports and proofs are
verified against the signing key in the account's DID document, resolved from the local PLC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from atcore import dagcbor, nsids
from atcore.car import read_car
from atcore.cid import CID
from atcore.commit import SignedCommit
from atcore.crypto import PublicKey
from atcore.identity.resolver import DidResolver
from atcore.mst import MST, MemoryBlockStore, verify_proof
from tests.pds.stack import LiveAccount, Stack, create_account
from tests.pds.xrpc_client import Reply, Xrpc

NewAccount = Callable[..., LiveAccount]
NOTE = "com.example.skyspot.note"
OTHER = "com.example.skyspot.tag"
CAR = "application/vnd.ipld.car"


# -- helpers ----------------------------------------------------------------------------------
async def write(xrpc: Xrpc, account: LiveAccount, creates: list[tuple[str, str, Any]]) -> None:
    """One applyWrites commit creating (collection, rkey, value) records."""
    writes = [
        {"$type": "com.atproto.repo.applyWrites#create", "collection": c, "rkey": k, "value": v}
        for c, k, v in creates
    ]
    reply = await xrpc.procedure(
        nsids.REPO_APPLY_WRITES,
        {"repo": account.did, "writes": writes},
        headers=account.bearer,
    )
    reply.ok()


def notes(prefix: str, count: int, padding: int = 0) -> list[tuple[str, str, Any]]:
    return [
        (NOTE, f"{prefix}{i:04d}", {"text": f"{prefix} note {i} " + "x" * padding, "n": i})
        for i in range(count)
    ]


async def raw_get(xrpc: Xrpc, nsid: str, params: Any, **kwargs: Any) -> tuple[int, bytes, Any]:
    """GET returning (status, body bytes, headers) without decoding."""
    url = xrpc.stack.pds_url + nsids.xrpc_path(nsid)
    async with xrpc.http.get(url, params=params, **kwargs) as response:
        return response.status, await response.read(), response.headers


async def get_car(xrpc: Xrpc, nsid: str, params: Any) -> tuple[list[CID], dict[CID, bytes]]:
    status, body, headers = await raw_get(xrpc, nsid, params)
    assert status == 200, body
    assert headers["Content-Type"] == CAR
    return read_car(body)  # verifies every block against its CID


async def signing_key(xrpc: Xrpc, did: str) -> PublicKey:
    """The account's key from its DID document, resolved from the local PLC directory."""
    resolver = DidResolver(session=xrpc.http, plc_url=xrpc.stack.plc_url, allow_http_loopback=True)
    document = await resolver.resolve(did)
    assert document.atproto_key is not None
    return document.atproto_key


async def all_records(xrpc: Xrpc, did: str, collection: str) -> dict[str, CID]:
    """path -> CID of every record listRecords returns, following cursors."""
    found: dict[str, CID] = {}
    cursor: str | None = None
    while True:
        params = {"repo": did, "collection": collection, "limit": "100"}
        if cursor:
            params["cursor"] = cursor
        body = (await xrpc.query(nsids.REPO_LIST_RECORDS, params)).ok()
        for record in body["records"]:
            found[record["uri"].split("/", 3)[3]] = CID.parse(record["cid"])
        cursor = body.get("cursor")
        if not cursor or not body["records"]:
            return found


def assert_error(reply: Reply, error: str, status: int = 400) -> None:
    assert (reply.status, reply.error) == (status, error), (reply.status, reply.body)


# -- getRepo ----------------------------------------------------------------------------------
async def test_get_repo_verifies_and_reimports_to_the_same_root(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    # Enough data for a deep tree and a CAR of many 64 KiB chunks.
    for batch in range(2):
        await write(xrpc, account, notes(f"b{batch}-", 150, padding=400))
    await write(xrpc, account, [(OTHER, "self", {"name": "tag"})])

    status, body, headers = await raw_get(xrpc, nsids.SYNC_GET_REPO, {"did": account.did})
    assert status == 200
    assert headers["Content-Type"] == CAR
    assert headers.get("Transfer-Encoding") == "chunked"
    assert len(body) > 2 * 64 * 1024  # several chunks
    roots, blocks = read_car(body)

    commit = SignedCommit.decode(blocks[roots[0]])
    assert commit.did == account.did
    assert commit.verify(await signing_key(xrpc, account.did))
    latest = (await xrpc.query(nsids.SYNC_GET_LATEST_COMMIT, {"did": account.did})).ok()
    assert latest == {"cid": str(roots[0]), "rev": commit.rev}

    tree = MST.load(MemoryBlockStore(blocks), commit.data)
    items = dict(tree.items())
    listed = {
        **await all_records(xrpc, account.did, NOTE),
        **await all_records(xrpc, account.did, OTHER),
    }
    assert items == listed
    assert len(items) == 301
    for path, cid in items.items():
        assert cid in blocks, f"record {path} missing from the CAR"
        assert dagcbor.decode(blocks[cid])["$type"] in (NOTE, OTHER)
    fresh = MST.create()
    for path, cid in items.items():
        fresh.put(path, cid)
    assert fresh.root_cid() == commit.data


async def test_get_repo_since_sends_only_newer_blocks(xrpc: Xrpc, new_account: NewAccount) -> None:
    account = new_account()
    await write(xrpc, account, notes("a", 40))
    old_rev = (await xrpc.query(nsids.SYNC_GET_LATEST_COMMIT, {"did": account.did})).ok()["rev"]
    _, before = await get_car(xrpc, nsids.SYNC_GET_REPO, {"did": account.did})
    await write(xrpc, account, notes("b", 5))

    roots, diff = await get_car(xrpc, nsids.SYNC_GET_REPO, {"did": account.did, "since": old_rev})
    assert diff
    assert not diff.keys() & before.keys()
    latest = (await xrpc.query(nsids.SYNC_GET_LATEST_COMMIT, {"did": account.did})).ok()
    assert roots == [CID.parse(latest["cid"])]
    # The old export plus the diff is the whole new repository.
    merged = {**before, **diff}
    commit = SignedCommit.decode(merged[roots[0]])
    tree = MST.load(MemoryBlockStore(merged), commit.data)
    assert len(dict(tree.items())) == 45
    assert all(cid in merged for _, cid in tree.items())

    _, nothing = await get_car(
        xrpc, nsids.SYNC_GET_REPO, {"did": account.did, "since": latest["rev"]}
    )
    assert nothing == {}


# -- getRecord --------------------------------------------------------------------------------
async def test_get_record_proves_presence_and_absence(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    await write(xrpc, account, notes("r", 60))
    key = await signing_key(xrpc, account.did)
    listed = await all_records(xrpc, account.did, NOTE)

    for rkey in ("r0000", "r0031", "r0059"):
        params = {"did": account.did, "collection": NOTE, "rkey": rkey}
        roots, blocks = await get_car(xrpc, nsids.SYNC_GET_RECORD, params)
        commit = SignedCommit.decode(blocks[roots[0]])
        assert commit.verify(key)
        proven = verify_proof(commit.data, f"{NOTE}/{rkey}", blocks)
        assert proven == listed[f"{NOTE}/{rkey}"]
        assert dagcbor.decode(blocks[proven])["text"] == f"r note {int(rkey[1:])} "

    for rkey in ("r0000a", "zzz", "a"):
        params = {"did": account.did, "collection": NOTE, "rkey": rkey}
        roots, blocks = await get_car(xrpc, nsids.SYNC_GET_RECORD, params)
        commit = SignedCommit.decode(blocks[roots[0]])
        assert commit.verify(key)
        assert verify_proof(commit.data, f"{NOTE}/{rkey}", blocks) is None
        assert len(blocks) < 10  # a path through the tree, not the tree


# -- getBlocks --------------------------------------------------------------------------------
async def test_get_blocks(xrpc: Xrpc, new_account: NewAccount) -> None:
    account = new_account()
    await write(xrpc, account, notes("k", 3))
    listed = await all_records(xrpc, account.did, NOTE)
    wanted = [str(cid) for cid in listed.values()]
    params = [("did", account.did), *[("cids", cid) for cid in wanted]]
    roots, blocks = await get_car(xrpc, nsids.SYNC_GET_BLOCKS, params)
    assert roots == []
    assert sorted(str(cid) for cid in blocks) == sorted(wanted)

    absent = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    reply = await xrpc.query(
        nsids.SYNC_GET_BLOCKS,
        MultiDict([("did", account.did), ("cids", wanted[0]), ("cids", absent)]),
    )
    assert_error(reply, "InvalidRequest")
    assert reply.body["message"] == f"Could not find cids: {absent}"

    for bad in ([("did", account.did)], [("did", account.did), ("cids", "nope")]):
        reply = await xrpc.query(nsids.SYNC_GET_BLOCKS, MultiDict(bad))
        assert_error(reply, "InvalidRequest")


# -- listRepos / getRepoStatus ----------------------------------------------------------------
async def test_list_repos_pages_through_every_repo(xrpc: Xrpc, new_account: NewAccount) -> None:
    mine = {new_account().did for _ in range(3)}
    seen: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = (await xrpc.query(nsids.SYNC_LIST_REPOS, params)).ok()
        pages += 1
        assert len(body["repos"]) <= 2
        for repo in body["repos"]:
            assert repo["did"] not in seen
            seen[repo["did"]] = repo
        cursor = body.get("cursor")
        if not cursor:
            break
    assert pages >= 2
    assert list(seen) == sorted(seen)
    assert mine <= seen.keys()
    for did in mine:
        latest = (await xrpc.query(nsids.SYNC_GET_LATEST_COMMIT, {"did": did})).ok()
        assert seen[did] == {
            "did": did,
            "head": latest["cid"],
            "rev": latest["rev"],
            "active": True,
        }


async def test_inactive_repos_are_reported_and_hidden(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    resting, banned = new_account(), new_account()
    (await xrpc.procedure(nsids.SERVER_DEACTIVATE_ACCOUNT, {}, headers=resting.bearer)).ok()
    takedown = {
        "subject": {"$type": nsids.ADMIN_DEFS_REPO_REF, "did": banned.did},
        "takedown": {"applied": True, "ref": "test"},
    }
    admin = {"Authorization": pds_stack.admin_authorization}
    (await xrpc.procedure(nsids.ADMIN_UPDATE_SUBJECT_STATUS, takedown, headers=admin)).ok()

    for account, status, error in (
        (resting, "deactivated", "RepoDeactivated"),
        (banned, "takendown", "RepoTakendown"),
    ):
        body = (await xrpc.query(nsids.SYNC_GET_REPO_STATUS, {"did": account.did})).ok()
        assert body == {"did": account.did, "active": False, "status": status}
        for nsid in (nsids.SYNC_GET_REPO, nsids.SYNC_GET_LATEST_COMMIT, nsids.SYNC_LIST_BLOBS):
            assert_error(await xrpc.query(nsid, {"did": account.did}), error)
        # The admin still reads it.
        (await xrpc.query(nsids.SYNC_GET_LATEST_COMMIT, {"did": account.did}, headers=admin)).ok()
        listed = (await xrpc.query(nsids.SYNC_LIST_REPOS, {"limit": "1000"})).ok()["repos"]
        entry = next(repo for repo in listed if repo["did"] == account.did)
        assert (entry["active"], entry["status"]) == (False, status)
    # The deactivated account's own session can read its repo.
    (
        await xrpc.query(nsids.SYNC_GET_LATEST_COMMIT, {"did": resting.did}, headers=resting.bearer)
    ).ok()


async def test_repo_status_of_an_active_account(xrpc: Xrpc, new_account: NewAccount) -> None:
    account = new_account()
    latest = (await xrpc.query(nsids.SYNC_GET_LATEST_COMMIT, {"did": account.did})).ok()
    body = (await xrpc.query(nsids.SYNC_GET_REPO_STATUS, {"did": account.did})).ok()
    assert body == {"did": account.did, "active": True, "rev": latest["rev"]}


# -- errors -----------------------------------------------------------------------------------
UNKNOWN_DID = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
GOOD_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

DID_PARAMS: dict[str, dict[str, str]] = {
    nsids.SYNC_GET_REPO: {},
    nsids.SYNC_GET_LATEST_COMMIT: {},
    nsids.SYNC_GET_RECORD: {"collection": NOTE, "rkey": "self"},
    nsids.SYNC_GET_BLOCKS: {"cids": GOOD_CID},
    nsids.SYNC_GET_REPO_STATUS: {},
    nsids.SYNC_LIST_BLOBS: {},
    nsids.SYNC_GET_BLOB: {"cid": GOOD_CID},
}


@pytest.mark.parametrize("nsid", list(DID_PARAMS))
async def test_unknown_repo_is_repo_not_found(xrpc: Xrpc, nsid: str) -> None:
    reply = await xrpc.query(nsid, {"did": UNKNOWN_DID, **DID_PARAMS[nsid]})
    assert_error(reply, "RepoNotFound")


@pytest.mark.parametrize("nsid", list(DID_PARAMS))
@pytest.mark.parametrize("did", ["", "alice", "did:plc", "at://did:plc:abc", "did:PLC:abc"])
async def test_malformed_did_is_invalid_request(xrpc: Xrpc, nsid: str, did: str) -> None:
    reply = await xrpc.query(nsid, {"did": did, **DID_PARAMS[nsid]})
    assert_error(reply, "InvalidRequest")


@pytest.mark.parametrize("nsid", list(DID_PARAMS))
async def test_missing_did_is_invalid_request(xrpc: Xrpc, nsid: str) -> None:
    assert_error(await xrpc.query(nsid, DID_PARAMS[nsid]), "InvalidRequest")


@pytest.mark.parametrize(
    ("nsid", "params"),
    [
        (nsids.SYNC_GET_REPO, {"since": "not-a-tid"}),
        (nsids.SYNC_LIST_BLOBS, {"since": "3"}),
        (nsids.SYNC_LIST_BLOBS, {"limit": "0"}),
        (nsids.SYNC_LIST_BLOBS, {"limit": "1001"}),
        (nsids.SYNC_LIST_BLOBS, {"limit": "ten"}),
        (nsids.SYNC_LIST_BLOBS, {"cursor": "not a cid"}),
        (nsids.SYNC_GET_RECORD, {"collection": "notnsid", "rkey": "self"}),
        (nsids.SYNC_GET_RECORD, {"collection": NOTE, "rkey": ".."}),
        (nsids.SYNC_GET_RECORD, {"collection": NOTE}),
        (nsids.SYNC_GET_BLOB, {"cid": "bafy-not-a-cid"}),
        (nsids.SYNC_GET_BLOB, {}),
    ],
)
async def test_malformed_params_are_invalid_request(
    xrpc: Xrpc, new_account: NewAccount, nsid: str, params: dict[str, str]
) -> None:
    account = new_account()
    assert_error(await xrpc.query(nsid, {"did": account.did, **params}), "InvalidRequest")


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "1001"}, {"limit": "-1"}, {"cursor": "not-a-did"}]
)
async def test_malformed_list_repos_params(xrpc: Xrpc, params: dict[str, str]) -> None:
    assert_error(await xrpc.query(nsids.SYNC_LIST_REPOS, params), "InvalidRequest")


async def test_bad_credentials_on_a_public_read_are_refused(
    xrpc: Xrpc, new_account: NewAccount
) -> None:
    account = new_account()
    params = {"did": account.did}
    reply = await xrpc.query(
        nsids.SYNC_GET_LATEST_COMMIT, params, headers={"Authorization": "Bearer nope"}
    )
    assert_error(reply, "InvalidToken")
    reply = await xrpc.query(
        nsids.SYNC_GET_LATEST_COMMIT, params, headers={"Authorization": "Basic YWRtaW46bm9wZQ=="}
    )
    assert reply.status == 401


SYNC_READS = [*DID_PARAMS, nsids.SYNC_LIST_REPOS, nsids.REPO_LIST_MISSING_BLOBS]
PARAM_NAMES = ["did", "cid", "cids", "since", "limit", "cursor", "collection", "rkey"]


@pytest.fixture(scope="module")
def hosted_did(pds_stack: Stack) -> str:
    return create_account(pds_stack, "fuzz").did


@settings(max_examples=60)
@given(
    nsid=st.sampled_from(SYNC_READS),
    params=st.lists(st.tuples(st.sampled_from(PARAM_NAMES), st.text(max_size=80)), max_size=6),
    use_real_did=st.booleans(),
)
def test_arbitrary_params_never_cause_a_server_error(
    pds_stack: Stack,
    hosted_did: str,
    nsid: str,
    params: list[tuple[str, str]],
    use_real_did: bool,
) -> None:
    query = [("did", hosted_did)] if use_real_did else []
    response = httpx.get(pds_stack.xrpc(nsid), params=[*query, *params], timeout=30)
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.json()["error"]
