"""Conformance with the official TypeScript consumer: `@atproto/sync`'s `Firehose`, verification on.

It replays our stream from cursor 0 (every message checked against the lexicon, every commit's
signature against the DID document key and every op proven against the commit's MST blocks) and
must report exactly the events our stream holds, with no error; `@atproto/repo`'s
`verifyRepoCar` must accept each repository export. Needs npm and the registry: the packages are
installed into a temporary directory (or `SKYSPOT_TS_SYNC_DIR`, reused), else the test is skipped
saying why.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.pds.firehose import ts_sync
from tests.pds.firehose.support import (
    LoopStack,
    checkin,
    every_kind_of_event,
    head_seq,
    loop_stack,
    read_stream,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def ts_judge(tmp_path_factory: pytest.TempPathFactory) -> ts_sync.TsSync:
    configured = os.environ.get("SKYSPOT_TS_SYNC_DIR")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("ts-sync")
    try:
        return ts_sync.prepare(directory)
    except ts_sync.TsSyncUnavailable as exc:
        pytest.skip(f"@atproto/sync cannot run here: {exc}")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LoopStack]:
    async with loop_stack(tmp_path) as running:
        yield running


def expected_events(messages: list[Any]) -> list[dict[str, Any]]:
    """What `Firehose` should emit for our stream (it emits nothing for op-less commits)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        body = m.body
        if m.type == "#commit":
            for op in body["ops"]:
                cid = None if op["cid"] is None else str(op["cid"])
                out.append(
                    {
                        "event": op["action"],
                        "seq": body["seq"],
                        "did": body["repo"],
                        "path": op["path"],
                        "cid": cid,
                        "rev": body["rev"],
                    }
                )
        elif m.type == "#identity":
            out.append({"event": "identity", "seq": body["seq"], "did": body["did"]})
        elif m.type == "#account":
            out.append(
                {
                    "event": "account",
                    "seq": body["seq"],
                    "did": body["did"],
                    "active": body["active"],
                }
            )
        elif m.type == "#sync":
            out.append(
                {"event": "sync", "seq": body["seq"], "did": body["did"], "rev": body["rev"]}
            )
    return out


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    keys = {
        "create": ("event", "seq", "did", "path", "cid", "rev"),
        "update": ("event", "seq", "did", "path", "cid", "rev"),
        "delete": ("event", "seq", "did", "path", "cid", "rev"),
        "identity": ("event", "seq", "did"),
        "account": ("event", "seq", "did", "active"),
        "sync": ("event", "seq", "did", "rev"),
    }[event["event"]]
    return {key: event.get(key) for key in keys}


async def test_atproto_sync_firehose_verifies_and_accepts_our_stream(
    stack: LoopStack, ts_judge: ts_sync.TsSync
) -> None:
    await every_kind_of_event(stack)
    account = await stack.create_account("tslast")
    await stack.create_record(account, checkin(1))  # the stream ends on a verifiable write
    head = await head_seq(stack)
    ours = await read_stream(stack.http, stack.subscribe_url("cursor=0"), until_seq=head)
    dids = sorted({str(m.body.get("did", m.body.get("repo"))) for m in ours.messages})
    # Node tries `localhost` as ::1 first; the stack listens on 127.0.0.1 only.
    pds_url = stack.pds_url.replace("localhost", "127.0.0.1")

    report = await asyncio.to_thread(
        ts_sync.judge,
        ts_judge,
        service=pds_url.replace("http://", "ws://"),
        pds_url=pds_url,
        plc_url=stack.plc_url,
        until_seq=head,
        dids=dids,
    )

    assert report["errors"] == []
    assert [comparable(e) for e in report["events"]] == expected_events(ours.messages)
    assert sorted(report["repos"]) == dids
