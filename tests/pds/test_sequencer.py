"""The sequencer takes typed identifiers (`Did`, `Handle`, `Tid` are `str` subclasses the DAG-CBOR
encoder refuses) and stores event bodies with plain strings, on a real SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from atcore import dagcbor
from atcore.cid import CID
from atcore.syntax import parse_did, parse_handle
from atcore.tid import TidClock
from pds.db.engine import Database
from pds.sequencer import (
    CommitEvent,
    Sequencer,
    events_after,
    sequence_account,
    sequence_commit,
    sequence_identity,
    sequence_sync,
)

DID = parse_did("did:plc:abcdefghijklmnopqrstuvwx")
HANDLE = parse_handle("alice.example.test")


@pytest.fixture
async def sequencer(tmp_path: Path) -> AsyncIterator[Sequencer]:
    db = Database(tmp_path / "pds.sqlite")
    await db.migrate()
    try:
        yield Sequencer(db)
    finally:
        await db.close()


async def stored(sequencer: Sequencer) -> list[tuple[str, str, dict[str, Any]]]:
    async with sequencer.db.read() as conn:
        events = await events_after(conn, 0)
    return [(e.did, e.event_type, dagcbor.decode(e.body)) for e in events]


def assert_plain(value: object) -> None:
    assert type(value) is str, f"{value!r} is a {type(value).__name__}, not a plain str"


async def test_typed_identifiers_are_stored_as_plain_strings(sequencer: Sequencer) -> None:
    rev = TidClock().next()
    commit = CID.for_dag_cbor(dagcbor.encode({"commit": 1}))
    async with sequencer.transaction() as conn:
        await sequence_identity(conn, DID, HANDLE)
        await sequence_account(conn, DID, True)
        await sequence_sync(conn, DID, commit, b"block", rev)
        await sequence_commit(conn, CommitEvent(DID, commit, rev, rev, b"car", [], None))
    events = await stored(sequencer)
    assert [event_type for _, event_type, _ in events] == ["identity", "account", "sync", "commit"]
    for did, _, _ in events:
        assert_plain(did)
        assert did == DID
    identity, account, sync, commit_body = (body for _, _, body in events)
    assert_plain(identity["did"])
    assert_plain(identity["handle"])
    assert identity["handle"] == HANDLE
    assert_plain(account["did"])
    assert_plain(sync["did"])
    assert_plain(sync["rev"])
    for field in ("repo", "rev", "since"):
        assert_plain(commit_body[field])
    assert commit_body["rev"] == rev
