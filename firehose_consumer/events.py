"""Typed `com.atproto.sync.subscribeRepos` messages, parsed strictly from decoded frame bodies.

Parsing checks types and syntax (DIDs, TIDs, CIDs, op paths), never signatures: that is
`verify`'s job. Unknown message types are not an error here (`decode` counts and skips them, as
the event-stream spec asks); deprecated fields (`tooBig`, `blobs`, `rebase`) are ignored.

Errors: `EventError` (a `ValueError`) for a body that does not match its message type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from atcore.cid import CID
from atcore.mst import RecordOp
from atcore.mst.ops import ACTIONS, Action
from atcore.syntax import is_valid_did, is_valid_tid

MAX_OPS: Final = 200


class EventError(ValueError):
    """A message body that does not match the subscribeRepos lexicon."""


@dataclass(frozen=True, slots=True)
class CommitEvent:
    seq: int
    repo: str
    rev: str
    since: str | None
    commit: CID
    blocks: bytes
    ops: tuple[RecordOp, ...]
    prev_data: CID | None
    time: str

    @property
    def did(self) -> str:
        return self.repo


@dataclass(frozen=True, slots=True)
class SyncEvent:
    seq: int
    did: str
    rev: str
    blocks: bytes
    time: str


@dataclass(frozen=True, slots=True)
class IdentityEvent:
    seq: int
    did: str
    handle: str | None
    time: str


@dataclass(frozen=True, slots=True)
class AccountEvent:
    seq: int
    did: str
    active: bool
    status: str | None
    time: str


@dataclass(frozen=True, slots=True)
class InfoEvent:
    name: str
    message: str | None


RepoEvent = CommitEvent | SyncEvent | IdentityEvent | AccountEvent


def _get(body: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EventError(f"'{key}' must be {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def _seq(body: dict[str, Any]) -> int:
    seq: int = _get(body, "seq", int)
    if seq < 0:
        raise EventError("'seq' must not be negative")
    return seq


def _did(body: dict[str, Any], key: str = "did") -> str:
    did: str = _get(body, key, str)
    if not is_valid_did(did):
        raise EventError(f"'{key}' is not a valid DID")
    return did


def _tid(body: dict[str, Any], key: str) -> str:
    tid: str = _get(body, key, str)
    if not is_valid_tid(tid):
        raise EventError(f"'{key}' is not a valid TID")
    return tid


def _optional_cid(body: dict[str, Any], key: str) -> CID | None:
    value = body.get(key)
    if value is not None and not isinstance(value, CID):
        raise EventError(f"'{key}' must be a CID link")
    return value


def _op(raw: object) -> RecordOp:
    if not isinstance(raw, dict):
        raise EventError("each op must be a map")
    action = raw.get("action")
    path = raw.get("path")
    if action not in ACTIONS or not isinstance(action, str):
        raise EventError(f"op action {action!r} is not create/update/delete")
    if not isinstance(path, str) or path.count("/") != 1:
        raise EventError("op path must be 'collection/rkey'")
    cid, prev = _optional_cid(raw, "cid"), _optional_cid(raw, "prev")
    if (cid is None) != (action == "delete"):
        raise EventError(f"{action} op on {path!r}: 'cid' must be set unless deleting")
    if action == "create" and prev is not None:
        raise EventError(f"create op on {path!r} has a 'prev'")
    kind: Action = action  # type: ignore[assignment]  # checked against ACTIONS above
    return RecordOp(kind, path, cid, prev)


def parse_ops(raw: object) -> tuple[RecordOp, ...]:
    if not isinstance(raw, list):
        raise EventError("'ops' must be a list")
    if len(raw) > MAX_OPS:
        raise EventError(f"more than {MAX_OPS} ops")
    return tuple(_op(item) for item in raw)


def parse_commit(body: dict[str, Any]) -> CommitEvent:
    since = body.get("since")
    if since is not None and not (isinstance(since, str) and is_valid_tid(since)):
        raise EventError("'since' must be a TID or null")
    return CommitEvent(
        seq=_seq(body),
        repo=_did(body, "repo"),
        rev=_tid(body, "rev"),
        since=since,
        commit=_get(body, "commit", CID),
        blocks=_get(body, "blocks", bytes),
        ops=parse_ops(body.get("ops")),
        prev_data=_optional_cid(body, "prevData"),
        time=_get(body, "time", str),
    )


def parse_sync(body: dict[str, Any]) -> SyncEvent:
    return SyncEvent(
        seq=_seq(body),
        did=_did(body),
        rev=_tid(body, "rev"),
        blocks=_get(body, "blocks", bytes),
        time=_get(body, "time", str),
    )


def parse_identity(body: dict[str, Any]) -> IdentityEvent:
    handle = body.get("handle")
    if handle is not None and not isinstance(handle, str):
        raise EventError("'handle' must be a string")
    return IdentityEvent(
        seq=_seq(body), did=_did(body), handle=handle, time=_get(body, "time", str)
    )


def parse_account(body: dict[str, Any]) -> AccountEvent:
    status = body.get("status")
    if status is not None and not isinstance(status, str):
        raise EventError("'status' must be a string")
    return AccountEvent(
        seq=_seq(body),
        did=_did(body),
        active=_get(body, "active", bool),
        status=status,
        time=_get(body, "time", str),
    )


def parse_info(body: dict[str, Any]) -> InfoEvent:
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise EventError("'message' must be a string")
    return InfoEvent(name=_get(body, "name", str), message=message)
