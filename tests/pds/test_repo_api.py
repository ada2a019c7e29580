"""com.atproto.repo over HTTP: the real `atproto` SDK, bad input, and verification of the result.

The repository the SDK builds is then read straight from the stack's database and checked with
atcore alone: the CAR export against the key in the account's DID document (fetched from the
local PLC directory), and every `#commit` event the writes produced.
"""

from __future__ import annotations

import asyncio
import json
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from atproto import Client, models
from atproto_client.exceptions import BadRequestError

from atcore import dagcbor, nsids
from atcore.crypto import PublicKey
from atcore.identity.diddoc import DidDocument
from pds.db.engine import Database
from pds.repo.reader import RepoReader
from pds.sequencer import events_after
from tests.pds.repo_support import check_chain, commit_chain, verify_repo_car
from tests.pds.stack import LiveAccount, Stack, post_json

NewAccount = Callable[..., LiveAccount]
CUSTOM = "com.example.skyspot.note"


@pytest.fixture
def client(pds_stack: Stack) -> Iterator[Client]:
    made = Client(base_url=pds_stack.pds_url)
    yield made
    made.request.close()


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def post_raw(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def account_key(stack: Stack, did: str) -> PublicKey:
    with urllib.request.urlopen(f"{stack.plc_url}/{did}", timeout=30) as response:
        document = DidDocument.parse(response.read())
    key = document.verification_key("atproto")
    assert key is not None
    return key


async def read_stored(stack: Stack, did: str) -> tuple[bytes, list[tuple[str, dict[str, Any]]]]:
    """The repo's CAR export and every stored event, read from the stack's database file."""
    db = Database(stack.settings.sqlite_path)
    try:
        car = b"".join([chunk async for chunk in RepoReader(db).export_car(did)])
        async with db.read() as conn:
            stored = await events_after(conn, 0, limit=1_000_000)
        return car, [(e.event_type, dagcbor.decode(e.body)) for e in stored]
    finally:
        await db.close()


def stored_repo(stack: Stack, did: str) -> tuple[bytes, list[tuple[str, dict[str, Any]]]]:
    return asyncio.run(read_stored(stack, did))


def test_sdk_posts_and_manages_custom_records(
    client: Client, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account("sdkrepo")
    client.login(account.handle, account.password)
    post = client.send_post(text="checking in from the test suite")
    assert post.uri.startswith(f"at://{account.did}/{nsids.BSKY_FEED_POST}/")

    repo = client.com.atproto.repo
    created = repo.create_record(
        models.ComAtprotoRepoCreateRecord.Data(
            repo=account.did, collection=CUSTOM, record={"note": "hello", "n": 1}
        )
    )
    assert created.validation_status == "unknown"
    rkey = created.uri.rsplit("/", 1)[1]
    fetched = repo.get_record(
        models.ComAtprotoRepoGetRecord.Params(repo=account.handle, collection=CUSTOM, rkey=rkey)
    )
    assert fetched.cid == created.cid
    assert fetched.value["note"] == "hello"
    listed = repo.list_records(
        models.ComAtprotoRepoListRecords.Params(repo=account.did, collection=CUSTOM)
    )
    assert [r.uri for r in listed.records] == [created.uri]

    applied = repo.apply_writes(
        models.ComAtprotoRepoApplyWrites.Data(
            repo=account.did,
            writes=[
                models.ComAtprotoRepoApplyWrites.Create(
                    collection=CUSTOM, rkey="second", value={"note": "two"}
                ),
                models.ComAtprotoRepoApplyWrites.Update(
                    collection=CUSTOM, rkey=rkey, value={"note": "hello again"}
                ),
            ],
        )
    )
    assert [type(r).__name__ for r in applied.results] == ["CreateResult", "UpdateResult"]
    repo.delete_record(
        models.ComAtprotoRepoDeleteRecord.Data(repo=account.did, collection=CUSTOM, rkey="second")
    )
    with pytest.raises(BadRequestError) as missing:
        repo.get_record(
            models.ComAtprotoRepoGetRecord.Params(
                repo=account.did, collection=CUSTOM, rkey="second"
            )
        )
    assert missing.value.response.content.error == "RecordNotFound"

    described = repo.describe_repo(models.ComAtprotoRepoDescribeRepo.Params(repo=account.did))
    assert sorted(described.collections) == sorted([CUSTOM, nsids.BSKY_FEED_POST])
    assert described.handle_is_correct is True

    car, events = stored_repo(pds_stack, account.did)
    key = account_key(pds_stack, account.did)
    _, records = verify_repo_car(car, account.did, key)
    assert records[f"{CUSTOM}/{rkey}"]["note"] == "hello again"
    assert f"{CUSTOM}/second" not in records
    assert records[post.uri.split("/", 3)[3]]["text"] == "checking in from the test suite"
    chain = commit_chain(events, account.did)
    assert len(chain) == 5  # genesis, post, create, applyWrites, delete
    check_chain(chain, key)


def test_put_identical_record_makes_no_commit(pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account("putnoop")
    url = pds_stack.xrpc(nsids.REPO_PUT_RECORD)
    body = {"repo": account.did, "collection": CUSTOM, "rkey": "self", "record": {"a": 1}}
    status, first = post_json(url, body, account.bearer)
    assert status == 200
    assert "commit" in first
    status, second = post_json(url, body, account.bearer)
    assert status == 200
    assert "commit" not in second
    assert second["cid"] == first["cid"]


def _bad_inputs(did: str) -> list[tuple[str, dict[str, Any], str]]:
    ok_record = {"text": "hi", "createdAt": "2024-01-01T00:00:00Z"}
    return [
        ("collection int", {"repo": did, "collection": 7, "record": {}}, "InvalidRequest"),
        ("record string", {"repo": did, "collection": CUSTOM, "record": "x"}, "InvalidRequest"),
        ("no record", {"repo": did, "collection": CUSTOM}, "InvalidRequest"),
        ("float", {"repo": did, "collection": CUSTOM, "record": {"x": 1.5}}, "InvalidRequest"),
        (
            "bad rkey",
            {"repo": did, "collection": CUSTOM, "rkey": "a/b", "record": {}},
            "InvalidRequest",
        ),
        ("bad collection", {"repo": did, "collection": "nope", "record": {}}, "InvalidRequest"),
        (
            "wrong $type",
            {"repo": did, "collection": CUSTOM, "record": {"$type": "com.example.other"}},
            "InvalidRequest",
        ),
        (
            "invalid post",
            {"repo": did, "collection": nsids.BSKY_FEED_POST, "record": {"text": 5}},
            "InvalidRequest",
        ),
        (
            "validate unknown",
            {"repo": did, "collection": CUSTOM, "validate": True, "record": {}},
            "InvalidRequest",
        ),
        (
            "missing blob",
            {
                "repo": did,
                "collection": CUSTOM,
                "record": {
                    "img": {
                        "$type": "blob",
                        "ref": {
                            "$link": "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
                        },
                        "mimeType": "image/png",
                        "size": 10,
                    }
                },
            },
            "BlobNotFound",
        ),
        (
            "bad swap",
            {
                "repo": did,
                "collection": nsids.BSKY_FEED_POST,
                "record": ok_record,
                "swapCommit": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
            },
            "InvalidSwap",
        ),
    ]


def test_bad_input_is_a_4xx_and_changes_nothing(pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account("badin")
    other = new_account("victim")
    url = pds_stack.xrpc(nsids.REPO_CREATE_RECORD)
    before, _ = stored_repo(pds_stack, account.did)
    for name, body, error in _bad_inputs(account.did):
        status, answer = post_json(url, body, account.bearer)
        assert (status, answer.get("error")) == (400, error), name
    headers = {**account.bearer, "Content-Type": "application/json"}
    status, answer = post_raw(url, b'{"repo": ', headers)
    assert (status, answer["error"]) == (400, "InvalidRequest")
    huge = {"repo": account.did, "collection": CUSTOM, "record": {"t": "x" * 1_100_000}}
    status, answer = post_raw(url, json.dumps(huge).encode(), headers)
    assert status == 413
    status, answer = post_json(
        url, {"repo": other.did, "collection": CUSTOM, "record": {}}, account.bearer
    )
    assert (status, answer["error"]) == (401, "AuthenticationRequired")
    status, answer = post_json(url, {"repo": account.did, "collection": CUSTOM, "record": {}})
    assert status == 401
    create = {"$type": f"{nsids.REPO_APPLY_WRITES}#create", "collection": CUSTOM, "value": {}}
    failed_batch = {
        "repo": account.did,
        "writes": [
            create,
            {
                "$type": f"{nsids.REPO_APPLY_WRITES}#delete",
                "collection": CUSTOM,
                "rkey": "never-existed",
            },
        ],
    }
    status, answer = post_json(
        pds_stack.xrpc(nsids.REPO_APPLY_WRITES), failed_batch, account.bearer
    )
    assert (status, answer["error"]) == (400, "InvalidRequest")
    too_many = {"repo": account.did, "writes": [create] * 201}
    status, answer = post_json(pds_stack.xrpc(nsids.REPO_APPLY_WRITES), too_many, account.bearer)
    assert (status, answer["error"]) == (400, "InvalidRequest")
    after, _ = stored_repo(pds_stack, account.did)
    assert after == before


def test_read_errors(pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account("reader")
    base = pds_stack.xrpc(nsids.REPO_LIST_RECORDS)
    status, answer = get_json(f"{base}?repo={account.did}&collection={CUSTOM}&limit=101")
    assert (status, answer["error"]) == (400, "InvalidRequest")
    status, answer = get_json(f"{base}?repo=did:plc:unknownunknownunknown&collection={CUSTOM}")
    assert (status, answer["error"]) == (400, "InvalidRequest")
    status, answer = get_json(f"{pds_stack.xrpc(nsids.REPO_DESCRIBE_REPO)}?repo=nobody.test")
    assert (status, answer["error"]) == (400, "RepoNotFound")


async def test_concurrent_writers_over_http(pds_stack: Stack, new_account: NewAccount) -> None:
    """16 writers on one repo and 16 on their own repos at once: nothing lost, chains linear."""
    shared = new_account("shared")
    own = [new_account(f"own{n}") for n in range(16)]
    url = pds_stack.xrpc(nsids.REPO_CREATE_RECORD)

    async def writer(
        http: aiohttp.ClientSession, account: LiveAccount, n: int, count: int
    ) -> list[str]:
        uris = []
        for i in range(count):
            body = {"repo": account.did, "collection": CUSTOM, "record": {"w": n, "i": i}}
            async with http.post(url, json=body, headers=account.bearer) as response:
                assert response.status == 200, await response.text()
                uris.append((await response.json())["uri"])
        return uris

    async with aiohttp.ClientSession() as http:
        results = await asyncio.gather(
            *[writer(http, shared, n, 5) for n in range(16)],
            *[writer(http, account, n, 3) for n, account in enumerate(own)],
        )
    shared_uris = [uri for uris in results[:16] for uri in uris]
    expected = [(shared, shared_uris), *zip(own, results[16:], strict=True)]
    for account, uris in expected:
        car, events = await read_stored(pds_stack, account.did)
        key = account_key(pds_stack, account.did)
        _, records = verify_repo_car(car, account.did, key)
        assert sorted(f"at://{account.did}/{path}" for path in records) == sorted(uris)
        chain = commit_chain(events, account.did)
        assert len(chain) == len(uris) + 1
        check_chain(chain, key)


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A small, valid RGB PNG (signature, IHDR, IDAT, IEND with correct CRCs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 60, y * 80, 200)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# The SDK hands httpx raw bytes through a deprecated argument when uploading.
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_sdk_send_image_pins_the_uploaded_blob(
    client: Client, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account("imager")
    client.login(account.handle, account.password)
    image = png_bytes()
    post = client.send_image(text="a checkin photo", image=image, image_alt="tiny test image")
    rkey = post.uri.rsplit("/", 1)[1]
    record = client.com.atproto.repo.get_record(
        models.ComAtprotoRepoGetRecord.Params(
            repo=account.did, collection=nsids.BSKY_FEED_POST, rkey=rkey
        )
    )
    blob = record.value["embed"]["images"][0]["image"]
    assert blob.mime_type == "image/png"
    assert blob.size == len(image)
    fetched = client.com.atproto.sync.get_blob(
        models.ComAtprotoSyncGetBlob.Params(did=account.did, cid=str(blob.cid))
    )
    assert fetched == image
    car, _ = stored_repo(pds_stack, account.did)
    _, records = verify_repo_car(car, account.did, account_key(pds_stack, account.did))
    stored_ref = records[f"{nsids.BSKY_FEED_POST}/{rkey}"]["embed"]["images"][0]["image"]
    assert str(stored_ref["ref"]) == str(blob.cid)
