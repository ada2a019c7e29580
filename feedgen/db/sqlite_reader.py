"""The index reader for SQLite: the statements of `queries`, run on the event loop's thread.

Through aiosqlite every step of a read (checkout, BEGIN, execute, fetch, close, rollback) is its
own hop to the connection's thread, with SQLAlchemy's per-execution work around each. Here every
statement shape is compiled ONCE for SQLite and a whole page - the ranking's search with all its
band statements - runs synchronously on a plain `sqlite3` connection (`PRAGMA query_only`, so it
cannot write; autocommit, so each statement is its own WAL snapshot).

**Inline, not on a thread pool.** A page is 0.05-0.2 ms of SQLite work on a memory-mapped file,
less than a hop to a worker thread and back costs; worse, the worker and the event loop then
contend for the GIL, which SQLite's driver releases and retakes around every row, and that
roughly doubled the CPU a page took. So reads run on the loop's own connection, within limits
that keep the loop from stalling: no busy timeout, and a progress handler that interrupts a read
once it has run `INLINE_STEPS` virtual-machine instructions (a page takes 3-50 thousand; a long
scan, e.g. a world band skipping a huge region, takes more). A read that finds the
database locked (WAL recovery after a writer crash, a writer in exclusive locking mode) or is
interrupted is run again on a small pool of threads with neither limit (a lock is waited for
up to `BUSY_TIMEOUT_MS`). More CPU for more requests comes from more processes
(`FEEDGEN_WORKERS`), as it would anyway under the GIL.

**Near bands in one statement.** A near band's page is `queries.merged_cells_statement`: one
keyset scan per cell of the disk, merged lazily by SQLite itself, so a page reads about
`limit + cells` index entries in a single prepared statement. (Opening one cursor per cell and
merging in Python cost four times as much: the driver's statement cache holds one prepared copy
per SQL text, so every concurrently open cursor of the same text was compiled afresh.)

Errors: `sqlite3.Error` from the driver (the API reports the index as unavailable).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.expression import ClauseElement

from feedgen.algos.bands import NO_CELL, Anchor, BandDisks, DiskCache
from feedgen.algos.order import Position, RankingPlan
from feedgen.db.queries import (
    PageResult,
    Shape,
    anchor_of,
    anchor_statement,
    band_parameters,
    band_shape,
    band_statement,
    feed_rows,
    is_cell_band,
    merged_cells_statement,
    ping_statement,
)

BUSY_TIMEOUT_MS: Final = 5000
_LOCKED: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_DIALECT: Final = sqlite_dialect.dialect(paramstyle="named")
# Statements per connection kept prepared: ~20 merged-cell shapes per band kind, and spare.
STATEMENT_CACHE: Final = 512
MMAP_BYTES: Final = 1 << 31  # SQLite clamps it to its compile-time maximum
INLINE_STEPS: Final = 250_000  # VM instructions one inline read may run (a few milliseconds)
# How often SQLite reports progress. Its count runs on across executions of a cached statement,
# so the reader counts the reports of each read itself; a few per read cost nothing.
PROGRESS_INTERVAL: Final = 10_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as SQLite text with named parameters, and the values SQLAlchemy fixed."""

    sql: str
    defaults: dict[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement) -> Compiled:
        compiled = statement.compile(dialect=_DIALECT)
        defaults = {name: value for name, value in compiled.params.items() if value is not None}
        return cls(compiled.string, defaults)

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        # sqlite3 binds by name and ignores keys the statement does not use.
        return {**self.defaults, **params}


