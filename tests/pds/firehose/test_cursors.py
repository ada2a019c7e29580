"""subscribeRepos cursor rules, each kind replayed against a live PDS over WebSocket.

No cursor → live only; cursor in the future → `FutureCursor` then close; cursor in the window →
the events after it, then live; cursor older than the window → `#info OutdatedCursor` and the
whole window; `0` → the whole window; a malformed cursor → XRPC 400 before any upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import update

from atcore import nsids
from pds.db import schema
from pds.sequencer import now_ms
from tests.pds.firehose.support import (
    Account,
    LoopStack,
    checkin,
    head_seq,
    loop_stack,
    read_stream,
    verify_commits,
    wait_for_broadcast,
    wait_for_subscribers,
)

HOUR_MS = 3_600_000


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LoopStack]:
    async with loop_stack(tmp_path) as running:
        yield running


async def populate(stack: LoopStack, records: int = 3) -> tuple[Account, int]:
    """One account with a few records; returns it and the head seq afterwards."""
    account = await stack.create_account()
    for n in range(records):
        await stack.create_record(account, checkin(n))
    return account, await head_seq(stack)


async def test_no_cursor_streams_only_events_after_connecting(stack: LoopStack) -> None:
    account, head = await populate(stack)
    await wait_for_broadcast(stack, head)
    reader = asyncio.create_task(read_stream(stack.http, stack.subscribe_url(), count=1))
    await wait_for_subscribers(stack, 1, reader)
    written = await stack.create_record(account, checkin(99))
    received = await reader
    assert received.seqs() == [head + 1]
    (commit,) = received.of_type("#commit")
    assert str(commit["ops"][0]["cid"]) == written["cid"]


async def test_cursor_in_window_replays_what_follows_then_goes_live(stack: LoopStack) -> None:
    account, head = await populate(stack, records=4)
    cursor = head - 3
    received = await read_stream(
        stack.http, stack.subscribe_url(f"cursor={cursor}"), until_seq=head
    )
    assert received.seqs() == list(range(cursor + 1, head + 1))
    assert await verify_commits(stack, received.messages, from_genesis=False) == 3

    reader = asyncio.create_task(
        read_stream(stack.http, stack.subscribe_url(f"cursor={cursor}"), until_seq=head + 1)
    )
    await wait_for_subscribers(stack, 1, reader)
    await stack.create_record(account, checkin(100))
    assert (await reader).seqs() == list(range(cursor + 1, head + 2))


async def test_cursor_at_head_replays_nothing_and_continues_live(stack: LoopStack) -> None:
    account, head = await populate(stack)
    reader = asyncio.create_task(
        read_stream(stack.http, stack.subscribe_url(f"cursor={head}"), count=1)
    )
    await wait_for_subscribers(stack, 1, reader)
    await stack.create_record(account, checkin(7))
    assert (await reader).seqs() == [head + 1]


async def test_future_cursor_gets_an_error_frame_and_the_stream_closes(stack: LoopStack) -> None:
    _, head = await populate(stack, records=1)
    received = await read_stream(stack.http, stack.subscribe_url(f"cursor={head + 1}"))
    assert received.messages == []
    assert received.error is not None
    assert received.error.error == "FutureCursor"
    assert received.closed


async def test_cursor_zero_replays_the_whole_window_from_genesis(stack: LoopStack) -> None:
    account, head = await populate(stack, records=3)
    other, head = await populate(stack, records=2)
    received = await read_stream(stack.http, stack.subscribe_url("cursor=0"), until_seq=head)
    assert received.seqs() == list(range(1, head + 1))
    kinds = [
        m.type for m in received.messages if m.body.get("did", m.body.get("repo")) == other.did
    ]
    # The reference's order for a new account, then its record commits.
    assert kinds == ["#identity", "#account", "#commit", "#sync", "#commit", "#commit"]
    assert await verify_commits(stack, received.messages) == (1 + 3) + (1 + 2)
    assert account.did != other.did


async def age_events(stack: LoopStack, up_to_seq: int, hours: int) -> None:
    """Pretend the events up to `up_to_seq` were sequenced `hours` ago."""
    async with stack.ctx.db.transaction() as conn:
        await conn.execute(
            update(schema.repo_seq)
            .where(schema.repo_seq.c.seq <= up_to_seq)
            .values(sequenced_at=now_ms() - hours * HOUR_MS)
        )


async def test_outdated_cursor_gets_info_then_the_whole_window(stack: LoopStack) -> None:
    _, old_head = await populate(stack, records=2)
    await age_events(stack, old_head, hours=stack.settings.backfill_window_hours + 1)
    _, head = await populate(stack, records=2)
    received = await read_stream(stack.http, stack.subscribe_url("cursor=1"), until_seq=head)
    first, *rest = received.messages
    assert first.type == "#info"
    assert first.body["name"] == "OutdatedCursor"
    assert "seq" not in first.body
    assert [m.body["seq"] for m in rest] == list(range(old_head + 1, head + 1))
    assert await verify_commits(stack, rest) == 3


async def test_cursor_zero_with_aged_events_starts_at_the_window_without_info(
    stack: LoopStack,
) -> None:
    _, old_head = await populate(stack, records=1)
    await age_events(stack, old_head, hours=stack.settings.backfill_window_hours + 1)
    _, head = await populate(stack, records=1)
    received = await read_stream(stack.http, stack.subscribe_url("cursor=0"), until_seq=head)
    assert received.seqs() == list(range(old_head + 1, head + 1))
    assert all(m.type != "#info" for m in received.messages)


async def test_cursor_inside_window_after_aged_events_is_not_outdated(stack: LoopStack) -> None:
    _, old_head = await populate(stack, records=1)
    await age_events(stack, old_head - 1, hours=stack.settings.backfill_window_hours + 1)
    _, head = await populate(stack, records=1)
    # The event right after the cursor is still in the window: a plain replay.
    cursor = old_head - 1
    received = await read_stream(
        stack.http, stack.subscribe_url(f"cursor={cursor}"), until_seq=head
    )
    assert received.seqs() == list(range(cursor + 1, head + 1))


@pytest.mark.parametrize(
    "query",
    [
        "cursor=abc",
        "cursor=-1",
        "cursor=1.5",
        "cursor=",
        "cursor=%2B1",
        "cursor=1_0",
        "cursor=%201",
        "cursor=99999999999999999999",
        "cursor=1&cursor=2",
    ],
)
async def test_malformed_cursor_is_an_xrpc_400_before_upgrading(
    stack: LoopStack, query: str
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await stack.http.ws_connect(stack.subscribe_url(query))
    assert caught.value.status == 400
    url = stack.subscribe_url(query).replace("ws://", "http://")
    async with stack.http.get(url) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "InvalidRequest"


async def test_plain_get_without_upgrade_is_426(stack: LoopStack) -> None:
    url = stack.subscribe_url("cursor=0").replace("ws://", "http://")
    async with stack.http.get(url) as response:
        assert response.status == 426
        assert (await response.json())["error"] == "InvalidRequest"


async def test_post_is_405(stack: LoopStack) -> None:
    url = stack.pds_url + nsids.xrpc_path(nsids.SYNC_SUBSCRIBE_REPOS)
    async with stack.http.post(url) as response:
        assert response.status == 405
        assert "error" in await response.json()


async def test_client_frames_are_ignored(stack: LoopStack) -> None:
    account, head = await populate(stack, records=1)
    async with stack.http.ws_connect(stack.subscribe_url(f"cursor={head}")) as ws:
        await ws.send_bytes(b"\x00garbage")
        await ws.send_str("hello")
        await wait_for_subscribers(stack, 1)
        await stack.create_record(account, checkin(1))
        message = await ws.receive(timeout=60)
        assert message.type == aiohttp.WSMsgType.BINARY
