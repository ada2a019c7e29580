"""Unit tests of the consumer's parts: frame decoding and filtering, cursor watermarks, queue,
lanes, settings, verification rules, endpoint checks."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore import dagcbor, frames
from atcore.tid import tid_from_parts
from firehose_consumer.decode import (
    Limits,
    Rejected,
    Skipped,
    StreamError,
    decode_frame,
)
from firehose_consumer.events import AccountEvent, CommitEvent, InfoEvent
from firehose_consumer.pipeline import FrameQueue, Lanes, SeqTracker
from firehose_consumer.resync import RepoFetchError, check_endpoint
from firehose_consumer.settings import ConsumerSettings, SettingsError, parse_source
from firehose_consumer.verify import (
    ChainBroken,
    ChainPoint,
    FutureRev,
    check_chain,
    check_rev_time,
    is_stale,
)

DID = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
CID_A = dagcbor.cid_of({"a": 1})[0]
CID_B = dagcbor.cid_of({"b": 2})[0]
REV1, REV2 = "3aaaaaaaaaaa2", "3aaaaaaaaaab2"
CHECKIN_PATH = "app.skyspot.checkin/3aaaaaaaaaaa2"


def commit_frame(path: str = "app.skyspot.checkin/3aaaaaaaaaaa2", **changes: Any) -> bytes:
    body: dict[str, Any] = {
        "seq": 7, "repo": DID, "rev": REV2, "since": REV1, "commit": CID_A, "blocks": b"car",
        "ops": [{"action": "create", "path": path, "cid": CID_B}], "prevData": CID_B,
        "time": "2025-01-01T00:00:00.000Z", "rebase": False, "tooBig": False, "blobs": [],
    }  # fmt: skip
    body.update(changes)
    return frames.encode_message("#commit", body)


def never(_did: str, _touches: bool) -> bool:
    return False


def only_checkins(_did: str, touches: bool) -> bool:
    return touches


# -- decode ---------------------------------------------------------------------------------


def test_a_checkin_commit_is_parsed() -> None:
    decoded = decode_frame(commit_frame(), only_checkins)
    assert isinstance(decoded, CommitEvent)
    assert (decoded.seq, decoded.repo, decoded.since, decoded.prev_data) == (7, DID, REV1, CID_B)
    assert [op.path for op in decoded.ops] == ["app.skyspot.checkin/3aaaaaaaaaaa2"]


def test_an_unrelated_commit_is_skipped_with_its_seq() -> None:
    seen: list[tuple[str, bool]] = []

    def interest(did: str, touches: bool) -> bool:
        seen.append((did, touches))
        return False

    decoded = decode_frame(commit_frame("app.bsky.feed.like/3aaaaaaaaaaa2"), interest)
    assert decoded == Skipped(7, "filtered")
    assert seen == [(DID, False)]


def test_tracked_repos_get_all_their_commits() -> None:
    decoded = decode_frame(commit_frame("app.bsky.feed.like/x"), lambda did, _t: did == DID)
    assert isinstance(decoded, CommitEvent)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (commit_frame(repo="nope"), "invalid_event"),
        (commit_frame(seq=-1), "invalid_event"),
        (commit_frame(rev="not-a-tid"), "invalid_event"),
        (
            commit_frame(ops=[{"action": "explode", "path": CHECKIN_PATH, "cid": CID_B}]),
            "invalid_event",
        ),
        (
            commit_frame(ops=[{"action": "delete", "path": CHECKIN_PATH, "cid": CID_B}]),
            "invalid_event",
        ),
        (commit_frame(commit="bafy-as-text"), "invalid_event"),
        (b"\xff\x00garbage", "malformed_frame"),
        (dagcbor.encode({"op": 1, "t": "#commit"}), "malformed_frame"),
    ],
)
def test_malformed_input_is_rejected(frame: bytes, reason: str) -> None:
    decoded = decode_frame(frame, only_checkins)
    assert isinstance(decoded, Rejected)
    assert decoded.reason == reason


def test_size_limits() -> None:
    frame = commit_frame()
    assert decode_frame(frame, only_checkins, Limits(max_frame_bytes=len(frame) - 1)) == Rejected(
        None, "oversized_frame", f"{len(frame)} bytes"
    )
    small_blocks = Limits(max_blocks_bytes=2)
    decoded = decode_frame(frame, only_checkins, small_blocks)
    assert isinstance(decoded, Rejected)
    assert (decoded.seq, decoded.reason) == (7, "oversized_blocks")


def test_other_message_types() -> None:
    error = decode_frame(frames.encode_error("FutureCursor", "ahead"), never)
    assert error == StreamError("FutureCursor", "ahead")
    info = decode_frame(frames.encode_message("#info", {"name": "OutdatedCursor"}), never)
    assert info == InfoEvent("OutdatedCursor", None)
    unknown = decode_frame(frames.encode_message("#labels", {"seq": 3}), never)
    assert unknown == Skipped(3, "unknown_type")
    account_body = {"seq": 4, "did": DID, "active": False, "status": "takendown", "time": "t"}
    account = frames.encode_message("#account", account_body)
    assert decode_frame(account, never) == Skipped(4, "filtered")
    decoded = decode_frame(account, lambda _d, _t: True)
    assert decoded == AccountEvent(4, DID, False, "takendown", "t")


@given(st.binary(max_size=300))
def test_decoding_never_raises_on_random_bytes(frame: bytes) -> None:
    decode_frame(frame, only_checkins)


@given(st.binary(max_size=64), st.integers(0, 60))
def test_decoding_never_raises_on_corrupted_frames(noise: bytes, cut: int) -> None:
    frame = commit_frame()
    decode_frame(frame[: len(frame) - cut] + noise, lambda _d, _t: True)


# -- watermarks, queue, lanes -----------------------------------------------------------------


@given(st.lists(st.integers(1, 10_000), unique=True, min_size=1, max_size=60), st.randoms())
def test_watermark_is_the_completed_prefix(seqs: list[int], rng: random.Random) -> None:
    ordered = sorted(seqs)
    tracker = SeqTracker(None)
    for seq in ordered:
        assert tracker.register(seq)
    assert not tracker.register(ordered[-1])  # a replay
    done: set[int] = set()
    for seq in rng.sample(ordered, len(ordered)):
        tracker.complete(seq)
        done.add(seq)
        prefix = [s for s in ordered if all(p in done for p in ordered if p <= s)]
        assert tracker.watermark() == (max(prefix) if prefix else None)


def test_watermark_starts_at_the_committed_cursor() -> None:
    tracker = SeqTracker(41)
    assert not tracker.register(41)
    assert tracker.register(43)
    assert tracker.watermark() == 41
    tracker.complete(43)
    assert tracker.watermark() == 43


async def test_frame_queue_bounds_and_hysteresis() -> None:
    queue = FrameQueue(max_frames=4, max_bytes=100)
    assert all(queue.put_nowait(0, b"x" * 10) for _ in range(4))
    assert not queue.put_nowait(1, b"y")  # full by count
    assert (queue.count(0), queue.count(1)) == (4, 0)
    room = asyncio.ensure_future(queue.wait_for_room())
    await queue.get()
    await asyncio.sleep(0)
    assert not room.done()  # 3 left: above half
    await queue.get()
    await asyncio.wait_for(room, 1)
    big = FrameQueue(max_frames=100, max_bytes=25)
    assert big.put_nowait(0, b"a" * 20)
    assert not big.put_nowait(0, b"b" * 10)  # full by bytes
    # A frame bigger than the byte bound is still taken by an empty queue (no deadlock).
    lone = FrameQueue(max_frames=10, max_bytes=5)
    assert lone.put_nowait(0, b"z" * 50)


async def test_lanes_keep_order_per_key_and_run_keys_concurrently() -> None:
    seen: dict[str, list[int]] = {}
    running_now: set[str] = set()
    overlap: list[set[str]] = []

    async def process(key: str, item: int) -> None:
        running_now.add(key)
        overlap.append(set(running_now))
        await asyncio.sleep(0)
        seen.setdefault(key, []).append(item)
        running_now.discard(key)

    lanes: Lanes[int] = Lanes(process)
    for i in range(30):
        lanes.submit(f"k{i % 3}", i)
    await asyncio.wait_for(lanes.wait_idle(), 5)
    assert seen == {f"k{k}": list(range(k, 30, 3)) for k in range(3)}
    assert max(len(s) for s in overlap) > 1
    assert lanes.pending == 0


async def test_a_failing_item_does_not_stall_its_lane() -> None:
    done: list[int] = []

    async def process(_key: str, item: int) -> None:
        if item == 1:
            raise RuntimeError("boom")
        done.append(item)

    lanes: Lanes[int] = Lanes(process)
    for item in (0, 1, 2):
        lanes.submit("k", item)
    await asyncio.wait_for(lanes.wait_idle(), 5)
    assert done == [0, 2]


# -- settings and rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "http"),
    [
        ("bsky.network", "wss://bsky.network", "https://bsky.network"),
        ("wss://bsky.network/", "wss://bsky.network", "https://bsky.network"),
        ("https://PDS.example", "wss://pds.example", "https://pds.example"),
        ("http://127.0.0.1:2583", "ws://127.0.0.1:2583", "http://127.0.0.1:2583"),
    ],
)
def test_sources_are_canonical(text: str, name: str, http: str) -> None:
    source = parse_source(text)
    assert (source.name, source.http_base) == (name, http)
    assert source.subscribe_url == f"{name}/xrpc/com.atproto.sync.subscribeRepos"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"FIREHOSE_SERVICES": "ftp://x"},
        {"FIREHOSE_SERVICES": "wss://a/xrpc/com.atproto.sync.subscribeRepos"},
        {"FIREHOSE_SERVICES": "wss://a,wss://a/"},
        {"FIREHOSE_SERVICES": "wss://a", "DATABASE_URL": "mysql://x"},
        {"FIREHOSE_SERVICES": "wss://a", "CONSUMER_VERIFY_SIGNATURES": "maybe"},
        {"FIREHOSE_SERVICES": "wss://a", "CONSUMER_RECEIVE_TIMEOUT": "-1"},
        {"FIREHOSE_SERVICES": "wss://a", "CONSUMER_METRICS_PORT": "http"},
        {"FIREHOSE_SERVICES": "wss://a", "CONSUMER_START_CURSOR": "-5"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        ConsumerSettings.from_env(env)


def test_settings_from_env() -> None:
    settings = ConsumerSettings.from_env(
        {
            "FIREHOSE_SERVICES": "wss://bsky.network, http://127.0.0.1:2583",
            "DATABASE_URL": "postgresql://u@h/db",
            "CONSUMER_METRICS_PORT": "off",
            "CONSUMER_START_CURSOR": "0",
            "CONSUMER_VERIFY_SIGNATURES": "false",
        }
    )
    assert [s.name for s in settings.sources] == ["wss://bsky.network", "ws://127.0.0.1:2583"]
    assert (settings.metrics_port, settings.start_cursor) == (None, 0)
    assert settings.verify_signatures is False
    assert ConsumerSettings.from_env({"FIREHOSE_SERVICES": "x.example"}).metrics_port == 9102


def test_revs_in_the_future_are_refused() -> None:
    now_us = 1_750_000_000_000_000
    soon = str(tid_from_parts(now_us + 60_000_000, 1))
    later = str(tid_from_parts(now_us + 600_000_000, 1))
    check_rev_time(soon, max_drift_s=300, now_us=now_us)
    with pytest.raises(FutureRev):
        check_rev_time(later, max_drift_s=300, now_us=now_us)


def test_chain_rules() -> None:
    stored = ChainPoint(REV1, CID_B)
    assert is_stale(REV1, stored)
    assert not is_stale(REV2, stored)
    assert not is_stale(REV1, None)
    event = CommitEvent(1, DID, REV2, REV1, CID_A, b"", (), CID_B, "t")
    check_chain(event, stored)
    check_chain(event, None)  # first sight: nothing to compare
    with pytest.raises(ChainBroken):
        check_chain(CommitEvent(1, DID, REV2, "3aaaaaaaaaaz2", CID_A, b"", (), CID_B, "t"), stored)
    with pytest.raises(ChainBroken):
        check_chain(CommitEvent(1, DID, REV2, REV1, CID_A, b"", (), CID_A, "t"), stored)


@pytest.mark.parametrize(
    ("url", "loopback_ok", "allowed"),
    [
        ("https://pds.example", False, True),
        ("http://pds.example", True, False),
        ("http://127.0.0.1:2583", True, True),
        ("http://127.0.0.1:2583", False, False),
        ("http://localhost:2583", True, True),
        ("http://10.0.0.1", True, False),
        ("file:///etc/passwd", True, False),
    ],
)
def test_pds_endpoints_from_did_documents_are_checked(
    url: str, loopback_ok: bool, allowed: bool
) -> None:
    if allowed:
        check_endpoint(url, allow_http_loopback=loopback_ok)
    else:
        with pytest.raises(RepoFetchError):
            check_endpoint(url, allow_http_loopback=loopback_ok)
