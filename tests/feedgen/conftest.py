"""Fixtures for the feed generator tests.

`runner` and `indexed` are module-scoped so Hypothesis tests (synchronous bodies that run
coroutines on one loop) can share a migrated index; every example clears it first. `indexed` is
parametrized over the readers the feed generator uses: the SQLite thread-pool reader, the engine
reader on SQLite, and the engine reader on a real PostgreSQL 15 (skipped when not installed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from atcore.index import create_index_engine
from feedgen.context import open_reader
from feedgen.db.engine_reader import EngineReader
from feedgen.db.queries import IndexReader
from tests.feedgen.support import Index, open_index
from tests.pg import PgCluster, pg_cluster  # noqa: F401 - the session's cluster (fixture)


@dataclass
class Indexed:
    index: Index
    reader: IndexReader


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for a module's synchronous Hypothesis tests: engines stay on one loop."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module", params=["sqlite-threads", "sqlite-engine", "postgresql"])
def indexed(
    request: pytest.FixtureRequest,
    runner: asyncio.Runner,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Indexed]:
    """A migrated index and a feed reader on it, usable from `runner.run(...)`."""
    directory = tmp_path_factory.mktemp("index")
    if request.param == "postgresql":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        index = runner.run(open_index(directory, cluster.url(cluster.create_database())))
    else:
        index = runner.run(open_index(directory))
    if request.param == "sqlite-engine":
        reader: IndexReader = EngineReader(create_index_engine(index.url, read_only=True))
    else:
        reader = open_reader(index.url)
    try:
        yield Indexed(index, reader)
    finally:
        runner.run(reader.close())
        runner.run(index.close())
