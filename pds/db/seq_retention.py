"""SQL for bounded firehose history: deleting the oldest `repo_seq` rows, and recording how far.

The record
    `sequencer_state.pruned_through` is the highest seq deleted by pruning (0: nothing was).
    Every event at or below it is gone and every event above it is still stored, so a cursor
    below it has lost events even when the first event still stored after it is recent; the
    firehose answers such a cursor with `OutdatedCursor`. `prune_oldest` deletes rows and raises
    `pruned_through` in the caller's transaction, so the two never disagree, even across a crash.

Only a prefix is ever deleted
    Rows are taken oldest seq first and a chunk stops at the first row sequenced at or after the
    cutoff, even if a later row is older (the clock stepped back between two writes). That keeps
    the "everything at or below, nothing above" invariant the cursor rule relies on. A chunk reads
    at most `limit` rows, in seq order, which the seq index answers without a sort.

`sequence_bounds` reads `last_seq` and `pruned_through` together, from one snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from pds.db import schema

_STATE_ID: Final = 1
_seq = schema.repo_seq
_state = schema.sequencer_state


class SequenceStateMissing(RuntimeError):
    """Events are stored but the sequencer's state row is not: the database is inconsistent."""


@dataclass(frozen=True, slots=True)
class SequenceBounds:
    """The highest seq ever assigned, and the highest seq deleted by pruning (0 and 0 at first)."""

    last_seq: int
    pruned_through: int


async def sequence_bounds(conn: AsyncConnection) -> SequenceBounds:
    row = (
        await conn.execute(
            select(_state.c.last_seq, _state.c.pruned_through).where(_state.c.id == _STATE_ID)
        )
    ).first()
    return SequenceBounds(0, 0) if row is None else SequenceBounds(int(row[0]), int(row[1]))


async def pruned_through(conn: AsyncConnection) -> int:
    """The highest seq deleted by pruning (0: nothing was)."""
    value = await conn.scalar(select(_state.c.pruned_through).where(_state.c.id == _STATE_ID))
    return 0 if value is None else int(value)


@dataclass(frozen=True, slots=True)
class PrunedChunk:
    """What one `prune_oldest` call did.

    `deleted` rows went, `pruned_through` is the record afterwards, and `more` says whether the
    chunk stopped only because it was full (the next oldest row may be old enough too).
    """

    deleted: int
    pruned_through: int
    more: bool


async def prune_oldest(
    conn: AsyncConnection, *, sequenced_before_ms: int, limit: int
) -> PrunedChunk:
    """Delete up to `limit` of the oldest events, stopping at the first one sequenced at or after
    `sequenced_before_ms`, and record the last deleted seq (run it in a write transaction)."""
    if limit < 1:
        raise ValueError("limit must be positive")
    oldest = (
        await conn.execute(
            select(_seq.c.seq, _seq.c.sequenced_at).order_by(_seq.c.seq).limit(limit)
        )
    ).all()
    doomed = 0
    for _, sequenced_at in oldest:
        if sequenced_at >= sequenced_before_ms:
            break
        doomed += 1
    if doomed == 0:
        return PrunedChunk(0, await pruned_through(conn), more=False)
    through = int(oldest[doomed - 1][0])
    await conn.execute(delete(_seq).where(_seq.c.seq <= through))
    recorded = await conn.scalar(
        update(_state)
        .where(_state.c.id == _STATE_ID)
        # SQLite's two-argument max(): the record never moves back.
        .values(pruned_through=func.max(_state.c.pruned_through, through))
        .returning(_state.c.pruned_through)
    )
    if recorded is None:  # the sequencer writes its state row with the first event
        raise SequenceStateMissing("repo_seq has rows but sequencer_state has none")
    return PrunedChunk(doomed, int(recorded), more=doomed == len(oldest) == limit)
