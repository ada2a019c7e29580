"""The transaction retry helper and the read-only engines, on SQLite and a real PostgreSQL 15.

Failures are produced by the databases themselves: PostgreSQL raises SQLSTATE 40001 from a
`RAISE ... USING ERRCODE` (injected) or from a genuine SERIALIZABLE conflict; SQLite reports
SQLITE_BUSY while another connection holds the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from atcore.index.engine import create_index_engine, migrate
from atcore.index.retry import (
    RetryPolicy,
    RetryPolicyError,
    is_retryable,
    run_transaction,
    sqlstate_of,
)
from tests.pg import pg_cluster, pg_url  # noqa: F401 - fixtures

FAST = RetryPolicy(max_attempts=5, base_delay=0.0, max_delay=0.0)
INJECT_40001 = text(
    "DO $$ BEGIN RAISE EXCEPTION 'injected conflict' USING ERRCODE = '40001'; END $$"
)


async def _make_counter(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)"))
        await conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
        await conn.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY)"))


async def _count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:  # noqa: F811
    engine = create_index_engine(pg_url, pool_size=4)
    await _make_counter(engine)
    yield engine
    await engine.dispose()


async def test_injected_40001_reruns_the_whole_transaction(pg_engine: AsyncEngine) -> None:
    attempts: list[int] = []

    async def work(conn: AsyncConnection) -> str:
        attempts.append(len(attempts) + 1)
        await conn.execute(text("INSERT INTO log VALUES (:id)"), {"id": 7})
        if len(attempts) < 3:
            await conn.execute(INJECT_40001)
        return "done"

    retried: list[int] = []
    result = await run_transaction(
        pg_engine, work, policy=FAST, on_retry=lambda _e, n: retried.append(n)
    )
    assert result == "done"
    assert attempts == [1, 2, 3]
    assert retried == [1, 2]
    # The failed attempts' INSERTs were rolled back: a re-run, not a partial replay.
    assert await _count(pg_engine, "SELECT count(*) FROM log") == 1


async def test_attempts_are_bounded(pg_engine: AsyncEngine) -> None:
    calls = 0

    async def always_conflicts(conn: AsyncConnection) -> None:
        nonlocal calls
        calls += 1
        await conn.execute(INJECT_40001)

    with pytest.raises(DBAPIError) as caught:
        await run_transaction(pg_engine, always_conflicts, policy=FAST)
    assert calls == FAST.max_attempts
    assert sqlstate_of(caught.value) == "40001"


async def test_other_errors_are_not_retried(pg_engine: AsyncEngine) -> None:
    calls = 0

    async def duplicate(conn: AsyncConnection) -> None:
        nonlocal calls
        calls += 1
        await conn.execute(text("INSERT INTO counter VALUES (1, 0)"))

    with pytest.raises(IntegrityError) as caught:
        await run_transaction(pg_engine, duplicate, policy=FAST)
    assert calls == 1
    assert sqlstate_of(caught.value) == "23505"
    assert not is_retryable(caught.value)


async def test_genuine_serialization_conflicts_lose_no_update(pg_engine: AsyncEngine) -> None:
    """Concurrent read-modify-write increments under SERIALIZABLE: every one lands once."""
    both_read = asyncio.Barrier(2)
    conflicts: list[int] = []

    async def increment(conn: AsyncConnection) -> None:
        n = (await conn.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar_one()
        if not conflicts:  # make the first round overlap for certain
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both_read.wait(), timeout=5)
        await conn.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    policy = RetryPolicy(max_attempts=50, base_delay=0.001, max_delay=0.02)
    await asyncio.gather(
        *(
            run_transaction(
                pg_engine, increment, policy=policy, on_retry=lambda _e, n: conflicts.append(n)
            )
            for _ in range(8)
        )
    )
    assert await _count(pg_engine, "SELECT n FROM counter WHERE id = 1") == 8
    assert conflicts, "the overlapping first round must have produced a 40001"


async def test_sqlite_busy_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    engine = create_index_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=1)
    await _make_counter(engine)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    seen: list[BaseException] = []

    def release(error: BaseException, _attempt: int) -> None:
        seen.append(error)
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")

    async def bump(conn: AsyncConnection) -> None:
        await conn.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))

    try:
        await run_transaction(engine, bump, policy=FAST, on_retry=release)
        assert len(seen) == 1
        assert is_retryable(seen[0])
        assert await _count(engine, "SELECT n FROM counter WHERE id = 1") == 1
    finally:
        blocker.close()
        await engine.dispose()


async def test_idempotent_policy_also_retries_unknown_completion() -> None:
    class Ambiguous(Exception):
        sqlstate = "40003"

    error = DBAPIError("COMMIT", None, Ambiguous())
    assert not is_retryable(error)
    assert is_retryable(error, idempotent=True)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1.0}, {"base_delay": 2.0, "max_delay": 1.0}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(RetryPolicyError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base_delay=0.01, max_delay=0.05)
    for attempt in range(1, 12):
        ceiling = min(0.05, 0.01 * 2 ** (attempt - 1))
        delays = {policy.delay(attempt) for _ in range(20)}
        assert all(0.0 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jitter: not a fixed schedule


async def test_sqlite_read_only_engine_cannot_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ro.sqlite"
    writer = create_index_engine(url)
    reader = create_index_engine(url, read_only=True)
    try:
        await migrate(writer)
        async with writer.begin() as conn:
            await conn.execute(text("INSERT INTO source_cursor VALUES ('s', 1, 0)"))
        async with reader.connect() as conn:
            assert (await conn.execute(text("SELECT seq FROM source_cursor"))).scalar_one() == 1
        with pytest.raises(DBAPIError):
            async with reader.begin() as conn:
                await conn.execute(text("UPDATE source_cursor SET seq = 2"))
    finally:
        await reader.dispose()
        await writer.dispose()


async def test_postgresql_read_only_engine_cannot_write(pg_url: str) -> None:  # noqa: F811
    writer = create_index_engine(pg_url)
    reader = create_index_engine(pg_url, read_only=True)
    try:
        await migrate(writer)
        async with reader.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM checkin"))).scalar_one() == 0
        with pytest.raises(DBAPIError) as caught:
            async with reader.begin() as conn:
                await conn.execute(text("INSERT INTO source_cursor VALUES ('s', 1, 0)"))
        assert sqlstate_of(caught.value) == "25006"  # read_only_sql_transaction
    finally:
        await reader.dispose()
        await writer.dispose()
