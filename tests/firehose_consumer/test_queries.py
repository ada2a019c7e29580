"""The consumer's SQL (`firehose_consumer.db.queries`) and writer, on SQLite and PostgreSQL 15.

Every test runs on both backends (PostgreSQL SERIALIZABLE, from tests/pg.py; skipped with the
reason only when its binaries are missing), and on CockroachDB as `cockroach`-marked cases when
`COCKROACH_URL` is set (tests/cockroach.py). The coalescing property checks that writing a batch
of many events equals writing the same events one by one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from atcore.index.engine import create_index_engine, migrate
from atcore.index.retry import run_transaction
from atcore.index.schema import (
    DESYNCHRONIZED,
    SYNCHRONIZED,
    checkin,
    companion_post,
    repo_state,
    source_cursor,
)
from firehose_consumer.changes import Batch, EventChanges, RepoStateRow
from firehose_consumer.db import queries
from firehose_consumer.indexer import IndexWriter, Submission
from firehose_consumer.metrics import ConsumerMetrics
from firehose_consumer.pipeline import SeqTracker
from firehose_consumer.records import CHECKIN
from firehose_consumer.state import RepoStates
from tests.cockroach import fresh_cockroach_database
from tests.pg import PgCluster, pg_cluster  # noqa: F401 - fixture

ALICE, BOB = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"


@pytest.fixture(
    params=["sqlite", "postgresql", pytest.param("cockroachdb", marks=pytest.mark.cockroach)]
)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/index.sqlite"
    elif request.param == "postgresql":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        url = cluster.url(cluster.create_database())
    else:
        url = await fresh_cockroach_database()
    engine = create_index_engine(url)
    await migrate(engine)
    yield engine
    await engine.dispose()


def row(did: str, rkey: str, rev: str, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "author_did": did, "collection": CHECKIN, "rkey": rkey, "cid": f"bafy{rkey}{rev}",
        "rev": rev, "lat_e6": 1, "lon_e6": 2, "h3_r7": 7, "h3_r5": 5, "h3_r3": 3,
        "place_name": f"place {rkey}", "place_category": None, "place_uri": None,
        "place_locality": None, "place_country": None,
        "post_uri": f"at://{did}/app.bsky.feed.post/{rkey}", "post_cid": "bafypost",
        "post_exists": False, "created_at": 10, "visited_at": None, "indexed_at": 20,
        "sort_at": 10, "visible": True,
    }  # fmt: skip
    base.update(values)
    return base


async def write(engine: AsyncEngine, *events: EventChanges, cursor: int | None = None) -> None:
    batch = Batch()
    for event in events:
        batch.add(event)
    if cursor is not None:
        batch.set_cursor("wss://relay", cursor)
    await run_transaction(engine, lambda conn: queries.apply_batch(conn, batch, 1000))


async def rows_of(engine: AsyncEngine) -> dict[tuple[str, str], dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(checkin))
        return {(r.author_did, r.rkey): dict(r._mapping) for r in result}


async def test_upserts_are_idempotent_and_ignore_stale_revs(engine: AsyncEngine) -> None:
    first = EventChanges(ALICE, upserts=[row(ALICE, "k1", "3aaa", place_name="v1")])
    await write(engine, first)
    await write(engine, first)  # a replay
    assert len(await rows_of(engine)) == 1
    newer = EventChanges(ALICE, upserts=[row(ALICE, "k1", "3aab", place_name="v2")])
    await write(engine, newer)
    await write(engine, first)  # stale: must not roll back
    current = (await rows_of(engine))[(ALICE, "k1")]
    assert (current["rev"], current["place_name"]) == ("3aab", "v2")


async def test_deletes_never_remove_newer_rows(engine: AsyncEngine) -> None:
    await write(engine, EventChanges(ALICE, upserts=[row(ALICE, "k1", "3aac")]))
    await write(engine, EventChanges(ALICE, deletes=[((ALICE, CHECKIN, "k1"), "3aab")]))
    assert (ALICE, "k1") in await rows_of(engine)
    await write(engine, EventChanges(ALICE, deletes=[((ALICE, CHECKIN, "k1"), "3aad")]))
    assert await rows_of(engine) == {}


async def test_post_marks_and_updates_keep_post_existence(engine: AsyncEngine) -> None:
    post = f"at://{ALICE}/app.bsky.feed.post/k1"
    await write(engine, EventChanges(ALICE, upserts=[row(ALICE, "k1", "3aaa")]))
    await write(engine, EventChanges(ALICE, post_marks=[(post, True)]))
    assert (await rows_of(engine))[(ALICE, "k1")]["post_exists"] is True
    # An update of the check-in pointing at the same post keeps what post events established.
    await write(engine, EventChanges(ALICE, upserts=[row(ALICE, "k1", "3aab")]))
    assert (await rows_of(engine))[(ALICE, "k1")]["post_exists"] is True
    # Pointing at another post resets it to what the update itself knows.
    other = f"at://{ALICE}/app.bsky.feed.post/k9"
    await write(engine, EventChanges(ALICE, upserts=[row(ALICE, "k1", "3aac", post_uri=other)]))
    assert (await rows_of(engine))[(ALICE, "k1")]["post_exists"] is False
    await write(engine, EventChanges(BOB, post_marks=[(other, True)]))  # Bob's marks: not Alice's
    assert (await rows_of(engine))[(ALICE, "k1")]["post_exists"] is False


async def test_a_checkin_written_after_its_post_finds_it(engine: AsyncEngine) -> None:
    post = f"at://{ALICE}/app.bsky.feed.post/k1"
    await write(engine, EventChanges(ALICE, post_marks=[(post, True)]))  # an earlier commit
    await write(engine, EventChanges(ALICE, upserts=[row(ALICE, "k1", "3aaa")]))
    assert (await rows_of(engine))[(ALICE, "k1")]["post_exists"] is True
    # Deleted, then a new version of the check-in: the post is gone for good.
    await write(engine, EventChanges(ALICE, post_marks=[(post, False)]))
    await write(engine, EventChanges(ALICE, upserts=[row(ALICE, "k1", "3aab")]))
    assert (await rows_of(engine))[(ALICE, "k1")]["post_exists"] is False
    # Another author's post under the same record key is not Alice's.
    await write(engine, EventChanges(BOB, post_marks=[(f"at://{BOB}/app.bsky.feed.post/k1", True)]))
    await write(engine, EventChanges(ALICE, upserts=[row(ALICE, "k1", "3aac")]))
    assert (await rows_of(engine))[(ALICE, "k1")]["post_exists"] is False


async def test_a_resync_lists_posts_for_checkins_written_later(engine: AsyncEngine) -> None:
    await write(
        engine, EventChanges(ALICE, post_marks=[(f"at://{ALICE}/app.bsky.feed.post/x", True)])
    )
    await write(engine, EventChanges(ALICE, reset=True, known_posts=["k2"]))  # x is gone now
    await write(
        engine,
        EventChanges(ALICE, upserts=[row(ALICE, "k2", "3aab")]),
        EventChanges(ALICE, upserts=[row(ALICE, "x", "3aab")]),
    )
    rows = await rows_of(engine)
    assert rows[(ALICE, "k2")]["post_exists"] is True
    assert rows[(ALICE, "x")]["post_exists"] is False
    await write(engine, EventChanges(ALICE, reset=True))  # a purge forgets the posts too
    async with engine.connect() as conn:
        assert (await conn.execute(select(companion_post))).all() == []


async def test_visibility_and_purge_touch_one_account(engine: AsyncEngine) -> None:
    await write(
        engine,
        EventChanges(ALICE, upserts=[row(ALICE, "a1", "3aaa"), row(ALICE, "a2", "3aaa")]),
        EventChanges(BOB, upserts=[row(BOB, "b1", "3aaa")]),
    )
    await write(engine, EventChanges(ALICE, visible=False))
    rows = await rows_of(engine)
    assert [rows[k]["visible"] for k in sorted(rows)] == [False, False, True]
    await write(engine, EventChanges(ALICE, reset=True))
    assert set(await rows_of(engine)) == {(BOB, "b1")}


async def test_reset_then_rows_in_one_batch(engine: AsyncEngine) -> None:
    await write(engine, EventChanges(ALICE, upserts=[row(ALICE, "old", "3aaa")]))
    await write(
        engine,
        EventChanges(ALICE, upserts=[row(ALICE, "gone", "3aab")]),
        EventChanges(ALICE, reset=True, upserts=[row(ALICE, "snap", "3aac")]),
        EventChanges(ALICE, upserts=[row(ALICE, "after", "3aad")]),
    )
    assert set(await rows_of(engine)) == {(ALICE, "snap"), (ALICE, "after")}


async def test_repo_state_cursor_and_resync_queue(engine: AsyncEngine) -> None:
    state = RepoStateRow(ALICE, "3aaa", "bafyroot", "active", SYNCHRONIZED, None)
    await write(engine, EventChanges(ALICE, repo=state), cursor=41)
    await write(engine, EventChanges(ALICE), cursor=42)

    async def queue(conn: Any) -> None:
        await queries.mark_desynchronized(conn, [ALICE, BOB], "active", 500, 900)

    await run_transaction(engine, queue)
    async with engine.connect() as conn:
        assert await queries.load_cursor(conn, "wss://relay") == 42
        assert await queries.load_cursor(conn, "wss://other") is None
        assert await queries.load_tracked_dids(conn) == {ALICE, BOB}
        alice = await queries.load_repo_state(conn, ALICE)
        bob = await queries.load_repo_state(conn, BOB)
        assert await queries.due_resyncs(conn, 499, 10) == []
        assert sorted(await queries.due_resyncs(conn, 500, 10)) == [ALICE, BOB]
    assert alice is not None
    assert bob is not None
    # A known repo keeps its chain point; only its sync status changes.
    assert (alice.rev, alice.data_cid, alice.sync_status) == ("3aaa", "bafyroot", DESYNCHRONIZED)
    assert (bob.rev, bob.status, bob.resync_after) == (None, "active", 500)


# -- coalescing -------------------------------------------------------------------------------

rkeys = st.sampled_from(["k1", "k2", "k3"])
dids = st.sampled_from([ALICE, BOB])


@st.composite
def event_changes(draw: st.DrawFn, rev: int) -> EventChanges:
    did = draw(dids)
    kind = draw(
        st.sampled_from(["upsert", "delete", "mark", "visible", "reset", "resync", "state"])
    )
    rev_text = f"3{rev:012d}"
    changes = EventChanges(did)
    if kind == "upsert":
        key = draw(rkeys)
        changes.upserts.append(row(did, key, rev_text, place_name=f"r{rev}",
                                   post_exists=draw(st.booleans())))  # fmt: skip
    elif kind == "delete":
        changes.deletes.append(((did, CHECKIN, draw(rkeys)), rev_text))
    elif kind == "mark":
        changes.post_marks.append(
            (f"at://{did}/app.bsky.feed.post/{draw(rkeys)}", draw(st.booleans()))
        )
    elif kind == "visible":
        changes.visible = draw(st.booleans())
    elif kind == "reset":
        changes.reset = True
    elif kind == "resync":
        changes.reset = True
        changes.known_posts = sorted(draw(st.sets(rkeys)))
    else:
        changes.repo = RepoStateRow(did, rev_text, "bafy", "active", SYNCHRONIZED, None)
    return changes


@st.composite
def histories(draw: st.DrawFn) -> list[EventChanges]:
    count = draw(st.integers(1, 25))
    return [draw(event_changes(rev)) for rev in range(1, count + 1)]


async def _clear(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in (checkin, companion_post, repo_state, source_cursor):
            await conn.execute(delete(table))


async def _snapshot(engine: AsyncEngine) -> tuple[Any, Any, Any]:
    async with engine.connect() as conn:
        rows = sorted(tuple(r) for r in await conn.execute(select(checkin)))
        posts = sorted(tuple(r) for r in await conn.execute(select(companion_post)))
        states = sorted(tuple(r)[:-1] for r in await conn.execute(select(repo_state)))
    return rows, posts, states


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
async def test_a_coalesced_batch_equals_events_one_by_one(
    engine: AsyncEngine, history: list[EventChanges]
) -> None:
    await _clear(engine)
    for event in history:
        await write(engine, event)
    one_by_one = await _snapshot(engine)
    await _clear(engine)
    await write(engine, *history)
    assert await _snapshot(engine) == one_by_one


# -- the writer under injected serialization failures (PostgreSQL) ----------------------------

# The failure budget is a sequence because nextval() survives the rollback it causes.
INJECT = (
    "CREATE SEQUENCE injected_failures",
    """CREATE FUNCTION inject_40001() RETURNS trigger AS $$
    BEGIN
      IF nextval('injected_failures') <= 3 THEN
        RAISE EXCEPTION 'injected serialization failure' USING ERRCODE = '40001';
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER inject BEFORE INSERT OR UPDATE ON source_cursor
      FOR EACH ROW EXECUTE FUNCTION inject_40001()""",
)


@pytest.fixture
async def pg_engine(pg_cluster: PgCluster) -> AsyncIterator[AsyncEngine]:  # noqa: F811
    engine = create_index_engine(pg_cluster.url(pg_cluster.create_database()))
    await migrate(engine)
    yield engine
    await engine.dispose()


async def test_writer_retries_injected_40001_and_writes_once(pg_engine: AsyncEngine) -> None:
    """SQLSTATE 40001 is PostgreSQL's; SQLite's busy retry: tests/atcore/test_index_retry.py."""
    engine = pg_engine
    async with engine.begin() as conn:
        for statement in INJECT:
            await conn.execute(text(statement))
    metrics = ConsumerMetrics()
    tracker = SeqTracker(None)
    states = RepoStates(lambda _did: _none(), set())
    writer = IndexWriter(engine, {"wss://relay": tracker}, states, metrics)
    for seq in (1, 2, 3):
        assert tracker.register(seq)
        writer.submit(Submission("wss://relay", seq, EventChanges(
            ALICE, upserts=[row(ALICE, f"k{seq}", f"3aa{seq}")])))  # fmt: skip
    await writer.flush()
    assert set(await rows_of(engine)) == {(ALICE, "k1"), (ALICE, "k2"), (ALICE, "k3")}
    async with engine.connect() as conn:
        assert await queries.load_cursor(conn, "wss://relay") == 3
        used = (await conn.execute(text("SELECT last_value FROM injected_failures"))).scalar_one()
    assert used == 4  # three injected failures, then the attempt that committed
    retries = metrics.registry.get_sample_value("index_write_retries_total", {"kind": "conflict"})
    assert retries == 3


async def _none() -> None:
    return None
