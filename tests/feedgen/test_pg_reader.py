"""The PostgreSQL reader: near bands read in rounds, and a restarted server.

(asyncpg itself notices connections a restarted server closed; the reader's retry is for the
ones nobody could notice, such as a connection a network device dropped silently.)

The rounds are checked against a stand-in for the database that runs `array_band_statement`'s
contract in Python (each cell's first `per_cell` or `lim` rows in key order, merged, the first
`lim` kept, each with its cell); the real statement is held to the oracle's pages by the paging
properties (tests/feedgen/test_paging_properties.py), on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore.index import parse_database_url
from feedgen.algos.bands import Anchor
from feedgen.algos.order import RankingPlan
from feedgen.db.pg_reader import Compiled, PgReader, first_share, near_band_rows
from tests.feedgen.support import Checkin, open_index
from tests.pg import PgCluster, pg_available, wait_until_accepting

Rows = dict[int, list[int]]  # cell -> its rows' keys, best first


class StandIn:
    """The statement's contract over `cells`, counting the rows each round reads."""

    def __init__(self, cells: Rows) -> None:
        self.cells = cells
        self.rounds = 0
        self.rows_read = 0

    async def fetch(self, _statement: Compiled, params: dict[str, Any]) -> list[Any]:
        self.rounds += 1
        read = [
            (key, cell)
            for group, cap in (("cells", params["per_cell"]), ("more", params["lim"]))
            for cell in params[group]
            for key in self.cells[cell][:cap]
        ]
        self.rows_read += len(read)
        return sorted(read, reverse=True)[: params["lim"]]


@st.composite
def bands(draw: st.DrawFn) -> tuple[Rows, int]:
    """Cells of skewed sizes (empty to dense), keys shuffled over them, and a page size."""
    sizes = draw(st.lists(st.integers(0, 60), min_size=1, max_size=19))
    keys = draw(st.permutations(range(sum(sizes))))
    cells: Rows = {}
    start = 0
    for cell, size in enumerate(sizes):
        cells[cell] = sorted(keys[start : start + size], reverse=True)
        start += size
    return cells, draw(st.integers(1, 100))


@given(bands())
def test_rounds_give_the_first_rows_of_all_cells(band: tuple[Rows, int]) -> None:
    cells, limit = band
    stand_in = StandIn(cells)
    params = {"cells": list(cells), "lim": limit}
    statement = Compiled("", (), {})
    rows = asyncio.run(near_band_rows(stand_in.fetch, statement, params, limit))
    everything = sorted((key for rows in cells.values() for key in rows), reverse=True)
    assert [row[0] for row in rows] == everything[:limit]
    assert stand_in.rounds <= 2


def test_an_even_band_is_read_in_one_round_of_small_shares() -> None:
    cells: Rows = {cell: [cell + 19 * i for i in range(50)][::-1] for cell in range(19)}
    stand_in = StandIn(cells)
    params = {"cells": list(cells), "lim": 30}
    rows = asyncio.run(near_band_rows(stand_in.fetch, Compiled("", (), {}), params, 30))
    assert len(rows) == 30
    assert stand_in.rounds == 1
    assert stand_in.rows_read == 19 * first_share(30, 19) < 19 * 30


def test_a_dense_cell_is_widened_in_a_second_round() -> None:
    cells: Rows = {0: list(range(1000, 950, -1)), **{c: [c] for c in range(1, 19)}}
    stand_in = StandIn(cells)
    params = {"cells": list(cells), "lim": 30}
    rows = asyncio.run(near_band_rows(stand_in.fetch, Compiled("", (), {}), params, 30))
    assert [row[0] for row in rows] == list(range(1000, 970, -1))
    assert stand_in.rounds == 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    reason = pg_available()
    if reason is not None:
        pytest.skip(reason)
    pg = PgCluster()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


async def test_a_restarted_server_is_read_again(cluster: PgCluster, tmp_path: Path) -> None:
    url = cluster.url(cluster.create_database())
    index = await open_index(tmp_path, url)
    lat, lon = 48_856_600, 2_352_200
    t0 = 1_800_000_000_000
    await index.insert(
        Checkin(did="did:plc:aaaa", rkey=f"r{i}", lat_e6=lat, lon_e6=lon, sort_at=t0 - i - 1)
        for i in range(5)
    )
    await index.close()
    reader = PgReader(parse_database_url(url)[1], pool_size=4)
    plan = RankingPlan.build(t0_ms=t0, window_ms=3_600_000, anchor=Anchor(lat, lon), penalties=None)
    try:
        before = await reader.page(plan, None, 3)
        await asyncio.gather(*(reader.page(plan, None, 3) for _ in range(4)))  # fill the pool
        await asyncio.to_thread(cluster.stop)
        await asyncio.to_thread(cluster.start)
        await asyncio.to_thread(wait_until_accepting, cluster)
        after = await reader.page(plan, None, 3)
        assert after == before
        assert [row.key.rkey for row in after.rows] == ["r0", "r1", "r2"]
    finally:
        await reader.close()
