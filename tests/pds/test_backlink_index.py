"""The backlink index: the rules, its upkeep through every write path, account deletion and the
writer's handling of conflicts between commits of one group commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atcore import nsids
from pds.repo.backlinks import Backlink, backlinks_of
from pds.repo.prepare import PreparedWrite
from pds.repo.writer import WriteOutcome
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
from tests.pds.repo_support import RepoEnv, make_env
from tests.pds.stack import LiveAccount, Stack
from tests.pds.xrpc_client import Xrpc, bearer

NewAccount = Callable[..., LiveAccount]
FIXED_KEYS = ("3jzfcijpj2z2a", "3jzfcijpj2z2b", "3jzfcijpj2z2c")
COLLECTIONS = (LIKE, REPOST, FOLLOW)


# -- the rules ----------------------------------------------------------------------------------
def test_backlinks_of_the_four_types_and_nothing_else() -> None:
    like = record_for(LIKE, post_uri(1))
    assert backlinks_of(like) == (Backlink("subject.uri", post_uri(1)),)
    assert backlinks_of(record_for(REPOST, post_uri(2))) == (Backlink("subject.uri", post_uri(2)),)
    assert backlinks_of(record_for(FOLLOW, account_did(1))) == (
        Backlink("subject", account_did(1)),
    )
    assert backlinks_of(record_for(BLOCK, account_did(2))) == (Backlink("subject", account_did(2)),)
    malformed: list[dict[str, Any]] = [
        {"$type": FOLLOW, "subject": "alice.test"},  # a handle, not a DID
        {"$type": BLOCK, "subject": {"uri": post_uri(1)}},
        {"$type": FOLLOW},
        {"$type": LIKE, "subject": {"uri": "https://example.com/post"}},
        {"$type": LIKE, "subject": {"cid": "x"}},
        {"$type": REPOST, "subject": post_uri(1)},  # the URI itself, not a strong ref
        {"$type": nsids.BSKY_FEED_POST, "subject": account_did(1), "text": "hi"},
        {"subject": account_did(1)},
    ]
    assert [backlinks_of(record) for record in malformed] == [()] * len(malformed)


# -- upkeep through the API (property) ----------------------------------------------------------
subjects = st.integers(0, 2)
targets = st.integers(0, 7)  # picks one of the collection's records (or a fixed key if none)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("create"),
            st.sampled_from(COLLECTIONS),
            subjects,
            st.sampled_from([None, True, False]),
        ),
        st.tuples(
            st.just("put"), st.sampled_from(COLLECTIONS), st.sampled_from(FIXED_KEYS), subjects
        ),
        st.tuples(st.just("apply_create"), st.sampled_from(COLLECTIONS), subjects),
        st.tuples(st.just("apply_update"), st.sampled_from(COLLECTIONS), targets, subjects),
        st.tuples(st.just("apply_delete"), st.sampled_from(COLLECTIONS), targets),
        st.tuples(st.just("delete"), st.sampled_from(COLLECTIONS), targets),
    ),
    max_size=8,
)


def subject_for(collection: str, n: int) -> str:
    return post_uri(n) if collection in (LIKE, REPOST) else account_did(n)


class Model:
    """What the repository must hold: uri → (collection, subject)."""

    def __init__(self, did: str) -> None:
        self.did = did
        self.records: dict[str, tuple[str, str]] = {}

    def uri(self, collection: str, rkey: str) -> str:
        return f"at://{self.did}/{collection}/{rkey}"

    def target(self, collection: str, pick: int) -> str:
        """One of the collection's records, else a fixed (maybe absent) key."""
        mine = sorted(uri for uri, (c, _) in self.records.items() if c == collection)
        return mine[pick % len(mine)] if mine else self.uri(collection, FIXED_KEYS[0])

    def created(self, uri: str, collection: str, subject: str, replaces: bool) -> None:
        if replaces:
            for old in [u for u, record in self.records.items() if record == (collection, subject)]:
                del self.records[old]
        self.records[uri] = (collection, subject)


async def apply_op(xrpc: Xrpc, account: LiveAccount, model: Model, op: tuple[Any, ...]) -> None:
    auth = bearer(account.access_jwt)
    kind, collection = op[0], op[1]
    repo = account.did
    if kind == "create":
        subject, validate = subject_for(collection, op[2]), op[3]
        made = await create(xrpc, account.access_jwt, repo, collection, subject, validate=validate)
        model.created(made["uri"], collection, subject, replaces=validate is not False)
    elif kind == "put":
        subject = subject_for(collection, op[3])
        body = {"repo": repo, "collection": collection, "rkey": op[2]}
        body["record"] = record_for(collection, subject)
        (await xrpc.procedure(nsids.REPO_PUT_RECORD, body, headers=auth)).ok()
        model.records[model.uri(collection, op[2])] = (collection, subject)
    elif kind in ("apply_create", "apply_update", "apply_delete"):
        await apply_writes_op(xrpc, account, model, op)
    else:
        rkey = model.target(collection, op[2]).rsplit("/", 1)[1]
        body = {"repo": repo, "collection": collection, "rkey": rkey}
        (await xrpc.procedure(nsids.REPO_DELETE_RECORD, body, headers=auth)).ok()
        model.records.pop(model.uri(collection, rkey), None)


