"""The index reader for SQLite: the statements of `queries`, one worker-thread hop per page.

Through aiosqlite every step of a read (checkout, BEGIN, execute, fetch, close, rollback) is its
own hop to the connection's thread; a page of one to four band statements costs a dozen hops and
SQLAlchemy's per-execution work around each. Here every statement shape is compiled ONCE for
SQLite (SQL text plus the order of its parameters) and a whole page - the ranking's search with
all its band statements - runs synchronously on a pool thread with its own `sqlite3` connection
(`PRAGMA query_only`, so it cannot write), in a single hop from the event loop. SQLite releases
the GIL while it steps, so the pool's threads read in parallel (WAL mode, set by the writer).

Statements are cheap in-process, so a near band is read as one cursor per cell of its disk
(`queries.cell_statement`), stepped lazily and merged in Python: a page reads about
`limit + cells` index entries instead of `limit` from every cell. The merge compares keys in
Python, which orders `str` by code point, exactly as SQLite's default BINARY collation orders
UTF-8 text.

Errors: `sqlite3.Error` from the driver (the API reports the index as unavailable).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote

from sqlalchemy import Select
from sqlalchemy.dialects import sqlite as sqlite_dialect

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
    cell_statement,
    feed_rows,
    is_cell_band,
    ping_statement,
)

BUSY_TIMEOUT_MS: Final = 5000
_DIALECT: Final = sqlite_dialect.dialect()
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as SQLite text and a function from named parameters to positional ones."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    @classmethod
    def of(cls, statement: Select[Any]) -> Compiled:
        compiled = statement.compile(dialect=_DIALECT)
        names = tuple(compiled.positiontup or ())
        defaults = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if bind.value is not None and not bind.required
        }
        return cls(compiled.string, names, defaults)

    def positional(self, params: dict[str, Any]) -> list[Any]:
        return [params[n] if n in params else self.defaults[n] for n in self.names]


def _keyset_of(row: Any) -> tuple[int, str, str, str]:
    # OUTPUT columns: post_uri, sort_at, author_did, collection, rkey, lat_e6, lon_e6
    return (row[1], row[2], row[3], row[4])


class SqliteReader:
    """Reads a SQLite index from a pool of threads, each with its own connection."""

    def __init__(self, path: Path, *, threads: int = 4) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="feedgen-sqlite")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._shapes: dict[tuple[Shape, str], Compiled] = {}
        self._anchor = Compiled.of(anchor_statement())
        self._ping = Compiled.of(ping_statement())
        self._disks = DiskCache()

    async def ping(self) -> None:
        def read(db: sqlite3.Connection) -> None:
            db.execute(self._ping.sql, self._ping.positional({})).fetchall()

        await self._run(read)

    async def latest_anchor(self, did: str) -> Anchor | None:
        def read(db: sqlite3.Connection) -> Anchor | None:
            row = db.execute(self._anchor.sql, self._anchor.positional({"did": did})).fetchone()
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
                    rows = self._merged_cells(db, shape, disks, params, limit)
                else:
                    compiled = self._compiled(shape, band_statement)
                    rows = db.execute(compiled.sql, compiled.positional(params)).fetchall()
                bound = search.send(feed_rows(rows, bound.band))
        except StopIteration as done:
            return PageResult(done.value, tuple(asked))

    def _merged_cells(
        self,
        db: sqlite3.Connection,
        shape: Shape,
        disks: BandDisks,
        params: dict[str, Any],
        limit: int,
    ) -> list[Any]:
        """The band's first `limit` rows: one lazily stepped cursor per cell, merged."""
        compiled = self._compiled(shape, cell_statement)
        disk = disks.disks[shape[1]] or ()
        cursors = [
            db.execute(compiled.sql, compiled.positional({**params, "cell": cell}))
            for cell in dict.fromkeys(disk)
            if cell != NO_CELL
        ]
        try:
            merged = heapq.merge(*cursors, key=_keyset_of, reverse=True)
            return list(itertools.islice(merged, limit))
        finally:
            for cursor in cursors:
                cursor.close()

    def _compiled(self, shape: Shape, build: Callable[[Shape], Select[Any]]) -> Compiled:
        key = (shape, build.__name__)
        compiled = self._shapes.get(key)
        if compiled is None:  # a benign race: two threads may compile the same shape once each
            compiled = self._shapes[key] = Compiled.of(build(shape))
        return compiled

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._with_connection, work)

    def _with_connection(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return work(connection)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: each read statement is its own consistent snapshot (WAL), no BEGIN hop.
        # mode=rw: a missing index is an error, never silently created as an empty file.
        uri = f"file:{quote(str(self._path))}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA query_only=ON")
        with self._lock:
            self._connections.append(connection)
        return connection
