"""RepoWriter on a real SQLite database: commits, events, CAS, no-ops, block hygiene, races."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from atcore.car import read_car
from atcore.cid import CID
from atcore.commit import SignedCommit
from atcore.mst import MST, MemoryBlockStore
from atcore.nsids import BSKY_FEED_POST
from atcore.tid import TidClock
from pds.db import schema
from pds.repo.errors import AccountUnavailable, InvalidSwap, InvalidWrite, RepoNotFound
from pds.repo.prepare import PreparedWrite
from pds.repo.writer import RepoWriter
from tests.pds.repo_support import (
    RepoEnv,
    check_chain,
    commit_chain,
    make_env,
    verify_commit_event,
    verify_repo_car,
)

COLLECTION = "com.example.thing"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RepoEnv]:
    async for value in make_env(tmp_path):
        yield value


def post(text: str) -> dict[str, Any]:
    return {"$type": BSKY_FEED_POST, "text": text, "createdAt": "2024-05-01T12:00:00.000Z"}


async def block_cids(env: RepoEnv, did: str) -> set[CID]:
    async with env.db.read() as conn:
        rows = await conn.execute(
            select(schema.repo_block.c.cid).where(schema.repo_block.c.did == did)
        )
        return {CID.from_bytes(bytes(row[0])) for row in rows}


async def head(env: RepoEnv, did: str) -> tuple[CID, str]:
    found = await env.reader.get_head(did)
    assert found is not None
    return found


async def test_new_repo_is_an_empty_signed_commit_with_commit_and_sync_events(
    env: RepoEnv,
) -> None:
    did = await env.new_account("alice")
    _commit, records = verify_repo_car(await env.export(did), did, env.keys[did].public_key)
    assert records == {}
    events = await env.events()
    assert [kind for kind, _ in events] == ["commit", "sync"]
    genesis = events[0][1]
    assert genesis["since"] is None
    assert genesis["ops"] == []
    verify_commit_event(genesis, env.keys[did].public_key)
    sync_roots, sync_blocks = read_car(events[1][1]["blocks"])
    assert sync_roots == [genesis["commit"]]
    assert SignedCommit.decode(sync_blocks[genesis["commit"]]).rev == events[1][1]["rev"]
    assert events[1][1]["seq"] == genesis["seq"] + 1


async def test_create_get_list_delete_round_trip(env: RepoEnv) -> None:
    did = await env.new_account("bob")
    created = await env.writer.apply_writes(did, [env.prep.create(did, BSKY_FEED_POST, post("hi"))])
    assert created.commit is not None
    result = created.results[0]
    assert result.action == "create"
    assert result.validation_status == "valid"
    rkey = result.write.rkey
    got = await env.reader.get_record(did, BSKY_FEED_POST, rkey)
    assert got is not None
    assert got.value == post("hi")
    assert got.cid == str(result.cid)
    listed, cursor = await env.reader.list_records(
        did, BSKY_FEED_POST, limit=10, cursor=None, reverse=False
    )
    assert [r.uri for r in listed] == [result.uri]
    assert cursor is None
    assert await env.reader.list_collections(did) == [BSKY_FEED_POST]

    deleted = await env.writer.apply_writes(
        did, [env.prep.delete(did, BSKY_FEED_POST, rkey, missing_ok=True)]
    )
    assert deleted.commit is not None
    assert deleted.results[0].action == "delete"
    assert await env.reader.get_record(did, BSKY_FEED_POST, rkey) is None
    _, records = verify_repo_car(await env.export(did), did, env.keys[did].public_key)
    assert records == {}
    check_chain(commit_chain(await env.events(), did), env.keys[did].public_key)


async def test_identical_put_and_absent_delete_make_no_commit(env: RepoEnv) -> None:
    did = await env.new_account("carol")
    first = await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "self", {"a": 1})])
    assert first.commit is not None
    assert first.results[0].action == "create"
    before_events = len(await env.events())
    before_head = await head(env, did)
    again = await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "self", {"a": 1})])
    assert again.commit is None
    assert again.results[0].action is None
    gone = await env.writer.apply_writes(
        did, [env.prep.delete(did, COLLECTION, "nothing", missing_ok=True)]
    )
    assert gone.commit is None
    assert len(await env.events()) == before_events
    assert await head(env, did) == before_head
    changed = await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "self", {"a": 2})])
    assert changed.commit is not None
    assert changed.results[0].action == "update"


async def test_swaps_are_checked_and_refusals_change_nothing(env: RepoEnv) -> None:
    did = await env.new_account("dave")
    first = await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "k", {"v": 1})])
    assert first.commit is not None
    state = (await head(env, did), await block_cids(env, did), len(await env.events()))
    stale_commit = CID.for_dag_cbor(b"\xa0")
    with pytest.raises(InvalidSwap, match="Commit was at"):
        await env.writer.apply_writes(
            did, [env.prep.put(did, COLLECTION, "k", {"v": 2})], swap_commit=stale_commit
        )
    with pytest.raises(InvalidSwap, match="Record was at"):
        await env.writer.apply_writes(
            did, [env.prep.put(did, COLLECTION, "k", {"v": 2}, swap_record=None)]
        )
    with pytest.raises(InvalidWrite, match="Could not find record"):
        await env.writer.apply_writes(
            did,
            [
                env.prep.create(did, COLLECTION, {"v": 3}),
                env.prep.update(did, COLLECTION, "missing", {"v": 3}),
            ],
        )
    with pytest.raises(InvalidWrite, match="already exists"):
        await env.writer.apply_writes(did, [env.prep.create(did, COLLECTION, {"v": 4}, rkey="k")])
    assert (await head(env, did), await block_cids(env, did), len(await env.events())) == state
    swapped = await env.writer.apply_writes(
        did,
        [env.prep.put(did, COLLECTION, "k", {"v": 5}, swap_record=first.results[0].cid)],
        swap_commit=state[0][0],
    )
    assert swapped.commit is not None


async def test_unknown_repo_is_refused(env: RepoEnv) -> None:
    did = "did:plc:nobodyhereatall000000000"
    with pytest.raises(RepoNotFound):
        await env.writer.apply_writes(did, [env.prep.create(did, COLLECTION, {"a": 1})])


async def test_stored_blocks_are_exactly_the_reachable_ones(env: RepoEnv) -> None:
    """Random creates/updates/deletes: no block leaks, none goes missing, every event verifies."""
    did = await env.new_account("erin")
    rng = random.Random(7)
    live: dict[str, int] = {}
    for step in range(80):
        writes: list[PreparedWrite] = []
        for _ in range(rng.randint(1, 6)):
            rkey = f"r{rng.randint(0, 300)}"
            if rkey in live and rng.random() < 0.4:
                writes.append(env.prep.delete(did, COLLECTION, rkey))
                live.pop(rkey)
            else:
                # Values repeat on purpose: identical records share one block.
                value = rng.randint(0, 3)
                writes.append(env.prep.put(did, COLLECTION, rkey, {"v": value}))
                live[rkey] = value
        try:
            await env.writer.apply_writes(did, writes)
        except InvalidWrite:
            pytest.fail(f"step {step}: a valid batch was refused")
    _, records = verify_repo_car(await env.export(did), did, env.keys[did].public_key)
    assert {path: rec["v"] for path, rec in records.items()} == {
        f"{COLLECTION}/{k}": v for k, v in live.items()
    }
    roots, blocks = read_car(await env.export(did))
    assert await block_cids(env, did) == set(blocks)
    commit = SignedCommit.decode(blocks[roots[0]])
    reachable = {cid for cid, _ in MST.load(MemoryBlockStore(blocks), commit.data).iter_blocks()}
    reachable |= {cid for _, cid in MST.load(MemoryBlockStore(blocks), commit.data).items()}
    assert set(blocks) == reachable | {roots[0]}
    check_chain(commit_chain(await env.events(), did), env.keys[did].public_key)


async def test_record_sharing_a_block_survives_the_other_ones_delete(env: RepoEnv) -> None:
    did = await env.new_account("frank")
    await env.writer.apply_writes(
        did,
        [
            env.prep.put(did, COLLECTION, "a", {"same": True}),
            env.prep.put(did, COLLECTION, "b", {"same": True}),
        ],
    )
    await env.writer.apply_writes(did, [env.prep.delete(did, COLLECTION, "a")])
    kept = await env.reader.get_record(did, COLLECTION, "b")
    assert kept is not None
    assert kept.value == {"$type": COLLECTION, "same": True}
    verify_repo_car(await env.export(did), did, env.keys[did].public_key)


async def test_rev_stays_above_the_stored_rev_when_the_clock_lags(env: RepoEnv) -> None:
    did = await env.new_account("gina")
    stored_rev = (await head(env, did))[1]
    lagging = RepoWriter(env.sequencer, clock=TidClock(now_us=lambda: 1_000_000))
    outcome = await lagging.apply_writes(did, [env.prep.put(did, COLLECTION, "x", {"a": 1})])
    assert outcome.commit is not None
    assert outcome.commit.rev > stored_rev


async def test_sixteen_concurrent_writers_to_one_repo(env: RepoEnv) -> None:
    did = await env.new_account("hank")

    async def writer(n: int) -> list[str]:
        uris = []
        for i in range(5):
            out = await env.writer.apply_writes(
                did, [env.prep.create(did, COLLECTION, {"writer": n, "i": i})]
            )
            uris.append(out.results[0].uri)
        return uris

    acknowledged = [uri for uris in await asyncio.gather(*map(writer, range(16))) for uri in uris]
    assert len(set(acknowledged)) == 80
    _, records = verify_repo_car(await env.export(did), did, env.keys[did].public_key)
    assert {f"at://{did}/{path}" for path in records} == set(acknowledged)
    chain = commit_chain(await env.events(), did)
    assert len(chain) == 81  # genesis + one commit per acknowledged write
    check_chain(chain, env.keys[did].public_key)


async def test_sixteen_concurrent_writers_to_sixteen_repos(env: RepoEnv) -> None:
    dids = [await env.new_account(f"user{n}") for n in range(16)]

    async def writer(did: str) -> list[str]:
        return [
            (await env.writer.apply_writes(did, [env.prep.create(did, COLLECTION, {"i": i})]))
            .results[0]
            .uri
            for i in range(4)
        ]

    results = await asyncio.gather(*map(writer, dids))
    events = await env.events()
    seqs = [body["seq"] for _, body in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    for did, uris in zip(dids, results, strict=True):
        _, records = verify_repo_car(await env.export(did), did, env.keys[did].public_key)
        assert {f"at://{did}/{path}" for path in records} == set(uris)
        check_chain(commit_chain(events, did), env.keys[did].public_key)


async def test_export_since_returns_only_newer_blocks(env: RepoEnv) -> None:
    did = await env.new_account("ivy")
    first = await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "one", {"n": 1})])
    assert first.commit is not None
    second = await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "two", {"n": 2})])
    assert second.commit is not None
    roots, blocks = read_car(await env.export(did, since=first.commit.rev))
    assert roots == [second.commit.cid]
    assert second.commit.cid in blocks
    assert second.results[0].cid in blocks
    assert first.results[0].cid not in blocks


async def test_sequence_numbers_survive_account_deletion(env: RepoEnv) -> None:
    did = await env.new_account("jack")
    await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "x", {"n": 1})])
    last = max(body["seq"] for _, body in await env.events())
    async with env.sequencer.transaction() as conn:
        await env.writer.delete_repo(conn, did)
        await conn.execute(schema.repo_seq.delete())
    other = await env.new_account("kate")
    assert min(body["seq"] for _, body in await env.events()) > last
    async with env.db.read() as conn:
        assert (
            await conn.scalar(
                select(func.count())
                .select_from(schema.repo_block)
                .where(schema.repo_block.c.did == did)
            )
            == 0
        )
    assert other != did


async def set_status(env: RepoEnv, did: str, **values: Any) -> None:
    async with env.db.transaction() as conn:
        await conn.execute(
            schema.account.update().where(schema.account.c.did == did).values(**values)
        )


@pytest.mark.parametrize(
    ("column", "error"),
    [("deactivated_at", "AccountDeactivated"), ("takedown_ref", "AccountTakedown")],
)
async def test_inactive_accounts_refuse_writes_even_with_a_cached_head(
    env: RepoEnv, column: str, error: str
) -> None:
    did = await env.new_account(f"inactive-{column}")
    await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "a", {"n": 1})])
    before = (await head(env, did), len(await env.events()))
    await set_status(env, did, **{column: 1 if column == "deactivated_at" else "ref-1"})
    with pytest.raises(AccountUnavailable) as refused:
        await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "a", {"n": 2})])
    assert refused.value.error == error
    assert (await head(env, did), len(await env.events())) == before
    await set_status(env, did, **{column: None})
    again = await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "a", {"n": 2})])
    assert again.commit is not None
    check_chain(commit_chain(await env.events(), did), env.keys[did].public_key)


async def test_writes_to_a_deleted_repo_are_refused(env: RepoEnv) -> None:
    did = await env.new_account("doomed")
    await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "a", {"n": 1})])
    async with env.sequencer.transaction() as conn:
        await env.writer.delete_repo(conn, did)
    with pytest.raises(RepoNotFound):
        await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "a", {"n": 2})])


async def test_commit_over_two_megabytes_is_refused(env: RepoEnv) -> None:
    did = await env.new_account("bulky")
    filler = "x" * 11_000
    writes = [env.prep.create(did, COLLECTION, {"i": i, "filler": filler}) for i in range(200)]
    with pytest.raises(InvalidWrite, match="Max event size"):
        await env.writer.apply_writes(did, writes)
    assert await env.reader.list_collections(did) == []


@pytest.mark.parametrize("reverse", [False, True])
async def test_list_records_pages_through_everything_once(env: RepoEnv, reverse: bool) -> None:
    did = await env.new_account(f"pager{reverse}")
    rkeys = [f"k{n:03d}" for n in range(23)]
    await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, k, {"k": k}) for k in rkeys])
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = await env.reader.list_records(
            did, COLLECTION, limit=5, cursor=cursor, reverse=reverse
        )
        seen.extend(record.uri.rsplit("/", 1)[1] for record in page)
        if cursor is None:
            break
    assert seen == (rkeys if reverse else rkeys[::-1])
