"""The durable write side of the firehose sequencer.

Every repository change and account/identity change is described by one event in `repo_seq`,
written by the caller *in the same transaction* as the change itself, so an event exists exactly
when its change is durable.

Sequence numbers
    `seq` comes from `sequencer_state.last_seq` (one row, id 1), bumped inside the caller's
    transaction. SQLite admits one writer at a time, so seqs are assigned in commit order, strictly
    increase, and are never reused: rows of deleted accounts go away but `last_seq` never moves
    back, and `set_next_seq` lets an operator jump ahead (never behind) after a restore, so a
    relay's last-seen cursor stays valid.

Stored bodies are frame-ready
    `repo_seq.event` holds the complete DAG-CBOR body of the `com.atproto.sync.subscribeRepos`
    message, `seq` and `time` included (both are known when the row is written). A subscriber's
    frame is then the constant header for the row's type followed by these bytes: no decode and no
    re-encode per event or per subscriber. `event_type` is the message name without `#`.

Waking subscribers
    `SequencerSignal` is the in-process doorbell: writers call `notify()` after their transaction
    commits (or use `Sequencer.transaction()`, which does it for them); the firehose waits on
    `wait(after_seq)` or registers a callback with `add_listener`. The database stays the source of
    truth: a missed ring only delays delivery until the next one.

Typed identifiers
    Callers pass `Did`, `Handle` and `Tid` values as they are. They are `str` subclasses, which the
    DAG-CBOR encoder refuses, so every body builder here turns them into exact `str`s; this module
    is the one place that conversion happens.

Errors: `SequencerError` (a `ValueError`) for an invalid event or an invalid `set_next_seq`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from atcore import dagcbor
from atcore.car import write_car
from atcore.cid import CID
from atcore.mst import RecordOp
from pds.db import schema
from pds.db.engine import Database

EventType = Literal["commit", "sync", "identity", "account"]
AccountStatus = Literal[
    "takendown", "suspended", "deleted", "deactivated", "desynchronized", "throttled"
]

_STATE_ID: Final = 1
MAX_COMMIT_OPS: Final = 200


class SequencerError(ValueError):
    """An event cannot be sequenced, or the sequence cannot be moved as asked."""


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """What a `#commit` message says about one commit (see `subscribeRepos#commit`).

    `blocks` is the CAR slice: the commit block (first root), the new MST nodes plus the nodes
    Sync 1.1 inversion reads, and the new record blocks. `since` is the previous commit's rev and
    `prev_data` its MST root; both are None only for a repository's first commit.
    """

    repo: str
    commit: CID
    rev: str
    since: str | None
    blocks: bytes
    ops: Sequence[RecordOp]
    prev_data: CID | None

    def body(self, seq: int, time_text: str) -> dict[str, Any]:
        if len(self.ops) > MAX_COMMIT_OPS:
            raise SequencerError(f"a commit event holds at most {MAX_COMMIT_OPS} ops")
        body: dict[str, Any] = {
            "seq": seq,
            "rebase": False,
            "tooBig": False,
            # str(): typed identifiers (Did, Tid) are str subclasses the encoder refuses.
            "repo": str(self.repo),
            "commit": self.commit,
            "rev": str(self.rev),
            "since": None if self.since is None else str(self.since),
            "blocks": self.blocks,
            "ops": [_op_body(op) for op in self.ops],
            "blobs": [],
            "time": time_text,
        }
        if self.prev_data is not None:
            body["prevData"] = self.prev_data
        return body


def _op_body(op: RecordOp) -> dict[str, Any]:
    # `prev` is left out for creates, as the lexicon asks ("should not be defined").
    out: dict[str, Any] = {"action": op.action, "path": str(op.path), "cid": op.cid}
    if op.prev is not None:
        out["prev"] = op.prev
    return out


def format_time(epoch_ms: int) -> str:
    """An event `time`: ISO 8601 UTC with milliseconds, as the reference writes it."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- assigning seqs --------------------------------------------------------------------------


# The one statement that hands out seqs, shared by this module's async path and the repo
# writer's batch (`pds.db.repo_batch`, which runs on the write thread). Textual, so SQLAlchemy
# compiles it once (its SQLite upsert construct is not cacheable).
RESERVE_SEQS_SQL: Final = (
    "INSERT INTO sequencer_state (id, last_seq) VALUES (1, :count) "
    "ON CONFLICT (id) DO UPDATE SET last_seq = last_seq + :count RETURNING last_seq"
)
_RESERVE: Final = text(RESERVE_SEQS_SQL)


async def _reserve(conn: AsyncConnection, count: int) -> int:
    """Bump `last_seq` by `count` and return the first of the reserved seqs."""
    last = (await conn.execute(_RESERVE, {"count": count})).scalar_one()
    return int(last) - count + 1


async def _insert_events(
    conn: AsyncConnection,
    events: Sequence[tuple[str, EventType, Callable[[int, str], dict[str, Any]]]],
) -> list[int]:
    """Reserve seqs for `events` (did, type, body builder) and write them; returns the seqs."""
    if not events:
        return []
    first = await _reserve(conn, len(events))
    stamp = now_ms()
    time_text = format_time(stamp)
    rows = []
    for offset, (did, event_type, build) in enumerate(events):
        seq = first + offset
        rows.append(
            {
                "seq": seq,
                "did": str(did),
                "event_type": event_type,
                "event": dagcbor.encode(build(seq, time_text)),
                "invalidated": False,
                "sequenced_at": stamp,
            }
        )
    await conn.execute(insert(schema.repo_seq), rows)
    return list(range(first, first + len(rows)))


