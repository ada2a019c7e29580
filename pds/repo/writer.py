"""`RepoWriter`: commits prepared writes, one linear history per repository, nothing lost.

Group commit
    SQLite has one writer, so every commit is serialized anyway; what costs is the per-transaction
    overhead. Concurrent `apply_writes` calls therefore queue up, and whichever caller takes the
    writer lock first commits the whole queue (in arrival order) in one transaction, then resolves
    every caller's future. Each request is still its own commit with its own rev, blocks, record
    rows and sequenced `#commit` event; a request the repository refuses (bad swap, missing blob,
    absent record) fails alone without touching the transaction. A later request for the same repo
    builds on the earlier one's in-memory result, so one repository's commits form a chain in
    arrival order (`since` = previous rev, `prevData` = previous data) whatever the concurrency.
    A create that replaces its backlink conflicts gets their deletes while it is planned, on top
    of the batch's earlier commits (`pds.repo.conflicts`).

Heads
    Commits are planned in memory against each repo's head (commit CID, rev, MST root, signing
    key), kept in an LRU after the first read. The transaction moves every root by
    compare-and-swap from the head it was planned on; if any root moved underneath (the account
    was deleted, say), the batch rolls back, those heads are read again and the batch is planned
    again. All of a batch's SQL runs in one hop on the database's write thread
    (`pds.db.repo_batch`).

Blobs
    A record's blob refs must name blobs uploaded to this repo. An attempt holds the `BlobLocks`
    of every blob its records reference from reading their rows until its transaction ends;
    temporary ones are moved into permanent storage before the transaction, which checks that
    their rows are still there (`BlobsChanged` sends the batch back to planning). The files of
    blobs no record references any more are deleted after the commit, under their locks and only
    if no row claims them again. `pds.repo.blobs` describes the whole protocol.

`create_repo` writes a new account's empty repository inside the account-creation transaction
and sequences its `#commit` and `#sync` events (the caller sequences `#identity` and `#account`
before it, as the reference does).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.car import write_car
from atcore.cid import CID
from atcore.commit import SignedCommit, UnsignedCommit, sign
from atcore.crypto import K256Keypair, Keypair
from atcore.mst import MST
from atcore.syntax import Did, parse_did
from atcore.tid import TidClock
from pds.blobstore.contract import BlobStoreError
from pds.db import repo as repo_sql
from pds.db.repo_batch import BlobsChanged, StaleHead, apply_batch, run_on_writer
from pds.repo.batch import PlannedEntry, collect
from pds.repo.blobs import BlobKey, BlobLocks, BlobPlan, BlobStoreLike, blob_keys, delete_unowned
from pds.repo.conflicts import add_conflict_deletes
from pds.repo.errors import AccountUnavailable, InvalidSwap, InvalidWrite, RepoError, RepoNotFound
from pds.repo.plan import PlannedCommit, RepoState, WriteResult, plan_commit
from pds.repo.prepare import PreparedWrite
from pds.repo.storage import BlockCache, RepoView, with_blocks
from pds.sequencer import (
    CommitEvent,
    Sequencer,
    format_time,
    now_ms,
    sequence_commits,
    sequence_sync,
)

log = logging.getLogger(__name__)

MAX_BATCH_REQUESTS: Final = 64
MAX_ATTEMPTS: Final = 3
_HEAD_CACHE: Final = 4096


@dataclass(frozen=True, slots=True)
class CommitInfo:
    cid: CID
    rev: str
    seq: int


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """`commit` is None when nothing changed (an identical put, a delete of an absent record)."""

    commit: CommitInfo | None
    results: list[WriteResult]


@dataclass(frozen=True, slots=True)
class CreatedRepo:
    """A new repository's genesis commit and the event the account creator sequences."""

    commit_cid: CID
    rev: str
    commit_block: bytes
    event: CommitEvent