async def apply_writes_op(
    xrpc: Xrpc, account: LiveAccount, model: Model, op: tuple[Any, ...]
) -> None:
    kind, collection = op[0], op[1]
    write: dict[str, Any] = {
        "$type": f"{nsids.REPO_APPLY_WRITES}#{kind[6:]}",
        "collection": collection,
    }
    if kind != "apply_create":
        target = model.target(collection, op[2])
        write["rkey"] = target.rsplit("/", 1)[1]
    subject = subject_for(collection, op[-1])  # (unused by a delete)
    if kind != "apply_delete":
        write["value"] = record_for(collection, subject)
    body = {"repo": account.did, "writes": [write]}
    reply = await xrpc.procedure(nsids.REPO_APPLY_WRITES, body, headers=bearer(account.access_jwt))
    if kind == "apply_create":
        model.records[reply.ok()["results"][0]["uri"]] = (collection, subject)
    elif target not in model.records:  # updating or deleting an absent record fails whole
        assert (reply.status, reply.error) == (400, "InvalidRequest"), reply.body
    elif kind == "apply_update":
        reply.ok()
        model.records[target] = (collection, subject)
    else:
        reply.ok()
        del model.records[target]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
async def test_index_matches_the_listed_records_after_any_writes(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount, ops: list[tuple[Any, ...]]
) -> None:
    account = new_account("prop")
    model = Model(account.did)
    for op in ops:
        await apply_op(xrpc, account, model, op)
    listed = await list_all(xrpc, account.did)
    assert {uri: (uri.split("/")[3], subject_of(v)) for uri, v in listed.items()} == model.records
    assert stored_backlinks(pds_stack.settings.sqlite_path, account.did) == expected_backlinks(
        listed
    )


async def test_account_deletion_drops_its_backlinks(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    doomed, bystander = new_account("doomed"), new_account("bystander")
    for account in (doomed, bystander):
        await create(xrpc, account.access_jwt, account.did, LIKE, post_uri(1))
        await create(xrpc, account.access_jwt, account.did, FOLLOW, account_did(1))
    path = pds_stack.settings.sqlite_path
    assert len(stored_backlinks(path, doomed.did)) == 2
    admin = {"Authorization": pds_stack.admin_authorization}
    reply = await xrpc.procedure(nsids.ADMIN_DELETE_ACCOUNT, {"did": doomed.did}, headers=admin)
    assert reply.status == 200, reply.body
    assert stored_backlinks(path, doomed.did) == set()
    assert stored_backlinks(path, bystander.did) == expected_backlinks(
        await list_all(xrpc, bystander.did)
    )


# -- conflicts within one group commit (the writer itself) -------------------------------------
@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RepoEnv]:
    async for value in make_env(tmp_path):
        yield value


async def test_conflicts_see_the_commits_planned_before_them_in_the_batch(env: RepoEnv) -> None:
    """While one commit holds the writer, a put moving like X to another post and a create
    liking X's old post queue up and are planned in one batch: the create must see the put
    (not delete X), and a second create must see the first (and delete it)."""
    did = await env.new_account("batched")

    def like(subject: str, *, rkey: str | None = None) -> PreparedWrite:
        return env.prep.create(
            did, LIKE, record_for(LIKE, subject), rkey=rkey, replace_conflicts=True
        )

    x = (await env.writer.apply_writes(did, [like(post_uri(1), rkey=FIXED_KEYS[0])])).results[-1]
    moved = env.prep.put(did, LIKE, FIXED_KEYS[0], record_for(LIKE, post_uri(2)))
    outcomes: list[WriteOutcome] = list(
        await asyncio.gather(
            env.writer.apply_writes(
                did, [env.prep.create(did, REPOST, record_for(REPOST, post_uri(1)))]
            ),
            env.writer.apply_writes(did, [moved]),
            env.writer.apply_writes(did, [like(post_uri(1))]),
            env.writer.apply_writes(did, [like(post_uri(1))]),
        )
    )
    first, second = outcomes[2], outcomes[3]
    assert [r.action for r in first.results] == ["create"]  # X was moved away first
    assert [(r.action, r.uri) for r in second.results] == [
        ("delete", first.results[0].uri),
        ("create", second.results[1].uri),
    ]
    seqs = [o.commit.seq for o in outcomes if o.commit is not None]
    assert seqs == sorted(seqs)
    listed, _ = await env.reader.list_records(did, LIKE, limit=10, cursor=None, reverse=False)
    assert sorted(r.uri for r in listed) == sorted([x.uri, second.results[1].uri])
    async with env.db.read() as conn:
        rows = set(await conn.exec_driver_sql("SELECT uri, path, link_to FROM backlink"))
    assert rows == {
        (x.uri, "subject.uri", post_uri(2)),
        (second.results[1].uri, "subject.uri", post_uri(1)),
        (outcomes[0].results[0].uri, "subject.uri", post_uri(1)),
    }
