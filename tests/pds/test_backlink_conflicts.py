"""createRecord's backlink conflicts: one like/repost per subject, one follow/block per account.

As in the reference PDS, a createRecord (unless `validate` is false) deletes the caller's older
records of the same collection linking to the same subject, in the commit that creates the new
one; putRecord, applyWrites and `validate: false` leave duplicates alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from atproto import Client
from atproto_client.exceptions import BadRequestError

from atcore import nsids
from tests.pds.backlink_support import (
    BLOCK,
    FOLLOW,
    LIKE,
    REPOST,
    account_did,
    create,
    expected_backlinks,
    list_all,
    post_uri,
    record_for,
    stored_backlinks,
    subject_of,
)
from tests.pds.stack import LiveAccount, Stack, account_events
from tests.pds.xrpc_client import Xrpc, bearer

NewAccount = Callable[..., LiveAccount]


@pytest.fixture
def client(pds_stack: Stack) -> Iterator[Client]:
    made = Client(base_url=pds_stack.pds_url)
    yield made
    made.request.close()


def rkey_of(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def last_commit_ops(stack: Stack, did: str) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """The account's newest `#commit` event and its ops as (action, path) pairs."""
    commits = [body for kind, body in asyncio.run(account_events(stack, did)) if kind == "commit"]
    latest = commits[-1]
    return latest, {(op["action"], op["path"]) for op in latest["ops"]}


def test_sdk_double_like_and_double_follow_leave_one(
    client: Client, pds_stack: Stack, new_account: NewAccount
) -> None:
    account, followed = new_account("liker"), new_account("followed")
    client.login(account.handle, account.password)
    post = client.send_post(text="like me twice")

    first = client.like(post.uri, post.cid)
    second = client.like(post.uri, post.cid)
    assert first.uri != second.uri
    event, ops = last_commit_ops(pds_stack, account.did)
    assert ops == {
        ("delete", f"{LIKE}/{rkey_of(first.uri)}"),
        ("create", f"{LIKE}/{rkey_of(second.uri)}"),
    }
    assert len(event["ops"]) == 2
    repo = client.com.atproto.repo
    likes = repo.list_records({"repo": account.did, "collection": LIKE})
    assert [r.uri for r in likes.records] == [second.uri]
    with pytest.raises(BadRequestError) as gone:
        repo.get_record({"repo": account.did, "collection": LIKE, "rkey": rkey_of(first.uri)})
    assert gone.value.response.content.error == "RecordNotFound"

    follows = [client.follow(followed.did) for _ in range(3)]
    listed = repo.list_records({"repo": account.did, "collection": FOLLOW})
    assert [r.uri for r in listed.records] == [follows[-1].uri]
    _, ops = last_commit_ops(pds_stack, account.did)
    assert ops == {
        ("delete", f"{FOLLOW}/{rkey_of(follows[1].uri)}"),
        ("create", f"{FOLLOW}/{rkey_of(follows[2].uri)}"),
    }
    assert client.get_post(rkey_of(post.uri), account.did).uri == post.uri  # the post is untouched
    rows = stored_backlinks(pds_stack.settings.sqlite_path, account.did)
    assert rows == {
        (second.uri, "subject.uri", post.uri),
        (follows[-1].uri, "subject", followed.did),
    }


