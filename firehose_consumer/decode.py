"""From raw WebSocket frames to typed events, dropping what the index does not need early.

The hot path of the consumer: on a relay most commits are posts, likes and follows of accounts
that never checked in. For those, `decode_frame` decodes header and body leniently (links as raw
bytes; the CAR slice stays an opaque byte string), looks at the repo DID and the op paths, and
stops: no CID objects, no op objects, no CAR parsing, no record decoding. Everything else is
decoded strictly (`atcore.frames`) before it is believed. Only commits the `Interest` wants are
parsed into `CommitEvent`s, and their record blocks are decoded later, after verification.

Outcomes (`Decoded`): a typed event; `Skipped` (not for us: filtered commits, unknown message
types); `Rejected` (malformed, oversized or invalid: counted, the stream goes on); `StreamError`
(an error frame; the server closes the connection after it). `Skipped`/`Rejected` carry the
event's `seq` when it could be read, so the cursor can move past them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cbrrr import CbrrrDecodeError, _cbrrr

from atcore import frames, nsids
from atcore.syntax import is_valid_did
from firehose_consumer.events import (
    AccountEvent,
    CommitEvent,
    EventError,
    IdentityEvent,
    InfoEvent,
    SyncEvent,
    parse_account,
    parse_commit,
    parse_identity,
    parse_info,
    parse_sync,
)

MAX_FRAME_BYTES: Final = 5_000_000  # the event-stream spec's hard limit per WebSocket frame
MAX_BLOCKS_BYTES: Final = 2_000_000  # `blocks` of a #commit / #sync
CHECKIN_PREFIX: Final = nsids.SKYSPOT_CHECKIN + "/"
_LENIENT_ERRORS: Final = (CbrrrDecodeError, ValueError, EOFError, TypeError)


@dataclass(frozen=True, slots=True)
class Skipped:
    seq: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    seq: int | None
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StreamError:
    error: str
    message: str | None


Decoded = (
    CommitEvent | SyncEvent | IdentityEvent | AccountEvent | InfoEvent | Skipped | Rejected
    | StreamError
)  # fmt: skip

# Does the index care about this repo? Called with the DID of every #commit/#sync/#account/
# #identity; `touches_checkins` says whether a #commit has a check-in op.
Interest = Callable[[str, bool], bool]


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_blocks_bytes: int = MAX_BLOCKS_BYTES


DEFAULT_LIMITS: Final = Limits()


def decode_frame(frame: bytes, interest: Interest, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """Classify one frame; never raises for bad input."""
    if len(frame) > limits.max_frame_bytes:
        return Rejected(None, "oversized_frame", f"{len(frame)} bytes")
    skipped = _fast_skip(frame, interest)
    if skipped is not None:
        return skipped
    try:
        header, offset = frames.peek_header(frame)
        body = frames.decode_body(frame, offset)
    except frames.FrameError as exc:
        return Rejected(None, "malformed_frame", str(exc))
    if header.op == frames.OP_ERROR:
        error, message = body.get("error"), body.get("message")
        return StreamError(
            error if isinstance(error, str) else "Unknown",
            message if isinstance(message, str) else None,
        )
    try:
        return _message(header.type, body, interest, limits)
    except EventError as exc:
        return Rejected(_seq_of(body), "invalid_event", f"{header.type}: {exc}")


def _fast_skip(frame: bytes, interest: Interest) -> Skipped | None:
    """Drop a well-formed message about a repo the index ignores, cheaply; None = look closer.

    A lenient decode - links left as raw bytes, no float/wide-integer walk - is 2-3x cheaper
    than the strict one, and enough to read a seq, a DID and op paths. Anything it cannot
    settle (malformed, wanted, unusual) goes through the strict path, which is the authority.
    """
    try:
        header, offset = _cbrrr.decode_dag_cbor(frame, bytes, False)
        if type(header) is not dict or header.get("op") != frames.OP_MESSAGE:
            return None
        rest = frame[offset:]
        body, used = _cbrrr.decode_dag_cbor(rest, bytes, False)
    except _LENIENT_ERRORS:
        return None
    if type(body) is not dict or used != len(rest):
        return None
    seq = _seq_of(body)
    kind = header.get("t")
    if kind == "#commit":
        did, ops = body.get("repo"), body.get("ops")
        if type(ops) is not list or not all(type(op) is dict for op in ops):
            return None
        touches = any(str(op.get("path", "")).startswith(CHECKIN_PREFIX) for op in ops)
    elif kind in ("#sync", "#identity", "#account"):
        did, touches = body.get("did"), False
    else:
        return None
    if seq is None or type(did) is not str or interest(did, touches) or not is_valid_did(did):
        return None
    return Skipped(seq, "filtered")


def _message(kind: str | None, body: dict[str, Any], interest: Interest, limits: Limits) -> Decoded:
    if kind == "#commit":
        return _commit(body, interest, limits)
    if kind == "#info":
        return parse_info(body)
    if kind not in ("#sync", "#identity", "#account"):
        return Skipped(_seq_of(body), "unknown_type")
    did = body.get("did")
    if not isinstance(did, str) or not is_valid_did(did) or _seq_of(body) is None:
        return Rejected(_seq_of(body), "invalid_event", f"{kind}: 'did' or 'seq' invalid")
    if not interest(did, False):
        return Skipped(_seq_of(body), "filtered")
    if kind == "#sync":
        return _sized(parse_sync(body), limits)
    if kind == "#identity":
        return parse_identity(body)
    return parse_account(body)


def _commit(body: dict[str, Any], interest: Interest, limits: Limits) -> Decoded:
    repo, ops = body.get("repo"), body.get("ops")
    if not isinstance(repo, str) or not isinstance(ops, list) or _seq_of(body) is None:
        return Rejected(_seq_of(body), "invalid_event", "#commit: 'repo', 'ops' or 'seq' missing")
    if not is_valid_did(repo):  # even a skipped commit must be well-formed: its seq counts
        return Rejected(_seq_of(body), "invalid_event", "#commit: 'repo' is not a DID")
    touches = any(
        isinstance(op, dict) and str(op.get("path", "")).startswith(CHECKIN_PREFIX) for op in ops
    )
    if not interest(repo, touches):
        return Skipped(_seq_of(body), "filtered")
    return _sized(parse_commit(body), limits)


def _sized(event: CommitEvent | SyncEvent, limits: Limits) -> CommitEvent | SyncEvent | Rejected:
    if len(event.blocks) > limits.max_blocks_bytes:
        return Rejected(event.seq, "oversized_blocks", f"{len(event.blocks)} bytes")
    return event


def _seq_of(body: dict[str, Any]) -> int | None:
    seq = body.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None
