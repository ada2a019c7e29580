"""Fixtures for the feed generator tests.

`runner` and `sync_index` are module-scoped so Hypothesis tests (synchronous bodies that run
coroutines on one loop) can share a migrated SQLite index; every example clears it first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.feedgen.support import Index, open_index


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for a module's synchronous Hypothesis tests: engines stay on one loop."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module")
def sync_index(runner: asyncio.Runner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """A migrated SQLite index usable from `runner.run(...)`; examples clear it themselves."""
    index = runner.run(open_index(tmp_path_factory.mktemp("index")))
    try:
        yield index
    finally:
        runner.run(index.close())
