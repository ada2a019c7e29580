"""atcore's DidResolver against the real local PLC directory, and the directory's settings."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from atcore.crypto import Keypair
from atcore.identity import DidNotFound, ResolutionUnavailable
from atcore.identity.plc import (
    PlcOp,
    create_genesis_op,
    create_tombstone_op,
    create_update_op,
    did_for_genesis,
    op_to_json,
)
from atcore.identity.resolver import DidResolver
from pds.plc.settings import PlcSettings, PlcSettingsError
from tests.atcore.identity_support import FakeMonotonic
from tests.pds.plc.conftest import ServerFactory


@pytest.fixture
async def plc_server(aiohttp_server: ServerFactory, plc_app: web.Application) -> TestServer:
    return await aiohttp_server(plc_app)


@pytest.fixture
async def counted_session() -> AsyncIterator[tuple[aiohttp.ClientSession, list[str]]]:
    """A client session that records the URL of every request it starts."""
    requests: list[str] = []

    async def on_request_start(
        _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: Any
    ) -> None:
        requests.append(str(params.url))

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
        yield session, requests


def plc_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def publish(server: TestServer, did: str, op: PlcOp) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{plc_url(server)}/{did}", json=op_to_json(op))
        assert response.status == 200, await response.text()


async def test_resolve_cache_refresh_and_expiry(
    plc_server: TestServer,
    keys: dict[str, Keypair],
    counted_session: tuple[aiohttp.ClientSession, list[str]],
) -> None:
    session, requests = counted_session
    genesis = create_genesis_op(
        signer=keys["rotation"],
        rotation_keys=[keys["recovery"].did(), keys["rotation"].did()],
        signing_key=keys["signing"].did(),
        handle="alice.test",
        pds_endpoint="http://127.0.0.1:2583",
    )
    did = did_for_genesis(genesis)
    await publish(plc_server, did, genesis)
    clock = FakeMonotonic()
    resolver = DidResolver(session=session, plc_url=plc_url(plc_server), cache_ttl=30, clock=clock)

    doc = await resolver.resolve(did)
    assert (doc.handle, doc.pds_endpoint) == ("alice.test", "http://127.0.0.1:2583")
    assert await resolver.resolve_atproto_key(did) == keys["signing"].public_key
    assert requests == [f"{plc_url(plc_server)}/{did}"]

    rotated = create_update_op(genesis, signer=keys["rotation"], signing_key=keys["signing2"].did())
    await publish(plc_server, did, rotated)
    assert await resolver.resolve_atproto_key(did) == keys["signing"].public_key  # cached
    assert len(requests) == 1
    fresh = await resolver.resolve_atproto_key(did, force_refresh=True)
    assert fresh == keys["signing2"].public_key
    assert len(requests) == 2

    renamed = create_update_op(rotated, signer=keys["rotation"], handle="alice2.test")
    await publish(plc_server, did, renamed)
    clock.advance(29)
    assert (await resolver.resolve(did)).handle == "alice.test"
    clock.advance(2)
    assert (await resolver.resolve(did)).handle == "alice2.test"
    assert len(requests) == 3


async def test_concurrent_resolutions_share_one_request(
    plc_server: TestServer,
    keys: dict[str, Keypair],
    counted_session: tuple[aiohttp.ClientSession, list[str]],
) -> None:
    session, requests = counted_session
    genesis = create_genesis_op(
        signer=keys["recovery"],
        rotation_keys=[keys["recovery"].did()],
        signing_key=keys["signing"].did(),
    )
    did = did_for_genesis(genesis)
    await publish(plc_server, did, genesis)
    resolver = DidResolver(session=session, plc_url=plc_url(plc_server))
    docs = await asyncio.gather(*(resolver.resolve(did) for _ in range(8)))
    assert len(requests) == 1
    assert all(doc is docs[0] for doc in docs)


async def test_unknown_and_tombstoned_dids_are_not_found(
    plc_server: TestServer, keys: dict[str, Keypair]
) -> None:
    genesis = create_genesis_op(
        signer=keys["recovery"],
        rotation_keys=[keys["recovery"].did()],
        signing_key=keys["signing"].did(),
    )
    did = did_for_genesis(genesis)
    async with DidResolver(plc_url=plc_url(plc_server)) as resolver:
        with pytest.raises(DidNotFound):
            await resolver.resolve(did)
        await publish(plc_server, did, genesis)
        assert (await resolver.resolve(did)).id == did
        await publish(plc_server, did, create_tombstone_op(genesis, signer=keys["recovery"]))
        with pytest.raises(DidNotFound):
            await resolver.resolve(did, force_refresh=True)
        with pytest.raises(DidNotFound):
            await resolver.resolve(did)  # the stale document was dropped from the cache


async def test_directory_down_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with DidResolver(plc_url=f"http://127.0.0.1:{port}") as resolver:
        with pytest.raises(ResolutionUnavailable):
            await resolver.resolve("did:plc:ewvi7nxzyoun6zhxrhs64oiz")


# -- settings -------------------------------------------------------------------------------------
def test_settings_defaults() -> None:
    settings = PlcSettings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 2582)
    assert settings.data_directory == Path("data/plc")
    assert settings.effective_database_url == "sqlite+aiosqlite:///data/plc/plc.sqlite"


def test_settings_from_environment(tmp_path: Path) -> None:
    settings = PlcSettings.from_env(
        {"PLC_HOST": "0.0.0.0", "PLC_PORT": "0", "PLC_DATA_DIRECTORY": str(tmp_path)}
    )
    assert (settings.host, settings.port, settings.data_directory) == ("0.0.0.0", 0, tmp_path)
    override = PlcSettings.from_env({"PLC_DATABASE_URL": "sqlite+aiosqlite:///:memory:"})
    assert override.effective_database_url == "sqlite+aiosqlite:///:memory:"
    assert not override.uses_data_directory


@pytest.mark.parametrize("port", ["http", "-1", "65536"])
def test_settings_reject_bad_ports(port: str) -> None:
    with pytest.raises(PlcSettingsError):
        PlcSettings.from_env({"PLC_PORT": port})