def _is_locked(error: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included (BUSY_RECOVERY, BUSY_SNAPSHOT...)."""
    code: int | None = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _LOCKED


def _is_interrupted(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_INTERRUPT


class SqliteReader:
    """Reads a SQLite index on the event loop's thread; `threads` take over the reads that
    would stall it (a locked database, a read longer than `inline_steps` instructions)."""

    def __init__(self, path: Path, *, threads: int = 4, inline_steps: int = INLINE_STEPS) -> None:
        self._path = path
        self._progress_interval = min(PROGRESS_INTERVAL, inline_steps)
        self._progress_budget = inline_steps // self._progress_interval
        self._progress_reports = 0  # of the inline read running now
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="feedgen-sqlite")
        self._inline: sqlite3.Connection | None = None  # the event loop's: never waits on a lock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._shapes: dict[tuple[Shape, int], Compiled] = {}
        self._anchor = Compiled.of(anchor_statement())
        self._ping = Compiled.of(ping_statement())
        self._disks = DiskCache()

    async def ping(self) -> None:
        def read(db: sqlite3.Connection) -> None:
            db.execute(self._ping.sql, self._ping.bind({})).fetchall()

        await self._run(read)

    async def latest_anchor(self, did: str) -> Anchor | None:
        def read(db: sqlite3.Connection) -> Anchor | None:
            row = db.execute(self._anchor.sql, self._anchor.bind({"did": did})).fetchone()
            return None if row is None else anchor_of(tuple(row))

        return await self._run(read)

    async def page(self, plan: RankingPlan, last: Position | None, limit: int) -> PageResult:
        return await self._run(lambda db: self._page(db, plan, last, limit))

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True)
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._inline = None

    def _page(
        self, db: sqlite3.Connection, plan: RankingPlan, last: Position | None, limit: int
    ) -> PageResult:
        disks = self._disks.around(plan.anchor) if plan.anchor is not None else None
        search = plan.search(last, limit)
        asked: list[int] = []
        try:
            bound = next(search)
            while True:
                asked.append(bound.band)
                shape = band_shape(disks, bound)
                params = band_parameters(disks, bound, limit, plan.t0_ms)
                if disks is not None and is_cell_band(shape):
                    compiled = self._band_cells(shape, disks, params)
                else:
                    compiled = self._compiled((shape, 0), band_statement)
                rows = db.execute(compiled.sql, compiled.bind(params)).fetchall()
                bound = search.send(feed_rows(rows, bound.band))
        except StopIteration as done:
            return PageResult(done.value, tuple(asked))

    def _band_cells(self, shape: Shape, disks: BandDisks, params: dict[str, Any]) -> Compiled:
        """The merged-cells statement of a near band; adds each cell's `cellN` to `params`."""
        cells = [cell for cell in dict.fromkeys(disks.disks[shape[1]] or ()) if cell != NO_CELL]
        for arm, cell in enumerate(cells):
            params[f"cell{arm}"] = cell
        return self._compiled((shape, len(cells)), merged_cells_statement)

    def _compiled(self, key: tuple[Shape, int], build: Callable[..., ClauseElement]) -> Compiled:
        compiled = self._shapes.get(key)
        if compiled is None:  # a benign race: two threads may compile the same shape once each
            shape, cells = key
            statement = build(shape, cells) if cells else build(shape)
            compiled = self._shapes[key] = Compiled.of(statement)
        return compiled

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` on the loop's connection; on a thread when it would stall the loop."""
        connection = self._inline_connection()
        self._progress_reports = 0
        try:
            return work(connection)
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) and not _is_interrupted(exc):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._with_connection, work)

    def _inline_connection(self) -> sqlite3.Connection:
        if self._inline is None:
            self._inline = self._connect(busy_timeout_ms=0)
            self._inline.set_progress_handler(self._on_progress, self._progress_interval)
        return self._inline

    def _on_progress(self) -> int:
        """Non-zero (interrupt) once the inline read has run past its instruction budget."""
        self._progress_reports += 1
        return int(self._progress_reports > self._progress_budget)

    def _with_connection(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect(busy_timeout_ms=BUSY_TIMEOUT_MS)
            self._local.connection = connection
        return work(connection)

    def _connect(self, *, busy_timeout_ms: int) -> sqlite3.Connection:
        # Autocommit mode: each read statement is its own consistent snapshot (WAL), no BEGIN.
        # mode=rw: a missing index is an error, never silently created as an empty file.
        uri = f"file:{quote(str(self._path))}?mode=rw"
        connection = sqlite3.connect(
            uri,
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=STATEMENT_CACHE,
        )
        connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        connection.execute("PRAGMA query_only=ON")
        # Read pages straight from the OS page cache instead of copying them into SQLite's small
        # per-connection cache: at a million check-ins a page costs a third less CPU.
        connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        with self._lock:
            self._connections.append(connection)
        return connection
