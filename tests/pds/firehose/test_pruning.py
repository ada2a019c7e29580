"""Bounded firehose history: the pruner, cursors after pruning, the migration and the settings.

Events are written through the real write path (HTTP on a loopback PDS, or the sequencer on a
real database) and then aged by rewriting their `sequenced_at`, which moves them out of the
backfill window exactly as time would. Subscribers connect over WebSocket.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from pds.db import schema
from pds.db.engine import Database, alembic_config, upgrade_to_head
from pds.db.seq_retention import SequenceBounds, sequence_bounds
from pds.firehose.fanout import Fanout
from pds.firehose.metrics import FirehoseMetrics
from pds.firehose.outbox import ConsumerTooSlow, plan_start, replay
from pds.firehose.pruner import DEFAULT_MARGIN, SEQUENCE_PRUNER, SequencePruner
from pds.sequencer import Sequencer, now_ms, sequence_identity
from pds.settings import PdsSettings, SettingsError
from tests.pds.firehose.support import (
    STREAM_TIMEOUT,
    LoopStack,
    checkin,
    head_seq,
    loop_stack,
    read_stream,
    verify_commits,
)
from tests.pds.migration_checks import assert_schema_matches_code

HOUR_MS = 3_600_000


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LoopStack]:
    async with loop_stack(tmp_path, PDS_SEQUENCER_PRUNE_INTERVAL_SECONDS="0") as running:
        yield running


def prunable_age_hours(stack: LoopStack) -> int:
    """An age beyond the window plus the pruner's margin."""
    margin_hours = math.ceil(DEFAULT_MARGIN / timedelta(hours=1))
    return stack.firehose.config.backfill_window_hours + margin_hours + 1


async def age(db: Database, first: int, last: int, hours: int) -> None:
    """Pretend the events `first..last` were sequenced `hours` ago."""
    async with db.transaction() as conn:
        await conn.execute(
            update(schema.repo_seq)
            .where(schema.repo_seq.c.seq.between(first, last))
            .values(sequenced_at=now_ms() - hours * HOUR_MS)
        )


async def stored_seqs(db: Database) -> list[int]:
    async with db.read() as conn:
        rows = await conn.execute(select(schema.repo_seq.c.seq).order_by(schema.repo_seq.c.seq))
        return [int(seq) for (seq,) in rows]


async def bounds_of(db: Database) -> SequenceBounds:
    async with db.read() as conn:
        return await sequence_bounds(conn)


async def write_records(stack: LoopStack, count: int) -> int:
    """A new account with `count` records; returns the head seq afterwards."""
    account = await stack.create_account("prune")
    for n in range(count):
        await stack.create_record(account, checkin(n))
    return await head_seq(stack)


async def aged_history(stack: LoopStack, old_records: int = 4, new_records: int = 3) -> int:
    """Events up to the returned seq aged out of window and margin; recent ones after them."""
    old = await write_records(stack, old_records)
    await age(stack.ctx.db, 1, old, prunable_age_hours(stack))
    await write_records(stack, new_records)
    return old


def chunked_pruner(stack: LoopStack, chunk_size: int) -> SequencePruner:
    return SequencePruner(
        stack.ctx.db, stack.firehose.window_start_ms, chunk_size=chunk_size, pause=timedelta(0)
    )


# -- the pruner ---------------------------------------------------------------------------------


async def test_a_pass_deletes_aged_events_in_chunks_and_keeps_the_window(stack: LoopStack) -> None:
    old = await aged_history(stack)
    head = await head_seq(stack)
    report = await chunked_pruner(stack, chunk_size=3).run_once()
    assert (report.deleted, report.chunks, report.pruned_through) == (old, math.ceil(old / 3), old)
    assert await stored_seqs(stack.ctx.db) == list(range(old + 1, head + 1))
    assert await bounds_of(stack.ctx.db) == SequenceBounds(last_seq=head, pruned_through=old)

    again = await chunked_pruner(stack, chunk_size=3).run_once()
    assert (again.deleted, again.chunks, again.pruned_through) == (0, 0, old)
    # Seqs are never reused: the next event continues after the last one ever assigned.
    assert await write_records(stack, 0) == head + 4  # identity, account, commit, sync


async def test_events_inside_the_margin_are_kept(stack: LoopStack) -> None:
    old = await write_records(stack, 2)
    # Just outside the window, but within the margin beyond it.
    await age(stack.ctx.db, 1, old, stack.firehose.config.backfill_window_hours)
    report = await stack.app[SEQUENCE_PRUNER].run_once()
    assert report.deleted == 0
    assert await stored_seqs(stack.ctx.db) == list(range(1, old + 1))


async def test_the_published_pruner_reports_to_the_metrics(stack: LoopStack) -> None:
    old = await aged_history(stack)
    report = await stack.app[SEQUENCE_PRUNER].run_once()
    assert report.deleted == old
    async with stack.http.get(stack.pds_url + "/metrics") as response:
        text = await response.text()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples["pds_sequencer_pruned_events_total"] == old
    assert samples["pds_sequencer_pruned_through_seq"] == old


