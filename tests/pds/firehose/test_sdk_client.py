"""The `atproto` SDK's own firehose client (PyPI) consumes our stream and parses every message.

The SDK's client skips frames it cannot decode without telling anyone, so the test compares what
the SDK delivered against the raw stream, message for message, and parses each one with the
SDK's models (`parse_subscribe_repos_message`) and its CAR reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from atproto import (
    CAR,
    AsyncFirehoseSubscribeReposClient,
    models,
    parse_subscribe_repos_message,
)

from tests.pds.firehose.support import (
    COLLECTION,
    STREAM_TIMEOUT,
    LoopStack,
    checkin,
    every_kind_of_event,
    head_seq,
    loop_stack,
    read_stream,
    verify_commits,
    wait_for_broadcast,
    wait_for_subscribers,
)

SDK_TYPES = {
    models.ComAtprotoSyncSubscribeRepos.Commit: "#commit",
    models.ComAtprotoSyncSubscribeRepos.Identity: "#identity",
    models.ComAtprotoSyncSubscribeRepos.Account: "#account",
    models.ComAtprotoSyncSubscribeRepos.Sync: "#sync",
}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LoopStack]:
    async with loop_stack(tmp_path) as running:
        yield running


class SdkConsumer:
    """Runs the SDK's async firehose client until it has seen `until_seq`."""

    def __init__(self, stack: LoopStack, params: dict[str, Any] | None) -> None:
        base_uri = stack.pds_url.replace("http://", "ws://") + "/xrpc"
        self.client = AsyncFirehoseSubscribeReposClient(params=params, base_uri=base_uri)
        self.parsed: list[tuple[str, int]] = []
        self.failures: list[BaseException] = []
        self.until_seq: int | None = None

    async def on_message(self, frame: Any) -> None:
        try:
            message = parse_subscribe_repos_message(frame)
            kind = SDK_TYPES[type(message)]
            if kind == "#commit":
                check_commit(message)
            self.parsed.append((kind, message.seq))
        except BaseException as exc:  # the SDK would swallow it: keep it for the test
            self.failures.append(exc)
        if self.until_seq is not None and self.parsed and self.parsed[-1][1] >= self.until_seq:
            await self.client.stop()

    async def run(self) -> None:
        async with asyncio.timeout(STREAM_TIMEOUT):
            await self.client.start(self.on_message, self.record_error)

    async def record_error(self, exc: BaseException) -> None:
        self.failures.append(exc)


def check_commit(commit: Any) -> None:
    car = CAR.from_bytes(commit.blocks)
    assert car.root == commit.commit
    assert car.blocks.get(commit.commit) is not None
    for op in commit.ops:
        assert op.action in ("create", "update", "delete")
        if op.action == "delete":
            assert op.cid is None
        else:
            record = car.blocks.get(op.cid)
            assert record is not None
            assert record["$type"] == COLLECTION


async def test_the_sdk_client_parses_every_replayed_message(stack: LoopStack) -> None:
    await every_kind_of_event(stack)
    head = await head_seq(stack)
    raw = await read_stream(stack.http, stack.subscribe_url("cursor=0"), until_seq=head)
    expected = [(m.type, m.body["seq"]) for m in raw.messages]
    assert {kind for kind, _ in expected} == set(SDK_TYPES.values())
    # Creates, updates, deletes and batches all verify and chain with atcore as well.
    assert await verify_commits(stack, raw.messages) == 2 * (1 + 3 + 3)

    consumer = SdkConsumer(stack, {"cursor": 0})
    consumer.until_seq = head
    await consumer.run()
    assert consumer.failures == []
    assert consumer.parsed == expected


async def test_the_sdk_client_follows_the_live_stream(stack: LoopStack) -> None:
    account = await stack.create_account("sdklive")
    await wait_for_broadcast(stack, await head_seq(stack))
    consumer = SdkConsumer(stack, None)
    running = asyncio.create_task(consumer.run())
    await wait_for_subscribers(stack, 1)
    await stack.create_record(account, checkin(1))
    written = await head_seq(stack)
    consumer.until_seq = written
    await stack.create_record(account, checkin(2))  # lands after `until_seq` was known
    await running
    assert consumer.failures == []
    assert ("#commit", written) in consumer.parsed
