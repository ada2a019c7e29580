"""Stored events to frames: the wire form, and the size limits at the outgoing edge.

A `#commit` over a limit (blocks > 2,000,000 bytes, > 200 ops, frame > 5 MB) goes out as a
`#sync` of the same seq carrying only the commit block; other unsendable rows are skipped.
"""

from __future__ import annotations

from typing import Any

import pytest

from atcore import dagcbor, frames
from atcore.car import read_car, write_car
from atcore.cid import CID
from atcore.commit import UnsignedCommit, sign
from atcore.crypto import K256Keypair
from atcore.mst import MST, RecordOp
from atcore.syntax import parse_did
from atcore.tid import TidClock
from pds.firehose.events import (
    MAX_COMMIT_BLOCKS_BYTES,
    MAX_COMMIT_OPS,
    MAX_FRAME_BYTES,
    info_frame,
    outgoing,
)
from pds.sequencer import CommitEvent, StoredEvent, format_time

DID = "did:plc:eventstestaccount00000000"
TIME = format_time(1_700_000_000_000)


def signed_commit() -> tuple[CID, bytes, str]:
    rev = TidClock().next()
    commit = sign(
        UnsignedCommit(did=parse_did(DID), data=MST.create().root_cid(), rev=rev),
        K256Keypair.generate(),
    )
    block = commit.encode()
    return CID.for_dag_cbor(block), block, str(rev)


def commit_body(seq: int, extra_blocks: list[bytes], ops: list[dict[str, Any]]) -> bytes:
    cid, block, rev = signed_commit()
    pairs = [(cid, block)] + [(CID.for_raw(b), b) for b in extra_blocks]
    body = {
        "seq": seq,
        "rebase": False,
        "tooBig": False,
        "repo": DID,
        "commit": cid,
        "rev": rev,
        "since": None,
        "blocks": write_car([cid], pairs),
        "ops": ops,
        "blobs": [],
        "time": TIME,
    }
    return dagcbor.encode(body)


def stored(seq: int, kind: str, body: bytes) -> StoredEvent:
    return StoredEvent(seq, DID, kind, body, 1_700_000_000_000)  # type: ignore[arg-type]


def create_op(n: int) -> dict[str, Any]:
    cid = CID.for_dag_cbor(dagcbor.encode({"n": n}))
    return {"action": "create", "path": f"com.example.thing/{n:06d}", "cid": cid}


def test_a_small_commit_is_the_header_then_the_stored_body() -> None:
    body = commit_body(3, [b"record"], [create_op(1)])
    event = outgoing(stored(3, "commit", body))
    assert event is not None
    assert event.seq == 3
    assert event.frame.endswith(body)
    decoded = frames.decode(event.frame)
    assert decoded == frames.MessageFrame("#commit", dagcbor.decode(body))


def test_a_commit_event_built_by_the_sequencer_passes_unchanged() -> None:
    cid, block, rev = signed_commit()
    op = RecordOp.create("com.example.thing/a", CID.for_dag_cbor(dagcbor.encode({"a": 1})))
    event = CommitEvent(DID, cid, rev, None, write_car([cid], [(cid, block)]), [op], None)
    body = dagcbor.encode(event.body(9, TIME))
    ready = outgoing(stored(9, "commit", body))
    assert ready is not None
    assert frames.decode(ready.frame) == frames.MessageFrame("#commit", event.body(9, TIME))


@pytest.mark.parametrize(
    ("extra_blocks", "op_count"),
    [
        ([b"x" * (MAX_COMMIT_BLOCKS_BYTES // 2), b"y" * (MAX_COMMIT_BLOCKS_BYTES // 2)], 1),
        ([b"z" * 100], MAX_COMMIT_OPS + 1),
    ],
    ids=["blocks-over-2MB", "201-ops"],
)
def test_an_oversized_commit_goes_out_as_a_sync_of_the_same_seq(
    extra_blocks: list[bytes], op_count: int
) -> None:
    body = commit_body(42, extra_blocks, [create_op(n) for n in range(op_count)])
    original = dagcbor.decode(body)
    event = outgoing(stored(42, "commit", body))
    assert event is not None
    assert event.seq == 42
    decoded = frames.decode(event.frame)
    assert isinstance(decoded, frames.MessageFrame)
    assert decoded.type == "#sync"
    assert decoded.body["seq"] == 42
    assert decoded.body["did"] == DID
    assert decoded.body["rev"] == original["rev"]
    assert decoded.body["time"] == TIME
    roots, blocks = read_car(decoded.body["blocks"])
    assert roots == [original["commit"]]
    assert list(blocks) == [original["commit"]]


def test_commits_at_the_limits_are_still_commits() -> None:
    body = commit_body(
        5, [b"q" * (MAX_COMMIT_BLOCKS_BYTES - 1000)], [create_op(n) for n in range(MAX_COMMIT_OPS)]
    )
    event = outgoing(stored(5, "commit", body))
    assert event is not None
    decoded = frames.decode(event.frame)
    assert isinstance(decoded, frames.MessageFrame)
    assert decoded.type == "#commit"
    assert len(decoded.body["ops"]) == MAX_COMMIT_OPS


def test_an_oversized_non_commit_event_is_skipped() -> None:
    body = dagcbor.encode({"seq": 8, "did": DID, "time": TIME, "handle": "h" * MAX_FRAME_BYTES})
    assert outgoing(stored(8, "identity", body)) is None


def test_an_unknown_event_type_is_skipped() -> None:
    body = dagcbor.encode({"seq": 8, "did": DID, "time": TIME})
    assert outgoing(stored(8, "labels", body)) is None


def test_an_oversized_undecodable_commit_is_skipped() -> None:
    assert outgoing(stored(8, "commit", b"\xff" * (MAX_COMMIT_BLOCKS_BYTES + 1))) is None


def test_info_frames_carry_a_name_and_no_seq() -> None:
    decoded = frames.decode(info_frame("OutdatedCursor", "too old"))
    assert decoded == frames.MessageFrame("#info", {"name": "OutdatedCursor", "message": "too old"})
