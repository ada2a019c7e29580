"""The portable index reader: the statements of `queries` on any async SQLAlchemy engine.

The service reads PostgreSQL and CockroachDB with `feedgen.db.pg_reader` and a SQLite file with
`feedgen.db.sqlite_reader`, which skip the engine's per-execution work; this reader serves what
those do not (an in-memory SQLite index) and runs every band as the portable `band_statement`,
so the tests can hold the fast readers to the same pages.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine

from feedgen.algos.bands import Anchor, DiskCache
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
    ping_statement,
)


class EngineReader:
    """The reads on an async SQLAlchemy engine."""

    __slots__ = ("_disks", "_engine", "_shapes")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._shapes: dict[Shape, Select[Any]] = {}
        self._disks = DiskCache()

    async def ping(self) -> None:
        """Fail unless the index answers (health checks)."""
        async with self._engine.connect() as conn:
            await conn.execute(ping_statement())

    async def latest_anchor(self, did: str) -> Anchor | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(anchor_statement(), {"did": did})).first()
        return None if row is None else anchor_of(tuple(row))

    async def page(self, plan: RankingPlan, last: Position | None, limit: int) -> PageResult:
        disks = self._disks.around(plan.anchor) if plan.anchor is not None else None
        search = plan.search(last, limit)
        asked: list[int] = []
        async with self._engine.connect() as conn:
            try:
                bound = next(search)
                while True:
                    asked.append(bound.band)
                    shape = band_shape(disks, bound)
                    statement = self._shapes.get(shape)
                    if statement is None:
                        statement = self._shapes[shape] = band_statement(shape)
                    params = band_parameters(disks, bound, limit, plan.t0_ms)
                    rows = (await conn.execute(statement, params)).all()
                    bound = search.send(feed_rows(rows, bound.band))
            except StopIteration as done:
                return PageResult(done.value, tuple(asked))

    async def close(self) -> None:
        await self._engine.dispose()
