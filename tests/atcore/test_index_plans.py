"""The index's indexes serve the feed's query shapes, on SQLite and PostgreSQL 15.

Each shape is planned with EXPLAIN and must use the index meant for it (PostgreSQL with
sequential scans disabled, since on a small table a scan is legitimately cheaper: the point is
that the index *can* answer the query in order, without a sort).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from atcore.index.engine import create_index_engine, migrate
from atcore.index.schema import checkin
from tests.pg import PgCluster, pg_cluster  # noqa: F401 - fixture

KEYSET = "(sort_at, author_did, collection, rkey)"
SHAPES = {
    "global newest first": (
        "SELECT author_did, rkey FROM checkin WHERE visible AND post_exists "
        f"AND {KEYSET} < (:s, :d, :c, :r) "
        "ORDER BY sort_at DESC, author_did DESC, collection DESC, rkey DESC LIMIT 30",
        "ix_checkin_sort_at_author_did_collection_rkey",
    ),
    "one cell newest first": (
        "SELECT author_did, rkey FROM checkin WHERE h3_r7 = :cell "
        f"AND {KEYSET} < (:s, :d, :c, :r) "
        "ORDER BY sort_at DESC, author_did DESC, collection DESC, rkey DESC LIMIT 30",
        "ix_checkin_h3_r7_sort_at_author_did_collection_rkey",
    ),
    "a city cell": (
        "SELECT author_did, rkey FROM checkin WHERE h3_r5 = :cell "
        "ORDER BY sort_at DESC, author_did DESC, collection DESC, rkey DESC LIMIT 30",
        "ix_checkin_h3_r5_sort_at_author_did_collection_rkey",
    ),
    "a region cell": (
        "SELECT author_did, rkey FROM checkin WHERE h3_r3 = :cell "
        "ORDER BY sort_at DESC, author_did DESC, collection DESC, rkey DESC LIMIT 30",
        "ix_checkin_h3_r3_sort_at_author_did_collection_rkey",
    ),
    "viewer's latest check-in": (
        "SELECT lat_e6, lon_e6 FROM checkin WHERE author_did = :d AND visible "
        "ORDER BY sort_at DESC LIMIT 1",
        "ix_checkin_author_did_sort_at",
    ),
    "companion post lookup": (
        "SELECT rkey FROM checkin WHERE post_uri = :uri",
        "ix_checkin_post_uri",
    ),
}
PARAMS = {"s": 10**13, "d": "did:plc:z", "c": "app.skyspot.checkin", "r": "z", "cell": 7,
          "uri": "at://x/app.bsky.feed.post/y"}  # fmt: skip


def rows(count: int) -> list[dict[str, object]]:
    return [
        {
            "author_did": f"did:plc:{i % 97:024d}", "collection": "app.skyspot.checkin",
            "rkey": f"3k{i:011d}", "cid": "bafy", "rev": "3aaa", "lat_e6": i, "lon_e6": -i,
            "h3_r7": i % 50, "h3_r5": i % 20, "h3_r3": i % 5, "place_name": "p",
            "post_uri": f"at://x/app.bsky.feed.post/{i}", "post_exists": True,
            "created_at": i, "indexed_at": i, "sort_at": i, "visible": True,
        }
        for i in range(count)
    ]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/index.sqlite"
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        url = cluster.url(cluster.create_database())
    engine = create_index_engine(url)
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.execute(insert(checkin), rows(3000))
        await conn.execute(text("ANALYZE"))
    yield engine
    await engine.dispose()


async def plan(engine: AsyncEngine, sql: str) -> str:
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            result = await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"), PARAMS)
            return "\n".join(str(r[-1]) for r in result)
        await conn.execute(text("SET enable_seqscan = off"))
        await conn.execute(text("SET enable_bitmapscan = off"))
        result = await conn.execute(text(f"EXPLAIN {sql}"), PARAMS)
        return "\n".join(str(r[0]) for r in result)


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_query_shape_uses_its_index_without_sorting(engine: AsyncEngine, shape: str) -> None:
    sql, index = SHAPES[shape]
    text_plan = await plan(engine, sql)
    assert index in text_plan, text_plan
    assert "TEMP B-TREE" not in text_plan  # SQLite: no sort step
    assert "Sort" not in text_plan  # PostgreSQL: no sort step
