"""The SQLite reader: reads on the event loop, a locked database waited out on a thread, and
near bands planned as a lazy merge of per-cell index scans.

The order of the pages themselves is the paging properties' business (test_paging_properties);
these tests pin the reader's own promises.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from feedgen.algos.bands import DISK_SLOTS, WORLD, Anchor
from feedgen.algos.order import RankingPlan
from feedgen.db.queries import merged_cells_statement
from feedgen.db.sqlite_reader import Compiled, SqliteReader, _is_locked
from tests.feedgen.support import Checkin, open_index

T0 = 1_800_000_000_000
WINDOW = 3_600_000
PARIS = (48_856_600, 2_352_200)


def paris_checkins(count: int) -> list[Checkin]:
    lat, lon = PARIS
    return [
        Checkin(did="did:plc:aaaa", rkey=f"r{i:03d}", lat_e6=lat + i * 500, lon_e6=lon,
                sort_at=T0 - 1_000 * (i + 1))
        for i in range(count)
    ]  # fmt: skip


@pytest.fixture
async def index_path(tmp_path: Path) -> Path:
    index = await open_index(tmp_path)
    try:
        await index.insert(paris_checkins(12))
    finally:
        await index.close()
    return tmp_path / "index.sqlite"


def plan() -> RankingPlan:
    return RankingPlan.build(t0_ms=T0, window_ms=WINDOW, anchor=Anchor(*PARIS), penalties=None)


def lock_exclusively(path: Path) -> sqlite3.Connection:
    """A writer that keeps every reader out until it is closed (WAL, exclusive locking mode)."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA locking_mode=EXCLUSIVE")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE checkin SET visible = visible")
    writer.execute("COMMIT")
    return writer


async def test_pages_are_read_without_a_thread(index_path: Path) -> None:
    reader = SqliteReader(index_path, threads=1)
    try:
        for _ in range(500):  # SQLite's own instruction count runs on across executions
            page = await reader.page(plan(), None, 5)
        assert [row.key.rkey for row in page.rows] == ["r000", "r001", "r002", "r003", "r004"]
        assert page.bands_asked == (0,)
        assert not [t for t in threading.enumerate() if t.name.startswith("feedgen-sqlite")]
    finally:
        await reader.close()


async def test_a_locked_database_is_waited_out_on_a_thread(index_path: Path) -> None:
    reader = SqliteReader(index_path, threads=1)
    writer = lock_exclusively(index_path)
    try:
        page = asyncio.create_task(reader.page(plan(), None, 12))
        for _ in range(20):  # the loop runs other work while the read waits for the lock
            await asyncio.sleep(0.01)
        assert not page.done()  # neither failed on the lock nor read past it
        writer.close()
        rows = (await page).rows
        assert [row.key.rkey for row in rows] == [f"r{i:03d}" for i in range(12)]
    finally:
        writer.close()
        await reader.close()


async def test_a_long_scan_is_moved_off_the_event_loop(tmp_path: Path) -> None:
    """A step that skips many rows (here hidden accounts' check-ins) is interrupted inline and
    run again on a thread, with the same result."""
    index = await open_index(tmp_path)
    lat, lon = PARIS
    hidden = [
        Checkin(did="did:plc:hidden", rkey=f"h{i:04d}", lat_e6=lat, lon_e6=lon,
                sort_at=T0 - i - 1, visible=False)
        for i in range(400)
    ]  # fmt: skip
    shown = [
        Checkin(did="did:plc:shown", rkey=f"s{i}", lat_e6=lat, lon_e6=lon, sort_at=T0 - 1_000 - i)
        for i in range(3)
    ]
    try:
        await index.insert([*hidden, *shown])
    finally:
        await index.close()
    reader = SqliteReader(tmp_path / "index.sqlite", threads=1, inline_steps=1_000)
    global_feed = RankingPlan.build(t0_ms=T0, window_ms=WINDOW, anchor=None, penalties=None)
    try:
        page = await reader.page(global_feed, None, 5)
        assert [row.key.rkey for row in page.rows] == ["s0", "s1", "s2"]
        assert [t for t in threading.enumerate() if t.name.startswith("feedgen-sqlite")]
    finally:
        await reader.close()


async def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    (tmp_path / "index.sqlite").write_bytes(b"not a database" * 100)
    reader = SqliteReader(tmp_path / "index.sqlite", threads=1)
    try:
        with pytest.raises(sqlite3.DatabaseError):
            await reader.page(plan(), None, 5)
    finally:
        await reader.close()


@pytest.mark.parametrize("band", range(WORLD))
@pytest.mark.parametrize("cells", [1, DISK_SLOTS])
def test_a_near_band_is_a_lazy_merge_of_cell_index_scans(
    index_path: Path, band: int, cells: int
) -> None:
    """SQLite merges the arms in index order (no sort of their union), so a page stops after
    about `limit + cells` index entries whatever the size of the index."""
    statement = merged_cells_statement((0, band, "tie"), cells)
    compiled = Compiled.of(statement)
    parameters = dict.fromkeys(statement.compile(dialect=sqlite_dialect()).params)
    db = sqlite3.connect(index_path)
    try:
        plan_rows = db.execute(f"EXPLAIN QUERY PLAN {compiled.sql}", parameters)
        details = [row[3] for row in plan_rows]
    finally:
        db.close()
    column = ("h3_r7", "h3_r5", "h3_r3")[band]
    index_name = f"ix_checkin_{column}_sort_at_author_did_collection_rkey"
    scans = [d for d in details if d.startswith("SEARCH checkin")]
    assert len(scans) == cells
    assert all(index_name in scan for scan in scans)
    assert not [d for d in details if "TEMP B-TREE" in d]
    if cells > 1:
        assert "MERGE (UNION ALL)" in details


@pytest.mark.parametrize(
    ("code", "locked"),
    [(5, True), (261, True), (517, True), (6, True), (262, True), (1, False), (11, False)],
)
def test_busy_and_locked_codes_are_waited_out_extended_ones_too(code: int, locked: bool) -> None:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = code
    assert _is_locked(error) is locked
