"""Fixtures for the local PLC directory tests: a real server on loopback with a fake clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from atcore.crypto import K256Keypair, Keypair, P256Keypair
from pds.plc.app import create_app
from pds.plc.settings import PlcSettings
from tests.atcore.identity_support import FakeWallClock

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
PlcClient = TestClient[web.Request, web.Application]


@pytest.fixture
def clock() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
def plc_app(tmp_path: Path, clock: FakeWallClock) -> web.Application:
    return create_app(PlcSettings(data_directory=tmp_path / "plc"), clock=clock)


@pytest.fixture
async def plc(aiohttp_client: ClientFactory, plc_app: web.Application) -> PlcClient:
    return await aiohttp_client(plc_app)


@pytest.fixture(scope="session")
def keys() -> dict[str, Keypair]:
    """Named keypairs: `recovery` outranks `rotation` in the rotation keys of `genesis` ops."""
    return {
        "recovery": K256Keypair.generate(),
        "rotation": P256Keypair.generate(),
        "signing": K256Keypair.generate(),
        "signing2": K256Keypair.generate(),
        "attacker": K256Keypair.generate(),
    }
