"""Two live PDSes sharing one local PLC directory, for the account-migration tests.

Everything runs in one background thread (as `tests.pds.stack` runs one PDS), on 127.0.0.1
ephemeral ports. The two PDSes differ in everything a migration touches: hostname (so service
DIDs), public URL (`localhost` vs `127.0.0.1`), data directory and PLC rotation key (each
generates its own in dev mode). Each is described by a `tests.pds.stack.Stack`, so the shared
helpers (`Xrpc`, `create_account`, `account_events`) work on either.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from atcore import frames, nsids
from pds.app import create_app
from pds.plc.app import create_app as create_plc_app
from pds.plc.settings import PlcSettings
from pds.settings import PdsSettings
from tests.pds.stack import Stack, _bound_socket, _ServerThread

STREAM_TIMEOUT = 30.0
CODE_PATTERN = re.compile(r"([A-Z2-7]{5}-[A-Z2-7]{5})$")


@dataclass(frozen=True)
class TwoPds:
    a: Stack
    b: Stack
    plc_url: str


def _pds_settings(
    data_dir: Path, name: str, host: str, port: int, plc_url: str, **env: str
) -> PdsSettings:
    return PdsSettings.from_env(
        {
            "PDS_DEV_MODE": "true",
            "PDS_HOSTNAME": f"{name}.skyspot.test",
            "PDS_PUBLIC_URL": f"http://{host}:{port}",
            "PDS_PORT": str(port),
            "PDS_DATA_DIRECTORY": str(data_dir / name),
            "PDS_DID_PLC_URL": plc_url,
            **env,
        }
    )


@contextmanager
def start_two_pds(data_dir: Path, **b_env: str) -> Iterator[TwoPds]:
    """PLC + PDS A (localhost) + PDS B (127.0.0.1), each with its own rotation key; `b_env`
    overrides B's settings."""
    plc_sock, a_sock, b_sock = _bound_socket(), _bound_socket(), _bound_socket()
    plc_port = plc_sock.getsockname()[1]
    plc_url = f"http://127.0.0.1:{plc_port}"
    plc_settings = PlcSettings(host="127.0.0.1", port=plc_port, data_directory=data_dir / "plc")
    a = _pds_settings(data_dir, "pds-a", "localhost", a_sock.getsockname()[1], plc_url)
    b = _pds_settings(data_dir, "pds-b", "127.0.0.1", b_sock.getsockname()[1], plc_url, **b_env)
    assert a.plc_rotation_key_hex != b.plc_rotation_key_hex
    server = _ServerThread(
        [
            (lambda: create_plc_app(plc_settings), plc_sock),
            (lambda: create_app(a), a_sock),
            (lambda: create_app(b), b_sock),
        ]
    )
    server.start()
    try:
        server.wait_ready()
        yield TwoPds(
            a=Stack(pds_url=a.public_url, plc_url=plc_url, settings=a),
            b=Stack(pds_url=b.public_url, plc_url=plc_url, settings=b),
            plc_url=plc_url,
        )
    finally:
        server.stop()
        for sock in (plc_sock, a_sock, b_sock):
            sock.close()


def mailed_code(caplog: pytest.LogCaptureFixture, email: str) -> str:
    """The last PLC-operation code `pds.mailer` logged for `email`."""
    for record in reversed(caplog.records):
        message = record.getMessage()
        if record.name == "pds.mailer" and "PLC operation" in message and email in message:
            found = CODE_PATTERN.search(message)
            if found:
                return found.group(1)
    raise AssertionError("no PLC operation code was mailed")


async def firehose_events(
    http: aiohttp.ClientSession, stack: Stack, did: str, until_seq: int
) -> list[frames.MessageFrame]:
    """The DID's messages on the stack's subscribeRepos from cursor 0, up to `until_seq`."""
    url = stack.pds_url.replace("http://", "ws://") + nsids.xrpc_path(nsids.SYNC_SUBSCRIBE_REPOS)
    seen: list[frames.MessageFrame] = []
    async with (
        asyncio.timeout(STREAM_TIMEOUT),
        http.ws_connect(f"{url}?cursor=0", max_msg_size=0) as ws,
    ):
        async for message in ws:
            frame = frames.decode(message.data)
            assert isinstance(frame, frames.MessageFrame), frame
            if _did_of(frame.body) == did:
                seen.append(frame)
            if frame.body.get("seq", -1) >= until_seq:
                break
    return seen


def _did_of(body: dict[str, Any]) -> str | None:
    value = body.get("repo", body.get("did"))
    return value if isinstance(value, str) else None
