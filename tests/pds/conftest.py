"""Fixtures for PDS tests (the stack itself lives in `tests.pds.stack`).

- `pds_stack` (session): one shared live PLC + PDS; tests make their own accounts.
- `new_account`: call it to create a fresh account on the shared stack (`LiveAccount`).
- `xrpc`: a raw XRPC client (`tests.pds.xrpc_client.Xrpc`) on the shared stack.
- `db`: a PDS database of the test's own, migrated to head (no server).
- `start_stack(path, **env)` starts a stack with other settings (re-exported from
  `tests.pds.stack`, like `Stack`, `LiveAccount`, `create_account`, `unique_name`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from pds.db.engine import Database
from tests.pds.stack import (
    SHARED_STACK_ENV,
    LiveAccount,
    Stack,
    create_account,
    start_stack,
    unique_name,
)
from tests.pds.xrpc_client import Xrpc

# Re-exported: PDS test modules import the stack helpers from here too.
__all__ = ["LiveAccount", "Stack", "create_account", "start_stack", "unique_name"]


@pytest.fixture(scope="session")
def pds_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("stack"), **SHARED_STACK_ENV) as stack:
        yield stack


@pytest.fixture
def new_account(pds_stack: Stack) -> Callable[..., LiveAccount]:
    """Call to create a fresh account on the shared stack."""
    return lambda prefix="u", **extra: create_account(pds_stack, prefix, **extra)


@pytest.fixture
async def xrpc(pds_stack: Stack) -> AsyncIterator[Xrpc]:
    async with aiohttp.ClientSession() as http:
        yield Xrpc(http, pds_stack)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "pds.sqlite")
    await database.migrate()
    yield database
    await database.close()
