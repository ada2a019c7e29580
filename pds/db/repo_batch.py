"""The write half of a repository commit batch, as one function on the writer's own thread.

Why not SQLAlchemy here
    Each statement through SQLAlchemy's asyncio layer costs several thread hops (cursor, execute,
    fetch, close) between the event loop and aiosqlite's worker thread, and under load every hop
    also waits for the GIL. A commit batch needs a dozen statements, so the hops, not SQLite,
    dominated the write path. `run_on_writer` therefore runs one plain function on the worker
    thread that owns the database's single write connection: `BEGIN IMMEDIATE`, every statement,
    `COMMIT`, in a single hop. It checks the connection out of the write engine's pool (size one),
    so it is serialized with every other writer exactly like `Database.transaction()`.

    aiosqlite offers no public way to run a callable on its thread; `Connection._execute` (the
    primitive all its methods use) and `_conn` are private but have been stable for years, and
    `tests/pds/test_repo_batch.py` fails loudly if an upgrade changes them.

`apply_batch` is the function: roots moved by compare-and-swap (a head that changed since it
was planned, or an account no longer active, raises `StaleHead` and the whole batch rolls
back), blocks, record index and backlinks, record → blob references and the sequenced events.
Every blob the written records reference must still have its row (not taken down): the writer
read those rows before the transaction, and a missing one raises `BlobsChanged`, rolling the
batch back (see `pds.repo.blobs` for the protocol this belongs to).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pds.db.engine import Database
from pds.sequencer import RESERVE_SEQS_SQL

_T = TypeVar("_T")
_IN_CHUNK: Final = 500


class StaleHead(Exception):
    """A repository's root moved since its commit was planned (the batch is rolled back)."""

    def __init__(self, did: str) -> None:
        super().__init__(f"the head of {did} changed while its commit was being planned")
        self.did = did


class BlobsChanged(Exception):
    """A blob the batch's records reference lost its row since it was read (rolled back)."""

    def __init__(self, did: str, cids: Sequence[str]) -> None:
        super().__init__(f"blobs of {did} vanished while the commit was planned: {list(cids)}")
        self.did = did
        self.cids = list(cids)


async def run_on_writer(db: Database, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run `fn(connection)` in one write transaction on the write connection's thread."""
    async with db.write_engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection  # aiosqlite.Connection
        result: _T = await driver._execute(_transaction, driver._conn, fn)
        return result


def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


# -- the batch ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RootMove:
    did: str
    expected: str  # commit CID (text) the batch was planned on
    cid: str
    rev: str


@dataclass(frozen=True, slots=True)
class RecordRow:
    uri: str
    did: str
    collection: str
    rkey: str
    cid: str
    rev: str


@dataclass(frozen=True, slots=True)
class EventRow:
    did: str
    event_type: str
    build: Callable[[int, str], bytes]  # (seq, time) -> DAG-CBOR body


@dataclass(slots=True)
class BlobRefs:
    """`record_blob` maintenance: the touched records of one repo and their final blob refs."""

    touched_uris: list[str] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)  # (blob cid, record uri)
    loose: set[str] = field(default_factory=set)  # refs dropped by versions superseded in-batch
    claimed: list[str] = field(default_factory=list)  # temp blobs made permanent


@dataclass(slots=True)
class BatchWrite:
    now: int
    time_text: str
    roots: list[RootMove] = field(default_factory=list)
    block_puts: list[tuple[str, bytes, str, bytes]] = field(default_factory=list)
    block_deletes: list[tuple[str, bytes]] = field(default_factory=list)
    # Old record blocks: deleted unless a record of the repo still points at them.
    block_candidates: list[tuple[str, bytes, str]] = field(default_factory=list)
    record_upserts: list[RecordRow] = field(default_factory=list)
    record_deletes: list[str] = field(default_factory=list)
    # Backlinks: the URIs whose old rows go, then the (uri, path, link_to, did) rows to store.
    backlink_clears: list[str] = field(default_factory=list)
    backlink_rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    blobs: dict[str, BlobRefs] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchResult:
    seqs: list[int]
    dereferenced_blobs: list[tuple[str, str]]  # (did, cid): rows deleted, files to remove


def apply_batch(conn: sqlite3.Connection, batch: BatchWrite) -> BatchResult:
    """Write a planned batch (runs on the writer thread, inside `run_on_writer`)."""
    for move in batch.roots:
        # The account must still be active: a takedown or deactivation since the head was
        # cached also sends the batch back to planning, which then refuses the write.
        cursor = conn.execute(
            "UPDATE repo_root SET cid = ?, rev = ?, indexed_at = ? WHERE did = ? AND cid = ? "
            "AND EXISTS (SELECT 1 FROM account WHERE account.did = repo_root.did "
            "AND takedown_ref IS NULL AND deactivated_at IS NULL)",
            (move.cid, move.rev, batch.now, move.did, move.expected),
        )
        if cursor.rowcount != 1:
            raise StaleHead(move.did)
    _write_records(conn, batch)
    _settle_candidates(conn, batch)
    conn.executemany("DELETE FROM repo_block WHERE did = ? AND cid = ?", batch.block_deletes)
    conn.executemany(
        "INSERT OR IGNORE INTO repo_block (did, cid, repo_rev, size, content) "
        "VALUES (?, ?, ?, ?, ?)",
        [(did, cid, rev, len(block), block) for did, cid, rev, block in batch.block_puts],
    )
    dereferenced = [
        (did, cid)
        for did, refs in batch.blobs.items()
        for cid in _rewrite_blob_refs(conn, did, refs)
    ]
    return BatchResult(insert_events(conn, batch.events, batch.now, batch.time_text), dereferenced)