async def test_reposts_and_blocks_too_and_the_response_names_the_new_record(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account("reposter")
    # validate unset or true: both clean up conflicts (only false does not).
    for collection, subject, validate in (
        (REPOST, post_uri(1), True),
        (BLOCK, account_did(1), None),
        (BLOCK, account_did(1), True),
    ):
        first = await create(xrpc, account.access_jwt, account.did, collection, subject)
        second = await create(
            xrpc, account.access_jwt, account.did, collection, subject, validate=validate
        )
        assert second["uri"] != first["uri"]
        assert second["uri"].startswith(f"at://{account.did}/{collection}/")
        listed = await list_all(xrpc, account.did, (collection,))
        assert list(listed) == [second["uri"]]
        assert subject_of(listed[second["uri"]]) == subject
        commits = [b for k, b in await account_events(pds_stack, account.did) if k == "commit"]
        assert str(commits[-1]["commit"]) == second["commit"]["cid"]  # one commit did both


async def test_only_the_same_collection_subject_and_account_conflict(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account, other = new_account("scoped"), new_account("other")
    token = account.access_jwt
    kept = [
        await create(xrpc, token, account.did, LIKE, post_uri(2)),
        await create(xrpc, token, account.did, REPOST, post_uri(1)),
        await create(xrpc, token, account.did, FOLLOW, account_did(1)),
        await create(xrpc, token, account.did, BLOCK, account_did(2)),
        await create(xrpc, token, account.did, FOLLOW, account_did(2)),
    ]
    theirs = await create(xrpc, other.access_jwt, other.did, LIKE, post_uri(1))
    replaced = await create(xrpc, token, account.did, LIKE, post_uri(1))
    again = await create(xrpc, token, account.did, LIKE, post_uri(1))
    mine = await list_all(xrpc, account.did)
    assert set(mine) == {r["uri"] for r in kept} | {again["uri"]}
    assert replaced["uri"] not in mine
    assert list(await list_all(xrpc, other.did)) == [theirs["uri"]]
    note = {"repo": account.did, "collection": "com.example.note", "record": {"text": "hi"}}
    notes = [
        (await xrpc.procedure(nsids.REPO_CREATE_RECORD, note, headers=bearer(token))).ok()
        for _ in range(2)
    ]
    assert len(await list_all(xrpc, account.did, ("com.example.note",))) == len(notes)
    stored = stored_backlinks(pds_stack.settings.sqlite_path, account.did)
    assert stored == expected_backlinks(mine)


async def test_put_apply_writes_and_unvalidated_creates_keep_duplicates(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account("dupes")
    auth = bearer(account.access_jwt)
    subject = post_uri(3)
    first = await create(xrpc, account.access_jwt, account.did, LIKE, subject)
    put = {
        "repo": account.did,
        "collection": LIKE,
        "rkey": "3jzfcijpj2z2a",
        "record": record_for(LIKE, subject),
    }
    (await xrpc.procedure(nsids.REPO_PUT_RECORD, put, headers=auth)).ok()
    apply = {
        "repo": account.did,
        "writes": [
            {
                "$type": f"{nsids.REPO_APPLY_WRITES}#create",
                "collection": LIKE,
                "value": record_for(LIKE, subject),
            }
        ],
    }
    (await xrpc.procedure(nsids.REPO_APPLY_WRITES, apply, headers=auth)).ok()
    unvalidated = await create(xrpc, account.access_jwt, account.did, LIKE, subject, validate=False)
    assert "validationStatus" not in unvalidated
    duplicates = await list_all(xrpc, account.did)
    assert len(duplicates) == 4
    assert first["uri"] in duplicates
    assert unvalidated["uri"] in duplicates
    # The unvalidated ones are indexed all the same: the next validated create removes all four.
    assert stored_backlinks(pds_stack.settings.sqlite_path, account.did) == expected_backlinks(
        duplicates
    )
    last = await create(xrpc, account.access_jwt, account.did, LIKE, subject)
    assert list(await list_all(xrpc, account.did)) == [last["uri"]]
    commits = [b for k, b in await account_events(pds_stack, account.did) if k == "commit"]
    ops = {(op["action"], op["path"].split("/", 1)[1]) for op in commits[-1]["ops"]}
    expected = {("delete", rkey_of(uri)) for uri in duplicates}
    assert ops == expected | {("create", rkey_of(last["uri"]))}


async def test_creating_over_a_taken_record_key_still_fails(
    xrpc: Xrpc, new_account: NewAccount
) -> None:
    account = new_account("takenkey")
    subject = post_uri(4)
    first = await create(xrpc, account.access_jwt, account.did, LIKE, subject, rkey="3jzfcijpj2z2b")
    body = {
        "repo": account.did,
        "collection": LIKE,
        "rkey": "3jzfcijpj2z2b",
        "record": record_for(LIKE, subject),
    }
    reply = await xrpc.procedure(nsids.REPO_CREATE_RECORD, body, headers=bearer(account.access_jwt))
    assert (reply.status, reply.error) == (400, "InvalidRequest")
    assert "already exists" in reply.body["message"]
    assert list(await list_all(xrpc, account.did)) == [first["uri"]]


async def test_racing_double_taps_leave_exactly_one(
    pds_stack: Stack, new_account: NewAccount
) -> None:
    """Concurrent likes of one post (group-committed together): every request succeeds and one
    like remains; each commit deleted what the commits before it had created."""
    account = new_account("racer")
    subject = post_uri(5)
    url = pds_stack.xrpc(nsids.REPO_CREATE_RECORD)
    body = {"repo": account.did, "collection": LIKE, "record": record_for(LIKE, subject)}

    async def tap(http: aiohttp.ClientSession) -> str:
        async with http.post(url, json=body, headers=account.bearer) as response:
            assert response.status == 200, await response.text()
            uri: str = (await response.json())["uri"]
            return uri

    async with aiohttp.ClientSession() as http:
        uris = await asyncio.gather(*[tap(http) for _ in range(12)])
        remaining = await list_all(Xrpc(http, pds_stack), account.did)
    assert len(set(uris)) == 12
    assert len(remaining) == 1
    assert set(remaining) <= set(uris)
    commits = [b for k, b in await account_events(pds_stack, account.did) if k == "commit"][1:]
    assert len(commits) == 12
    deleted = [op["path"] for c in commits for op in c["ops"] if op["action"] == "delete"]
    created = [op["path"] for c in commits for op in c["ops"] if op["action"] == "create"]
    assert len(created) == 12
    assert sorted(deleted) == sorted(set(created) - {f"{LIKE}/{rkey_of(u)}" for u in remaining})
    assert stored_backlinks(pds_stack.settings.sqlite_path, account.did) == expected_backlinks(
        remaining
    )
