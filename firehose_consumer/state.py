"""Per-repository state the consumer needs on every event: chain point, status, sync status.

`RepoStates` is the in-memory view, authoritative while the process runs: lanes process one
DID's events in order and update its state before the writer has committed the changes, so the
next event of that DID is checked against the *processed* state, not the last committed one. The
cache is bounded (LRU); a DID with changes not yet committed is pinned and never evicted, so a
state loaded from the database is always the current one.

`tracked` is the set of every DID in `repo_state`, loaded once at startup: the decode stage uses
it to skip commits of repos the index does not follow, without a database round trip.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from atcore.cid import CID
from atcore.index.schema import DESYNCHRONIZED, STATUS_ACTIVE, SYNCHRONIZED
from firehose_consumer.changes import RepoStateRow
from firehose_consumer.verify import ChainPoint


@dataclass(frozen=True, slots=True)
class RepoState:
    did: str
    point: ChainPoint | None
    status: str = STATUS_ACTIVE
    sync_status: str = SYNCHRONIZED
    resync_after: int | None = None

    @property
    def active(self) -> bool:
        return self.status == STATUS_ACTIVE

    @property
    def desynchronized(self) -> bool:
        return self.sync_status == DESYNCHRONIZED

    def synchronized_at(self, point: ChainPoint) -> RepoState:
        return replace(self, point=point, sync_status=SYNCHRONIZED, resync_after=None)

    def desynchronized_until(self, resync_after: int) -> RepoState:
        return replace(self, sync_status=DESYNCHRONIZED, resync_after=resync_after)

    def with_status(self, status: str) -> RepoState:
        return replace(self, status=status)

    def row(self) -> RepoStateRow:
        return RepoStateRow(
            did=self.did,
            rev=None if self.point is None else self.point.rev,
            data_cid=None if self.point is None else str(self.point.data),
            status=self.status,
            sync_status=self.sync_status,
            resync_after=self.resync_after,
        )

    @classmethod
    def from_row(cls, row: RepoStateRow) -> RepoState:
        point = None
        if row.rev is not None and row.data_cid is not None:
            point = ChainPoint(row.rev, CID.parse(row.data_cid))
        return cls(row.did, point, row.status, row.sync_status, row.resync_after)


Loader = Callable[[str], Awaitable[RepoStateRow | None]]


class RepoStates:
    def __init__(self, load: Loader, tracked: set[str], *, max_size: int = 100_000) -> None:
        self._load = load
        self.tracked = tracked
        self._cache: OrderedDict[str, RepoState] = OrderedDict()
        self._pins: dict[str, int] = {}
        self._max_size = max_size

    def is_tracked(self, did: str) -> bool:
        return did in self.tracked

    async def get(self, did: str) -> RepoState | None:
        state = self._cache.get(did)
        if state is not None:
            self._cache.move_to_end(did)
            return state
        if did not in self.tracked:
            return None
        row = await self._load(did)
        if row is None:
            return None
        state = RepoState.from_row(row)
        if did not in self._cache:  # a concurrent put wins over what the database said
            self._remember(state)
        return self._cache[did]

    def put(self, state: RepoState) -> None:
        """Record a processed state; the caller pins it until the writer has committed it."""
        self.tracked.add(state.did)
        self._remember(state)

    def pin(self, did: str) -> None:
        self._pins[did] = self._pins.get(did, 0) + 1

    def unpin(self, did: str) -> None:
        left = self._pins.get(did, 0) - 1
        if left > 0:
            self._pins[did] = left
        else:
            self._pins.pop(did, None)

    def _remember(self, state: RepoState) -> None:
        self._cache[state.did] = state
        self._cache.move_to_end(state.did)
        if len(self._cache) > self._max_size:
            self._evict()

    def _evict(self) -> None:
        excess = len(self._cache) - self._max_size
        victims: list[str] = []
        for did in self._cache:  # oldest first
            if len(victims) >= excess:
                break
            if did not in self._pins:
                victims.append(did)
        for did in victims:
            del self._cache[did]

    def __len__(self) -> int:
        return len(self._cache)
