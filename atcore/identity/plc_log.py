"""did:plc chain rules: accepting the next operation, and validating whole logs.

The rules, as the did:plc spec and its reference directory apply them:

- The first operation must be a signed genesis (`prev` null; regular or legacy `create`), signed
  by one of its *own* rotation keys, whose hash derives the DID.
- Every later operation's `prev` is the CID of an operation in the DID's current (non-nullified)
  history, and that operation must not be a tombstone.
- If `prev` is the latest operation, any of its rotation keys may sign.
- If `prev` is older, the new operation forks history and nullifies everything after `prev`. That
  is a recovery: it must be signed by a key strictly higher in priority (lower index) in `prev`'s
  rotation keys than the key that signed the first operation it nullifies, it must arrive within
  72 hours of that operation (exactly 72 h is still in time), and after the latest operation.

`assure_valid_next_op` is what a directory runs on submission; `validate_operation_log` checks a
plain chain (`GET /{did}/log`); `validate_audit_log` replays a full audit log including forks and
checks every entry's CID and `nullified` flag.

Errors: the `PlcOperationError` subclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from atcore.cid import CID
from atcore.identity.errors import (
    GenesisMismatch,
    InvalidPlcOperation,
    LateRecovery,
    MisorderedOperation,
)
from atcore.identity.plc import (
    LegacyCreateOp,
    PlcDocumentData,
    PlcOp,
    PlcOperation,
    PlcTombstone,
    did_for_genesis,
    document_data,
    op_cid,
    parse_prev,
    rotation_keys_of,
    signing_key_index,
)
from atcore.identity.plc_parse import LogEntry

RECOVERY_WINDOW: Final = timedelta(hours=72)


@dataclass(frozen=True, slots=True)
class NextOp:
    """The verdict on an accepted operation: what it follows and what it nullifies."""

    prev: CID | None
    nullified: tuple[CID, ...]


def assure_valid_genesis(did: str, op: PlcOp) -> None:
    """Check a genesis operation: shape, self-signature and that it derives `did`."""
    if not isinstance(op, PlcOperation | LegacyCreateOp) or op.prev is not None:
        raise MisorderedOperation("the first operation of a DID must be a genesis (prev = null)")
    signing_key_index(op, rotation_keys_of(op))
    derived = did_for_genesis(op)
    if derived != did:
        raise GenesisMismatch(f"genesis operation derives {derived}, not {did}")


def assure_valid_next_op(
    did: str, history: Sequence[LogEntry], proposed: PlcOp, proposed_at: datetime
) -> NextOp:
    """Decide whether `proposed` may follow `history` (the DID's non-nullified entries, oldest
    first) at time `proposed_at`; raises a `PlcOperationError` when it may not."""
    if not history:
        assure_valid_genesis(did, proposed)
        return NextOp(prev=None, nullified=())
    if isinstance(proposed, LegacyCreateOp) or proposed.prev is None:
        raise MisorderedOperation("DID already exists: an update needs a prev")
    prev = parse_prev(proposed.prev)
    index = next((i for i, entry in enumerate(history) if entry.cid == prev), None)
    if index is None:
        raise MisorderedOperation(f"prev {prev} is not in the DID's current history")
    base = history[index].operation
    if isinstance(base, PlcTombstone):
        raise MisorderedOperation("the DID is tombstoned: its last operation cannot be extended")
    allowed = rotation_keys_of(base)
    nullified = history[index + 1 :]
    if not nullified:
        signing_key_index(proposed, allowed)
        return NextOp(prev=prev, nullified=())
    _assure_valid_recovery(allowed, nullified, proposed, proposed_at, latest=history[-1])
    return NextOp(prev=prev, nullified=tuple(entry.cid for entry in nullified))


def _assure_valid_recovery(
    allowed: Sequence[str],
    nullified: Sequence[LogEntry],
    proposed: PlcOp,
    proposed_at: datetime,
    latest: LogEntry,
) -> None:
    disputed_index = signing_key_index(nullified[0].operation, allowed)
    signing_key_index(proposed, allowed[:disputed_index])
    if proposed_at <= latest.created_at:
        raise MisorderedOperation("a recovery operation must come after the latest operation")
    lapsed = proposed_at - nullified[0].created_at
    if lapsed > RECOVERY_WINDOW:
        raise LateRecovery(
            "recovery operation occurred outside of the allowed 72 hr recovery window "
            f"({lapsed} after the operation it would nullify)"
        )


def validate_operation_log(did: str, ops: Sequence[PlcOp]) -> PlcDocumentData | None:
    """Validate a linear chain of operations; returns the final state (None if tombstoned)."""
    if not ops:
        raise InvalidPlcOperation("an operation log cannot be empty")
    assure_valid_genesis(did, ops[0])
    previous = ops[0]
    for position, op in enumerate(ops[1:], start=1):
        if isinstance(previous, PlcTombstone):
            raise MisorderedOperation("operations follow a tombstone")
        if isinstance(op, LegacyCreateOp) or op.prev is None:
            raise MisorderedOperation(f"operation {position} is not an update (prev = null)")
        if parse_prev(op.prev) != op_cid(previous):
            raise MisorderedOperation(f"operation {position}'s prev is not the operation before")
        signing_key_index(op, rotation_keys_of(previous))
        previous = op
    return document_data(did, previous)


def validate_audit_log(entries: Sequence[LogEntry]) -> PlcDocumentData | None:
    """Replay a full audit log (forks included) and check every CID and `nullified` flag.

    Returns the final state of the DID (None if tombstoned).
    """
    if not entries:
        raise InvalidPlcOperation("an audit log cannot be empty")
    did = entries[0].did
    active: list[LogEntry] = []
    nullified: set[CID] = set()
    for entry in entries:
        if entry.did != did:
            raise InvalidPlcOperation("audit log mixes entries of different DIDs")
        if op_cid(entry.operation) != entry.cid:
            raise InvalidPlcOperation(f"entry cid {entry.cid} is not the operation's CID")
        verdict = assure_valid_next_op(did, active, entry.operation, entry.created_at)
        nullified.update(verdict.nullified)
        active = [e for e in active if e.cid not in nullified]
        active.append(entry)
    for entry in entries:
        if entry.nullified != (entry.cid in nullified):
            raise InvalidPlcOperation(f"entry {entry.cid} has the wrong nullified flag")
    return document_data(did, active[-1].operation)