@dataclass(slots=True)
class _Request:
    did: str
    writes: Sequence[PreparedWrite]
    swap_commit: CID | None
    future: asyncio.Future[WriteOutcome]


@dataclass(slots=True)
class _Batch:
    """What one transaction accumulates: planned commits (with their base commit), no-ops and
    the blocks written so far (later commits of the batch read them)."""

    done: list[tuple[_Request, PlannedCommit, CID]] = field(default_factory=list)
    noops: list[tuple[_Request, list[WriteResult]]] = field(default_factory=list)
    pending: dict[CID, bytes] = field(default_factory=dict)


class RepoWriter:
    """Applies writes to the repositories in one PDS database."""

    def __init__(
        self,
        sequencer: Sequencer,
        blobstore: BlobStoreLike | None = None,
        *,
        cache: BlockCache | None = None,
        clock: TidClock | None = None,
    ) -> None:
        self.sequencer = sequencer
        self.db = sequencer.db
        self.blobstore = blobstore
        # Shared with uploads, the blob collector and account deletion (`pds.repo.blobs`).
        self.blob_locks = BlobLocks()
        self.cache = cache or BlockCache()
        self.clock = clock or TidClock()
        self._queue: list[_Request] = []
        self._lock = asyncio.Lock()
        self._heads: OrderedDict[str, RepoState] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()

    # -- account lifecycle (run inside the caller's transaction) -----------------------------
    async def create_repo(self, conn: AsyncConnection, did: Did, signing_key: Keypair) -> None:
        """Write the empty, signed first commit and sequence its `#commit` and `#sync` events.

        The caller sequences `#identity` and `#account` first, as the reference does, and must
        use `Sequencer.transaction()` so subscribers are woken on commit.
        """
        created = await self.write_genesis(conn, did, signing_key)
        await sequence_commits(conn, [created.event])
        await sequence_sync(conn, did, created.commit_cid, created.commit_block, created.rev)

    async def write_genesis(self, conn: AsyncConnection, did: Did, keypair: Keypair) -> CreatedRepo:
        """Store an empty repository for `did` (no events); returns its genesis commit."""
        tree = MST.create()
        data = tree.root_cid()
        node_blocks = tree.new_blocks()
        rev = self.clock.next()
        commit = sign(UnsignedCommit(did=did, data=data, rev=rev), keypair)
        block = commit.encode()
        cid = CID.for_dag_cbor(block)
        rows = [(str(did), c, str(rev), b) for c, b in [*node_blocks.items(), (cid, block)]]
        await repo_sql.put_blocks(conn, rows)
        await repo_sql.insert_root(conn, did, cid, rev, now_ms())
        self.cache.put_many(node_blocks)
        self.cache.put(cid, block)
        car = write_car([cid], [(cid, block), *node_blocks.items()])
        event = CommitEvent(did, cid, rev, None, car, [], None)
        return CreatedRepo(cid, rev, block, event)

    async def delete_repo(self, conn: AsyncConnection, did: Did) -> list[CID]:
        """Remove the repo's blocks, records, root and blob rows; returns the blob CIDs to purge.

        Runs in the caller's transaction.
        """
        # No writer lock here: the caller holds the write connection, which a batch waiting
        # on the lock would need. A batch planned on this repo's old head fails its root
        # compare-and-swap and is planned again (and finds no repo).
        self.forget(did)
        return [CID.parse(cid) for cid in await repo_sql.delete_repo_rows(conn, did)]

    async def sequence_sync(self, conn: AsyncConnection, did: Did) -> None:
        """Sequence a `#sync` event announcing the repo's current commit (e.g. reactivation)."""
        head = await repo_sql.get_root(conn, did)
        if head is None:
            raise RepoNotFound(f"Could not find repo: {did}")
        cid, rev = head
        block = self.cache.get(cid) or (await repo_sql.get_blocks(conn, did, [cid])).get(cid)
        if block is None:
            raise RuntimeError(f"repository {did} lacks its commit block {cid}")
        await sequence_sync(conn, did, cid, block, rev)

    # -- writes ------------------------------------------------------------------------------
    async def apply_writes(
        self, did: str, writes: Sequence[PreparedWrite], swap_commit: CID | None = None
    ) -> WriteOutcome:
        """Commit `writes` to `did`'s repo as one commit; waits until it is durable."""
        if len(writes) > 200:
            raise InvalidWrite("Too many writes. Max: 200")
        if any(write.did != did for write in writes):
            raise InvalidWrite("every write must target the repository being written")
        future: asyncio.Future[WriteOutcome] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        request = _Request(did, writes, swap_commit, future)
        self._queue.append(request)
        try:
            async with self._lock:
                if not future.done():
                    batch = self._queue[:MAX_BATCH_REQUESTS]
                    del self._queue[: len(batch)]
                    await asyncio.shield(self._commit_batch(batch))
        except asyncio.CancelledError:
            if request in self._queue:
                self._queue.remove(request)
            raise
        return future.result()

    async def _commit_batch(self, requests: list[_Request]) -> None:
        for _ in range(MAX_ATTEMPTS):
            live = [request for request in requests if not request.future.done()]
            if not live:
                return
            try:
                if await self._attempt(live):
                    return
            except BaseException as exc:
                for request in live:
                    if not request.future.done():
                        _fail(request, exc)
                if not isinstance(exc, Exception):
                    raise
                return
        for request in requests:
            if not request.future.done():
                request.future.set_exception(RuntimeError("repository heads kept moving"))

    async def _attempt(self, requests: list[_Request]) -> bool:
        """Plan and write one batch; False when a head moved (or a referenced blob's row went)
        and the batch must be redone."""
        keys = blob_keys(write for request in requests for write in request.writes)
        async with self.blob_locks.hold(keys):
            return await self._attempt_locked(requests, keys)

    async def _attempt_locked(self, requests: list[_Request], keys: set[BlobKey]) -> bool:
        batch = _Batch()
        blobs = BlobPlan(self.blobstore)
        await blobs.load(self.db, keys)
        await self._plan_batch(requests, batch, blobs)
        if not batch.done:
            self._finish_noops(batch)
            return True
        stamp = now_ms()
        write = collect(
            [PlannedEntry(planned, base) for _, planned, base in batch.done],
            claimed=blobs.claimed,
            now=stamp,
            time_text=format_time(stamp),
        )
        try:
            result = await run_on_writer(self.db, lambda conn: apply_batch(conn, write))
        except StaleHead:
            for request in requests:
                self._heads.pop(request.did, None)
            return False
        except BlobsChanged as exc:
            # Planning again reads the rows again and refuses the writes that need the blob.
            log.info("%s; planning the batch again", exc)
            return False
        self.cache.put_many(batch.pending)
        for (request, planned, _), seq in zip(batch.done, result.seqs, strict=True):
            self._remember(planned.state)
            info = CommitInfo(planned.state.commit_cid, planned.state.rev, seq)
            request.future.set_result(WriteOutcome(info, planned.results))
        self._finish_noops(batch)
        self.sequencer.signal.notify()
        if result.dereferenced_blobs:
            self._spawn(
                delete_unowned(self.db, self.blobstore, self.blob_locks, result.dereferenced_blobs)
            )
        return True

    def _finish_noops(self, batch: _Batch) -> None:
        for request, results in batch.noops:
            if not request.future.done():
                request.future.set_result(WriteOutcome(None, results))

    async def _plan_batch(self, requests: list[_Request], batch: _Batch, blobs: BlobPlan) -> None:
        """Plan every request in order on top of the previous ones; refusals fail alone."""
        unavailable: dict[str, repo_sql.RepoHead] = {}
        dids = list(dict.fromkeys(request.did for request in requests))
        states = await self._heads_of(dids, unavailable)
        for request in requests:
            try:
                state = states.get(request.did)
                if state is None:
                    raise _missing_repo(request.did, unavailable.get(request.did))
                if request.swap_commit is not None and request.swap_commit != state.commit_cid:
                    raise InvalidSwap(f"Commit was at {state.commit_cid}")
                so_far = (done for _, done, _ in batch.done)  # iterated only if needed
                writes = await add_conflict_deletes(self.db, request.did, request.writes, so_far)
                planned = await self._plan(state, writes, batch.pending)
                if isinstance(planned, list):
                    batch.noops.append((request, planned))
                    continue
                await blobs.claim([r.write for r in planned.results if r.action in _WRITES])
            except (RepoError, BlobStoreError) as exc:
                request.future.set_exception(exc)
                continue
            states[request.did] = planned.state
            batch.pending.update(planned.new_blocks)
            batch.done.append((request, planned, state.commit_cid))

    async def _plan(
        self, state: RepoState, writes: Sequence[PreparedWrite], pending: dict[CID, bytes]
    ) -> PlannedCommit | list[WriteResult]:
        async def fetch(cid: CID) -> bytes | None:
            async with self.db.read() as conn:
                return (await repo_sql.get_blocks(conn, state.did, [cid])).get(cid)

        return await with_blocks(
            lambda: plan_commit(RepoView(self.cache, pending), state, writes, self.clock),
            fetch,
            self.cache,
        )

    async def _heads_of(
        self, dids: list[str], unavailable: dict[str, repo_sql.RepoHead]
    ) -> dict[str, RepoState]:
        """Current heads of active accounts (cached, else read); others go to `unavailable`,
        DIDs without a repo are left out."""
        found = {did: self._heads[did] for did in dids if did in self._heads}
        missing = [did for did in dids if did not in found]
        if not missing:
            return found
        async with self.db.read() as conn:
            for did, head in (await repo_sql.load_heads(conn, missing)).items():
                if head.taken_down or head.deactivated:
                    unavailable[did] = head
                    continue
                block = self.cache.get(head.commit_cid)
                if block is None:
                    block = (await repo_sql.get_blocks(conn, did, [head.commit_cid])).get(
                        head.commit_cid
                    )
                if block is None:
                    raise RuntimeError(f"repository {did} lacks its commit block {head.commit_cid}")
                data = SignedCommit.decode(block).data
                keypair = K256Keypair.from_private_bytes(head.signing_key)
                found[did] = RepoState(parse_did(did), head.commit_cid, head.rev, data, keypair)
                self._remember(found[did])
        return found

    def _remember(self, state: RepoState) -> None:
        heads = self._heads
        heads[str(state.did)] = state
        heads.move_to_end(str(state.did))
        while len(heads) > _HEAD_CACHE:
            heads.popitem(last=False)

    def forget(self, did: str) -> None:
        """Drop the cached head (call after changing an account's signing key)."""
        self._heads.pop(did, None)

    # -- lifecycle ---------------------------------------------------------------------------
    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Wait for background clean-ups (blob deletions) to finish."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


_WRITES: Final = frozenset(("create", "update"))


def _missing_repo(did: str, head: repo_sql.RepoHead | None) -> RepoError:
    if head is None:
        return RepoNotFound(f"Could not find repo: {did}")
    if head.taken_down:
        return AccountUnavailable("Account has been taken down", error="AccountTakedown")
    return AccountUnavailable("Account is deactivated", error="AccountDeactivated")


def _retrieve(future: asyncio.Future[WriteOutcome]) -> None:
    """Mark a request's exception as seen, so an abandoned request does not log a warning."""
    if not future.cancelled():
        future.exception()


def _fail(request: _Request, exc: BaseException) -> None:
    if isinstance(exc, Exception):
        request.future.set_exception(exc)
    else:
        request.future.cancel()
