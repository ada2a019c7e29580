"""Stored sequencer rows turned into ready-to-send `subscribeRepos` frames.

A stored event body (`repo_seq.event`) is the complete DAG-CBOR message body, `seq` and `time`
included, so a frame is a constant header for the row's type followed by those bytes. Frames are
built once per event and the same `bytes` object goes to every subscriber.

Size limits (sync spec): a frame is at most 5 MB, a `#commit`'s `blocks` at most 2,000,000 bytes
and its `ops` at most 200. The write path already refuses commits over these limits; this is the
outgoing edge's guard against anything else in the table (a restored database, an older
version's rows). A `#commit` over a limit is sent as a `#sync` of the same seq carrying just its
commit block, which is what the spec asks of producers: consumers then re-fetch the repo. Any
other oversized event, or a commit whose commit block cannot be recovered, is skipped (`None`);
seqs may legitimately have gaps.

Errors: none escape; undecodable rows are logged and skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from atcore import dagcbor, frames
from atcore.car import CarError, read_car, write_car
from atcore.cid import CID
from pds.sequencer import StoredEvent

log = logging.getLogger(__name__)

MAX_FRAME_BYTES: Final = 5 * 1024 * 1024
MAX_COMMIT_BLOCKS_BYTES: Final = 2_000_000
MAX_COMMIT_OPS: Final = 200

EVENT_TYPES: Final = ("commit", "sync", "identity", "account")
_HEADERS: Final = {
    name: dagcbor.encode({"op": frames.OP_MESSAGE, "t": f"#{name}"}) for name in EVENT_TYPES
}


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """One sequenced event as it goes on the wire (`frame`), with what the outbox needs."""

    seq: int
    frame: bytes
    sequenced_at: int  # epoch ms when the event was sequenced (latency metrics, windows)


def outgoing(stored: StoredEvent) -> OutgoingEvent | None:
    """The frame for a stored event, or None when it cannot be sent (logged)."""
    header = _HEADERS.get(stored.event_type)
    if header is None:
        log.error("skipping event %d of unknown type %r", stored.seq, stored.event_type)
        return None
    if stored.event_type == "commit":
        problem = _commit_limit_problem(stored.body)
        if problem is not None:
            return _as_sync(stored, problem)
    frame = header + stored.body
    if len(frame) > MAX_FRAME_BYTES:
        log.error("skipping event %d: %d-byte frame is over the limit", stored.seq, len(frame))
        return None
    return OutgoingEvent(stored.seq, frame, stored.sequenced_at)


def info_frame(name: str, message: str | None = None) -> bytes:
    """An `#info` message (not sequenced: it has no `seq`)."""
    body: dict[str, Any] = {"name": name}
    if message is not None:
        body["message"] = message
    return frames.encode_message("#info", body)


def _commit_limit_problem(body: bytes) -> str | None:
    # Cheap bound first: a body that small cannot hold 2 MB of blocks, and the ops count is
    # only worth decoding for when the body could hold more than 200 of the smallest ops.
    if len(body) <= _SMALLEST_OVERSIZED_OPS_BODY:
        return None
    try:
        decoded = dagcbor.decode(body)
    except dagcbor.DagCborError as exc:
        return f"undecodable commit body ({exc})"
    blocks, ops = decoded.get("blocks"), decoded.get("ops")
    if not isinstance(blocks, bytes) or not isinstance(ops, list):
        return "commit body lacks blocks or ops"
    if len(blocks) > MAX_COMMIT_BLOCKS_BYTES:
        return f"{len(blocks)} bytes of blocks"
    if len(ops) > MAX_COMMIT_OPS:
        return f"{len(ops)} ops"
    if len(_HEADERS["commit"]) + len(body) > MAX_FRAME_BYTES:
        return f"{len(body)}-byte body"
    return None


# An op is a map with "action" + a 6-letter action, "path" + a path of at least "a.b.c/k" and a
# 41-byte CID link (`cid`, or `prev` for a delete): over 60 bytes, so 201 of them need > 12 KB.
_SMALLEST_OVERSIZED_OPS_BODY: Final = 201 * 60


def _as_sync(stored: StoredEvent, problem: str) -> OutgoingEvent | None:
    """A `#sync` announcing an oversized commit's result (same seq, just the commit block)."""
    try:
        body = dagcbor.decode(stored.body)
        commit = body["commit"]
        _roots, blocks = read_car(body["blocks"])
        if not isinstance(commit, CID) or commit not in blocks:
            raise KeyError("commit block")
        sync_body = {
            "seq": stored.seq,
            "did": body["repo"],
            "rev": body["rev"],
            "blocks": write_car([commit], [(commit, blocks[commit])]),
            "time": body["time"],
        }
    except (dagcbor.DagCborError, CarError, KeyError, TypeError) as exc:
        log.error("skipping commit event %d (%s): cannot recover it (%s)", stored.seq, problem, exc)
        return None
    log.warning(
        "commit event %d is over the firehose limits (%s): sent as #sync", stored.seq, problem
    )
    frame = _HEADERS["sync"] + dagcbor.encode(sync_body)
    return OutgoingEvent(stored.seq, frame, stored.sequenced_at)