async def test_the_background_task_prunes_without_being_asked(tmp_path: Path) -> None:
    async with loop_stack(tmp_path, PDS_SEQUENCER_PRUNE_INTERVAL_SECONDS="1") as stack:
        old = await aged_history(stack)
        async with asyncio.timeout(STREAM_TIMEOUT):
            # Waits for the task's next pass (a sync point on the database, not a timing).
            while (await bounds_of(stack.ctx.db)).pruned_through < old:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert (await stored_seqs(stack.ctx.db))[0] == old + 1


# -- cursors after pruning ------------------------------------------------------------------


async def test_a_cursor_in_the_pruned_range_is_outdated_though_what_follows_is_recent(
    stack: LoopStack,
) -> None:
    old = await aged_history(stack)
    head = await head_seq(stack)
    await chunked_pruner(stack, chunk_size=2).run_once()
    for cursor in (1, old - 1):
        received = await read_stream(
            stack.http, stack.subscribe_url(f"cursor={cursor}"), until_seq=head
        )
        first, *rest = received.messages
        assert (first.type, first.body["name"]) == ("#info", "OutdatedCursor")
        assert [m.body["seq"] for m in rest] == list(range(old + 1, head + 1))
        assert await verify_commits(stack, rest) == 1 + 3  # genesis and three records


async def test_cursor_zero_replays_the_retained_window_without_info(stack: LoopStack) -> None:
    old = await aged_history(stack)
    head = await head_seq(stack)
    await stack.app[SEQUENCE_PRUNER].run_once()
    received = await read_stream(stack.http, stack.subscribe_url("cursor=0"), until_seq=head)
    assert received.seqs() == list(range(old + 1, head + 1))
    assert all(m.type != "#info" for m in received.messages)


async def test_a_cursor_at_or_above_the_pruned_history_is_unaffected(stack: LoopStack) -> None:
    old = await aged_history(stack)
    head = await head_seq(stack)
    await stack.app[SEQUENCE_PRUNER].run_once()
    for cursor in (old, old + 2):
        received = await read_stream(
            stack.http, stack.subscribe_url(f"cursor={cursor}"), until_seq=head
        )
        assert received.seqs() == list(range(cursor + 1, head + 1))
        assert all(m.type != "#info" for m in received.messages)


async def test_pruning_while_writing_loses_no_event_in_the_window(stack: LoopStack) -> None:
    old = await aged_history(stack, old_records=20, new_records=0)  # one recent account
    account = await stack.create_account("live")
    start = await head_seq(stack)
    writes = 15
    reader = asyncio.create_task(
        read_stream(stack.http, stack.subscribe_url(f"cursor={old}"), until_seq=start + writes)
    )
    pruner = chunked_pruner(stack, chunk_size=2)
    writing_done = asyncio.Event()

    async def write() -> None:
        for n in range(writes):
            await stack.create_record(account, checkin(n))
        writing_done.set()

    async def prune() -> int:
        passes = 0
        while not writing_done.is_set():
            await pruner.run_once()
            passes += 1
            await asyncio.sleep(0)
        return passes

    _, passes = await asyncio.gather(write(), prune())
    received = await reader
    head = start + writes
    assert passes >= 1
    assert await stored_seqs(stack.ctx.db) == list(range(old + 1, head + 1))
    assert received.seqs() == list(range(old + 1, head + 1))
    assert all(m.type != "#info" for m in received.messages)
    assert await verify_commits(stack, received.messages) == 2 + writes  # two geneses


# -- a replay overtaken by pruning, and the prefix rule, on a bare database -------------------


@pytest.fixture
async def sequencer(tmp_path: Path) -> AsyncIterator[Sequencer]:
    db = Database(tmp_path / "pds.sqlite")
    await db.migrate()
    try:
        yield Sequencer(db)
    finally:
        await db.close()


async def write_identities(sequencer: Sequencer, count: int) -> None:
    async with sequencer.transaction() as conn:
        for n in range(count):
            await sequence_identity(conn, "did:plc:prunetest", f"h{n}.test")


async def test_a_replay_overtaken_by_pruning_ends_as_too_slow(sequencer: Sequencer) -> None:
    await write_identities(sequencer, 10)
    fanout = Fanout(sequencer.db, sequencer.signal, FirehoseMetrics(), page_size=4)
    await fanout.load_head()
    subscription = fanout.subscribe(max_events=100, max_bytes=1 << 20)
    stream = replay(sequencer.db, subscription, 0, page_size=4)
    async with asyncio.timeout(STREAM_TIMEOUT):
        assert [event.seq for event in await anext(stream)] == [1, 2, 3, 4]
        # The window moves past every event before the replay reads its next page.
        window_start = now_ms() + HOUR_MS + DEFAULT_MARGIN // timedelta(milliseconds=1)
        report = await SequencePruner(sequencer.db, lambda: window_start).run_once()
        assert report.deleted == 10
        with pytest.raises(ConsumerTooSlow):
            await anext(stream)
    assert subscription.too_slow.is_set()


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "pds.sqlite"
    upgrade_to_head(f"sqlite:///{path}")
    return path


