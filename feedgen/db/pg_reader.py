"""The index reader for PostgreSQL and CockroachDB: the statements of `queries` on asyncpg.

Through SQLAlchemy's async engine a page took four round trips (the pool's pre-ping, BEGIN, the
statement, ROLLBACK) and about 0.4 ms of our CPU around them. Here every statement shape is
compiled once with the backend's dialect (`$n` text plus the order of its parameters) and run on
an asyncpg pool in autocommit: one round trip per band statement, each its own snapshot (rows
indexed after page 1 are excluded by `indexed_at <= :snap` anyway), in read-only sessions
(`default_transaction_read_only`). The reads never change session state, so connections go
back to the pool without asyncpg's reset query. A pooled connection the server dropped (a
restart) fails its statement: reads are idempotent, so the request is retried once, on a fresh
connection.

**Near bands in rounds.** These databases cannot merge the cells' index scans lazily as SQLite
does: each cell's scan is a LATERAL subquery with its own LIMIT, so a dense disk read `limit`
rows from each of its 19 cells (about 570 heap fetches for a page of 30, ~0.8 ms of PostgreSQL
CPU at a million check-ins). Instead (`array_band_statement`, `near_band_rows`):

1. every cell is read up to a small share, `ceil(SHARE_FACTOR * limit / cells)` rows, and the
   database merges them into the first `limit` rows;
2. a cell that filled its share *inside* those rows may hold more rows that belong in the page,
   so those cells alone are read again up to `limit` rows each (`cells_to_widen`) and the page
   is merged anew; a cell holding `limit` rows can never be missing one.

A cell whose share did not fit in the page is exhausted, or its unread rows rank below its last
read row, which already has `limit` rows ahead of it: none can be in the page. Only the database
orders rows (the reader counts rows per cell), so its collation alone decides the keyset order.

Errors: `asyncpg.PostgresError`, `asyncpg.InterfaceError`, `OSError` (the API reports the index
as unavailable).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from feedgen.algos.bands import Anchor, DiskCache
from feedgen.algos.order import Position, RankingPlan
from feedgen.db.queries import (
    PageResult,
    Shape,
    anchor_of,
    anchor_statement,
    array_band_parameters,
    array_band_statement,
    band_shape,
    feed_rows,
    is_cell_band,
    ping_statement,
)

SHARE_FACTOR: Final = 4  # a cell's first share is this many times its even share of the page
DEAD_CONNECTION: Final = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError)
T = TypeVar("T")
Fetch = Callable[["Compiled", dict[str, Any]], Awaitable[list[Any]]]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as `$n` SQL, its parameters' names in order and the values SQLAlchemy fixed."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement, dialect: Dialect) -> Compiled:
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {statement!r}")
        defaults = {name: value for name, value in compiled.params.items() if value is not None}
        return cls(compiled.string, tuple(compiled.positiontup or ()), defaults)

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        return [params[n] if n in params else self.defaults[n] for n in self.names]


def first_share(limit: int, cells: int) -> int:
    """Rows to read from each cell of a near band in the first round."""
    return min(limit, max(1, -(-SHARE_FACTOR * limit // max(cells, 1))))


def cells_to_widen(row_cells: Sequence[int], shared: Sequence[int], share: int) -> list[int]:
    """The cells of `shared` (read up to `share` rows) that filled their share within the page's
    rows (`row_cells`: the cell of each row returned): they may hold more rows for the page."""
    counts = Counter(row_cells)
    return [cell for cell in shared if counts[cell] >= share]


async def near_band_rows(
    fetch: Fetch, statement: Compiled, params: dict[str, Any], limit: int
) -> list[Sequence[Any]]:
    """A near band's page in rounds (see the module docstring); rows without their cell."""
    cells: list[int] = params["cells"]
    share = first_share(limit, len(cells))
    shared, widened = cells, list[int]()
    while True:
        rows = await fetch(
            statement, {**params, "cells": shared, "per_cell": share, "more": widened}
        )
        wider = cells_to_widen([row[-1] for row in rows], shared, share) if share < limit else []
        if not wider:
            return [tuple(row)[:-1] for row in rows]
        widened = [*widened, *wider]
        shared = [cell for cell in shared if cell not in wider]


async def _on_connection(pool: asyncpg.Pool, work: Callable[[Fetch], Awaitable[T]]) -> T:
    async with pool.acquire() as connection:

        async def fetch(statement: Compiled, params: dict[str, Any]) -> list[Any]:
            rows: list[Any] = await connection.fetch(statement.sql, *statement.arguments(params))
            return rows

        return await work(fetch)


async def _keep_session(_connection: Any) -> None:
    """Pool reset hook: our reads leave no session state behind, so there is nothing to reset."""


class PgReader:
    """Reads a PostgreSQL or CockroachDB index through a pool of asyncpg connections."""

    def __init__(self, url: URL, *, pool_size: int) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._dialect = url.get_dialect()()
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._shapes: dict[Shape, Compiled] = {}
        self._anchor = Compiled.of(anchor_statement(), self._dialect)
        self._ping = Compiled.of(ping_statement(), self._dialect)
        self._disks = DiskCache()

    async def ping(self) -> None:
        """Fail unless the index answers (health checks)."""
        await self._run(lambda fetch: fetch(self._ping, {}))

    async def latest_anchor(self, did: str) -> Anchor | None:
        rows = await self._run(lambda fetch: fetch(self._anchor, {"did": did}))
        return anchor_of(tuple(rows[0])) if rows else None

    async def page(self, plan: RankingPlan, last: Position | None, limit: int) -> PageResult:
        return await self._run(lambda fetch: self._page(fetch, plan, last, limit))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _page(
        self, fetch: Fetch, plan: RankingPlan, last: Position | None, limit: int
    ) -> PageResult:
        disks = self._disks.around(plan.anchor) if plan.anchor is not None else None
        search = plan.search(last, limit)
        asked: list[int] = []
        try:
            bound = next(search)
            while True:
                asked.append(bound.band)
                shape = band_shape(disks, bound)
                statement = self._statement(shape)
                params = array_band_parameters(disks, bound, limit, plan.t0_ms)
                if is_cell_band(shape):
                    rows = await near_band_rows(fetch, statement, params, limit)
                else:
                    rows = await fetch(statement, params)
                bound = search.send(feed_rows(rows, bound.band))
        except StopIteration as done:
            return PageResult(done.value, tuple(asked))

    def _statement(self, shape: Shape) -> Compiled:
        compiled = self._shapes.get(shape)
        if compiled is None:
            compiled = self._shapes[shape] = Compiled.of(array_band_statement(shape), self._dialect)
        return compiled

    async def _run(self, work: Callable[[Fetch], Awaitable[T]]) -> T:
        """`work` on one pooled connection; once more on a fresh one if that one was dead."""
        pool = self._pool or await self._opened()
        try:
            return await _on_connection(pool, work)
        except DEAD_CONNECTION:
            # A dead connection means the server went away: every idle one is dead too.
            await pool.expire_connections()
            return await _on_connection(pool, work)

    async def _opened(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    reset=_keep_session,
                    server_settings={"default_transaction_read_only": "on"},
                )
            return self._pool