async def sequence_commits(conn: AsyncConnection, commits: Sequence[CommitEvent]) -> list[int]:
    """Sequence several `#commit` events in order (one seq each); returns their seqs."""
    return await _insert_events(conn, [(c.repo, "commit", c.body) for c in commits])


async def sequence_commit(conn: AsyncConnection, commit: CommitEvent) -> int:
    return (await sequence_commits(conn, [commit]))[0]


async def sequence_sync(
    conn: AsyncConnection, did: str, commit_cid: CID, commit_block: bytes, rev: str
) -> int:
    """A `#sync` event: the repo is now at this commit (its block is the whole CAR)."""
    blocks = write_car([commit_cid], [(commit_cid, commit_block)])

    def build(seq: int, time_text: str) -> dict[str, Any]:
        return {"seq": seq, "did": str(did), "blocks": blocks, "rev": str(rev), "time": time_text}

    return (await _insert_events(conn, [(did, "sync", build)]))[0]


async def sequence_identity(conn: AsyncConnection, did: str, handle: str | None = None) -> int:
    """An `#identity` event (handle given when known, as the reference does)."""

    def build(seq: int, time_text: str) -> dict[str, Any]:
        body: dict[str, Any] = {"seq": seq, "did": str(did), "time": time_text}
        if handle is not None:
            body["handle"] = str(handle)
        return body

    return (await _insert_events(conn, [(did, "identity", build)]))[0]


async def sequence_account(
    conn: AsyncConnection, did: str, active: bool, status: AccountStatus | None = None
) -> int:
    """An `#account` event: active, or inactive with a status."""
    if active and status is not None:
        raise SequencerError("an active account event carries no status")
    if not active and status is None:
        raise SequencerError("an inactive account event needs a status")

    def build(seq: int, time_text: str) -> dict[str, Any]:
        body: dict[str, Any] = {"seq": seq, "did": str(did), "time": time_text, "active": active}
        if status is not None:
            body["status"] = status
        return body

    return (await _insert_events(conn, [(did, "account", build)]))[0]


# -- inspecting and moving the sequence ------------------------------------------------------


async def last_seq(conn: AsyncConnection) -> int:
    """The highest seq ever assigned (0 before the first event)."""
    value = await conn.scalar(
        select(schema.sequencer_state.c.last_seq).where(schema.sequencer_state.c.id == _STATE_ID)
    )
    return int(value) if value is not None else 0


async def set_next_seq(conn: AsyncConnection, next_seq: int) -> None:
    """Make the next event get `next_seq` (operator tool; the sequence only ever moves forward)."""
    current = await last_seq(conn)
    if next_seq <= current:
        raise SequencerError(f"next seq must be above the last assigned seq {current}")
    highest = await conn.scalar(select(func.max(schema.repo_seq.c.seq)))
    if highest is not None and next_seq <= int(highest):
        raise SequencerError(f"next seq must be above the last stored seq {highest}")
    stmt = sqlite_insert(schema.sequencer_state).values(id=_STATE_ID, last_seq=next_seq - 1)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[schema.sequencer_state.c.id], set_={"last_seq": next_seq - 1}
        )
    )


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    did: str
    event_type: EventType
    body: bytes  # frame-ready DAG-CBOR body
    sequenced_at: int


async def events_after(
    conn: AsyncConnection, after_seq: int, limit: int = 500
) -> list[StoredEvent]:
    """Stored events with seq > `after_seq`, oldest first (skipping invalidated ones)."""
    seq_table = schema.repo_seq
    rows = await conn.execute(
        select(
            seq_table.c.seq,
            seq_table.c.did,
            seq_table.c.event_type,
            seq_table.c.event,
            seq_table.c.sequenced_at,
        )
        .where(seq_table.c.seq > after_seq, seq_table.c.invalidated.is_(False))
        .order_by(seq_table.c.seq)
        .limit(limit)
    )
    return [StoredEvent(int(r[0]), r[1], r[2], bytes(r[3]), int(r[4])) for r in rows]


async def mark_invalidated(conn: AsyncConnection, did: str) -> None:
    """Hide a deleted account's events from replay (their seqs stay taken)."""
    await conn.execute(
        update(schema.repo_seq).where(schema.repo_seq.c.did == did).values(invalidated=True)
    )


# -- waking the firehose ---------------------------------------------------------------------


class SequencerSignal:
    """Rung after every commit that sequenced events; subscribers wait on it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []
        self.rings = 0

    def notify(self) -> None:
        """Wake everyone waiting (call after the sequencing transaction committed)."""
        self.rings += 1
        event, self._event = self._event, asyncio.Event()
        event.set()
        for listener in list(self._listeners):
            listener()

    async def wait(self) -> None:
        """Wait for the next ring (wrap in `asyncio.timeout` to bound the wait)."""
        await self._event.wait()

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` on every ring (synchronously; keep it cheap). Returns a remover."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)


class Sequencer:
    """The database plus the signal: transactions that ring the bell once they commit."""

    def __init__(self, db: Database, signal: SequencerSignal | None = None) -> None:
        self.db = db
        self.signal = signal or SequencerSignal()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that notifies subscribers after it commits."""
        async with self.db.transaction() as conn:
            yield conn
        self.signal.notify()