@settings(max_examples=25, deadline=None)
@given(aged=st.lists(st.booleans(), min_size=1, max_size=20), chunk_size=st.integers(1, 6))
def test_only_the_oldest_prefix_is_pruned_whatever_the_clock_did(
    migrated_template: Path, aged: list[bool], chunk_size: int
) -> None:
    """Aged rows after a recent one (the clock stepped back) stay: the record stays exact."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "pds.sqlite"
        shutil.copy(migrated_template, path)
        asyncio.run(_prune_prefix_case(path, aged, chunk_size))


async def _prune_prefix_case(path: Path, aged: list[bool], chunk_size: int) -> None:
    db = Database(path)
    try:
        sequencer = Sequencer(db)
        await write_identities(sequencer, len(aged))
        for seq, is_aged in enumerate(aged, start=1):
            if is_aged:
                await age(db, seq, seq, hours=100)
        window_start = now_ms() - 72 * HOUR_MS
        prefix = aged.index(False) if False in aged else len(aged)
        pruner = SequencePruner(db, lambda: window_start, chunk_size=chunk_size, pause=timedelta(0))
        report = await pruner.run_once()
        assert (report.deleted, report.pruned_through) == (prefix, prefix)
        assert report.chunks == math.ceil(prefix / chunk_size)
        assert await stored_seqs(db) == list(range(prefix + 1, len(aged) + 1))
        async with db.read() as conn:
            for cursor in range(1, len(aged) + 1):
                plan = await plan_start(conn, cursor, window_start)
                if cursor < prefix:
                    assert plan.outdated
                if plan.outdated or cursor == prefix:
                    assert plan.start_after is not None
                    assert plan.start_after >= prefix
            if prefix < len(aged):  # the first kept event is recent: right after it, no gap
                assert not (await plan_start(conn, prefix, window_start)).outdated
    finally:
        await db.close()


# -- the migration ------------------------------------------------------------------------------


def test_revision_0002_upgrades_a_database_made_by_0001(tmp_path: Path) -> None:
    path = tmp_path / "pds.sqlite"
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "0001")
    with closing(sqlite3.connect(path)) as old, old:
        old.execute("INSERT INTO sequencer_state (id, last_seq) VALUES (1, 7)")
        old.executemany(
            "INSERT INTO repo_seq (seq, did, event_type, event, invalidated, sequenced_at) "
            "VALUES (?, 'did:plc:old', 'identity', x'a0', 0, ?)",
            [(seq, seq * 1000) for seq in (5, 6, 7)],
        )
    asyncio.run(_upgrade_and_use(path))
    with closing(sqlite3.connect(path)) as db:
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)
        assert db.execute("SELECT last_seq, pruned_through FROM sequencer_state").fetchall() == [
            (8, 7)
        ]
    assert_schema_matches_code(url)
    command.downgrade(alembic_config(url), "0001")
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT * FROM sequencer_state").fetchall() == [(1, 8)]


async def _upgrade_and_use(path: Path) -> None:
    db = Database(path)
    try:
        await db.migrate()
        assert await bounds_of(db) == SequenceBounds(last_seq=7, pruned_through=0)
        await write_identities(Sequencer(db), 1)
        assert await stored_seqs(db) == [5, 6, 7, 8]
        # Everything but the new event is ancient: pruning takes exactly those.
        report = await SequencePruner(db, lambda: now_ms() - HOUR_MS).run_once()
        assert (report.deleted, report.pruned_through) == (3, 7)
    finally:
        await db.close()


# -- settings -----------------------------------------------------------------------------------


def settings_from(tmp_path: Path, **env: str) -> PdsSettings:
    return PdsSettings.from_env(
        {"PDS_DEV_MODE": "true", "PDS_DATA_DIRECTORY": str(tmp_path), **env}
    )


def test_the_prune_interval_defaults_to_an_hour_and_zero_disables_it(tmp_path: Path) -> None:
    assert settings_from(tmp_path).sequencer_prune_interval_seconds == 3600
    given_value = settings_from(tmp_path, PDS_SEQUENCER_PRUNE_INTERVAL_SECONDS="600")
    assert given_value.sequencer_prune_interval_seconds == 600
    disabled = settings_from(tmp_path, PDS_SEQUENCER_PRUNE_INTERVAL_SECONDS="0")
    assert disabled.sequencer_prune_interval_seconds == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PDS_SEQUENCER_PRUNE_INTERVAL_SECONDS", "-1"),
        ("PDS_SEQUENCER_PRUNE_INTERVAL_SECONDS", "hourly"),
        ("PDS_SEQUENCER_BACKFILL_HOURS", "-3"),
    ],
)
def test_malformed_retention_settings_are_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        settings_from(tmp_path, **{name: value})
