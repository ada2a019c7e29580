"""Shared fixtures and helpers for the Skyspot client and script tests.

A live PLC + PDS on loopback (the PDS test stack), SDK clients logged in as fresh accounts, the
`#commit` events a repository produced (read from the sequencer, exactly what the firehose
serves), and small generated images.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from atproto import Client
from PIL import Image

from atcore import dagcbor
from atcore.car import read_car
from tests.pds.stack import LiveAccount, Stack, account_events, create_account, start_stack


@dataclass(frozen=True)
class User:
    account: LiveAccount
    client: Client

    @property
    def did(self) -> str:
        return self.account.did


NewUser = Callable[..., User]


@pytest.fixture(scope="session")
def pds_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("stack")) as stack:
        yield stack


def login(stack: Stack, prefix: str = "spot") -> User:
    """A fresh account and an SDK client logged in as it (close `client.request` after use)."""
    account = create_account(stack, prefix)
    client = Client(base_url=stack.pds_url)
    client.login(account.handle, account.password)
    return User(account, client)


@pytest.fixture
def new_user(pds_stack: Stack) -> Iterator[NewUser]:
    """Call to get a fresh account and an SDK client logged in as it (closed after the test)."""
    clients: list[Client] = []

    def make(prefix: str = "spot") -> User:
        user = login(pds_stack, prefix)
        clients.append(user.client)
        return user

    yield make
    for client in clients:
        client.request.close()


def commit_events(stack: Stack, did: str) -> list[dict[str, Any]]:
    """The repository's `#commit` event bodies, oldest first."""
    events = asyncio.run(account_events(stack, did))
    return [body for kind, body in events if kind == "commit"]


def commit_records(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The records a `#commit` event carries, by path (decoded from its CAR slice)."""
    _roots, blocks = read_car(event["blocks"])
    by_cid = {str(cid): block for cid, block in blocks.items()}
    return {
        op["path"]: dagcbor.decode(by_cid[str(op["cid"])])
        for op in event["ops"]
        if op["cid"] is not None
    }


def jpeg(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 90, 40), **save: Any
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG", **save)
    return out.getvalue()