def _write_records(conn: sqlite3.Connection, batch: BatchWrite) -> None:
    conn.executemany(
        "INSERT INTO record (uri, cid, did, collection, rkey, repo_rev, indexed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uri) DO UPDATE SET cid = excluded.cid, "
        "repo_rev = excluded.repo_rev, indexed_at = excluded.indexed_at",
        [
            (r.uri, r.cid, r.did, r.collection, r.rkey, r.rev, batch.now)
            for r in batch.record_upserts
        ],
    )
    conn.executemany("DELETE FROM record WHERE uri = ?", [(uri,) for uri in batch.record_deletes])
    conn.executemany("DELETE FROM backlink WHERE uri = ?", [(u,) for u in batch.backlink_clears])
    conn.executemany(
        "INSERT INTO backlink (uri, path, link_to, did) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (uri, path) DO UPDATE SET link_to = excluded.link_to",
        batch.backlink_rows,
    )


def _settle_candidates(conn: sqlite3.Connection, batch: BatchWrite) -> None:
    """Free the old record blocks no record of their repo points at any more."""
    by_did: dict[str, list[tuple[bytes, str]]] = {}
    for did, cid_bytes, cid_text in batch.block_candidates:
        by_did.setdefault(did, []).append((cid_bytes, cid_text))
    for did, candidates in by_did.items():
        used = _select_in(
            conn,
            "SELECT DISTINCT cid FROM record WHERE did = ? AND cid IN ({})",
            did,
            [text for _, text in candidates],
        )
        freed = {(did, raw) for raw, text in candidates if text not in used}
        batch.block_deletes.extend(freed)
        # A block put earlier in the batch and freed by a later commit of it is not stored.
        batch.block_puts = [put for put in batch.block_puts if (put[0], put[1]) not in freed]


def _rewrite_blob_refs(conn: sqlite3.Connection, did: str, refs: BlobRefs) -> list[str]:
    """Replace the touched records' blob refs; drop blobs nothing references any more."""
    _check_blobs_exist(conn, did, {cid for cid, _ in refs.rows})
    loose = set(refs.loose)
    loose |= _select_in(
        conn,
        "SELECT blob_cid FROM record_blob WHERE did = ? AND record_uri IN ({})",
        did,
        refs.touched_uris,
    )
    conn.executemany(
        "DELETE FROM record_blob WHERE did = ? AND record_uri = ?",
        [(did, uri) for uri in refs.touched_uris],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO record_blob (did, blob_cid, record_uri) VALUES (?, ?, ?)",
        [(did, cid, uri) for cid, uri in refs.rows],
    )
    conn.executemany(
        "UPDATE blob SET temp_key = NULL WHERE did = ? AND cid = ?",
        [(did, cid) for cid in refs.claimed],
    )
    loose -= {cid for cid, _ in refs.rows}
    if not loose:
        return []
    pinned = _select_in(
        conn,
        "SELECT DISTINCT blob_cid FROM record_blob WHERE did = ? AND blob_cid IN ({})",
        did,
        sorted(loose),
    )
    gone = sorted(loose - pinned)
    conn.executemany("DELETE FROM blob WHERE did = ? AND cid = ?", [(did, cid) for cid in gone])
    return gone


def _check_blobs_exist(conn: sqlite3.Connection, did: str, cids: set[str]) -> None:
    """Raise `BlobsChanged` unless every blob in `cids` still has a usable row."""
    if not cids:
        return
    present = _select_in(
        conn,
        "SELECT cid FROM blob WHERE did = ? AND takedown_ref IS NULL AND cid IN ({})",
        did,
        sorted(cids),
    )
    if missing := cids - present:
        raise BlobsChanged(did, sorted(missing))


def insert_events(
    conn: sqlite3.Connection, events: Sequence[EventRow], now: int, time_text: str
) -> list[int]:
    """Reserve seqs (see `pds.sequencer`) and store the events; returns their seqs."""
    if not events:
        return []
    (last,) = conn.execute(RESERVE_SEQS_SQL, {"count": len(events)}).fetchone()
    first = int(last) - len(events) + 1
    conn.executemany(
        "INSERT INTO repo_seq (seq, did, event_type, event, invalidated, sequenced_at) "
        "VALUES (?, ?, ?, ?, 0, ?)",
        [
            (first + i, e.did, e.event_type, e.build(first + i, time_text), now)
            for i, e in enumerate(events)
        ],
    )
    return list(range(first, first + len(events)))


def _select_in(conn: sqlite3.Connection, sql: str, did: str, values: Iterable[str]) -> set[str]:
    found: set[str] = set()
    items = list(values)
    for start in range(0, len(items), _IN_CHUNK):
        chunk = items[start : start + _IN_CHUNK]
        query = sql.format(", ".join("?" * len(chunk)))
        found.update(row[0] for row in conn.execute(query, (did, *chunk)))
    return found
