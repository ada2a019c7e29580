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

    Heads are read inside the write transaction (`BEGIN IMMEDIATE`), so nothing can move a root
    between reading and writing it, even if another transaction slips in between two batches.

Blobs
    A record's blob refs must name blobs uploaded to this repo. Temporary ones are moved into
    permanent storage *before* the transaction commits, so an acknowledged write never points at
    a temp file; blobs no record references any more are deleted after the commit.

`create_repo` writes a new account's empty repository inside the account-creation transaction
(the caller sequences its events: identity, account, commit, sync, as the reference does).
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
from pds.repo.blobs import BlobPlan, BlobStoreLike
from pds.repo.errors import InvalidSwap, InvalidWrite, RepoError, RepoNotFound
from pds.repo.plan import PlannedCommit, RepoState, WriteResult, plan_commit
from pds.repo.prepare import PreparedWrite
from pds.repo.storage import BlockCache, RepoView, with_blocks
from pds.sequencer import CommitEvent, Sequencer, now_ms, sequence_commits, sequence_sync

log = logging.getLogger(__name__)

MAX_BATCH_REQUESTS: Final = 64
_KEYPAIR_CACHE: Final = 4096
_COMMIT_DATA_CACHE: Final = 16384


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
    """What one transaction accumulates across the commits it holds."""

    done: list[tuple[_Request, PlannedCommit]] = field(default_factory=list)
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
        self.cache = cache or BlockCache()
        self.clock = clock or TidClock()
        self._queue: list[_Request] = []
        self._lock = asyncio.Lock()
        self._keypairs: OrderedDict[bytes, Keypair] = OrderedDict()
        self._commit_data: OrderedDict[CID, CID] = OrderedDict()
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

        Runs in the caller's transaction under the writer lock, so no commit of this repo is
        in flight while its rows go.
        """
        async with self._lock:
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
        batch = _Batch()
        blobs = BlobPlan(self.blobstore)
        try:
            async with self.db.transaction() as conn:
                await self._plan_batch(conn, requests, batch, blobs)
                seqs = await self._persist(conn, batch, blobs) if batch.done else []
        except BaseException as exc:
            for request in requests:
                if not request.future.done():
                    _fail(request, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.cache.put_many(batch.pending)
        for (request, planned), seq in zip(batch.done, seqs, strict=True):
            self._remember_head(planned.state)
            info = CommitInfo(planned.state.commit_cid, planned.state.rev, seq)
            request.future.set_result(WriteOutcome(info, planned.results))
        for request, results in batch.noops:
            request.future.set_result(WriteOutcome(None, results))
        if seqs:
            self.sequencer.signal.notify()
            self._spawn(blobs.delete_dereferenced())

    async def _plan_batch(
        self, conn: AsyncConnection, requests: list[_Request], batch: _Batch, blobs: BlobPlan
    ) -> None:
        """Plan every request in order on top of the previous ones; refusals fail alone."""
        dids = list(dict.fromkeys(request.did for request in requests))
        heads = await repo_sql.load_heads(conn, dids)
        await blobs.load(conn, [w for request in requests for w in request.writes])
        states: dict[str, RepoState] = {}
        for request in requests:
            try:
                state = states.get(request.did) or await self._state(conn, heads, request.did)
                if request.swap_commit is not None and request.swap_commit != state.commit_cid:
                    raise InvalidSwap(f"Commit was at {state.commit_cid}")
                planned = await self._plan(conn, state, request, batch.pending)
                if isinstance(planned, list):
                    batch.noops.append((request, planned))
                    continue
                await blobs.claim([r.write for r in planned.results if r.action in _WRITES])
            except (RepoError, BlobStoreError) as exc:
                request.future.set_exception(exc)
                continue
            states[request.did] = planned.state
            batch.pending.update(planned.new_blocks)
            batch.done.append((request, planned))

    async def _plan(
        self, conn: AsyncConnection, state: RepoState, request: _Request, pending: dict[CID, bytes]
    ) -> PlannedCommit | list[WriteResult]:
        async def fetch(cid: CID) -> bytes | None:
            return (await repo_sql.get_blocks(conn, state.did, [cid])).get(cid)

        return await with_blocks(
            lambda: plan_commit(RepoView(self.cache, pending), state, request.writes, self.clock),
            fetch,
            self.cache,
        )

    async def _state(
        self, conn: AsyncConnection, heads: dict[str, repo_sql.RepoHead], did: str
    ) -> RepoState:
        head = heads.get(did)
        if head is None:
            raise RepoNotFound(f"Could not find repo: {did}")
        data = self._commit_data.get(head.commit_cid)
        if data is None:
            block = self.cache.get(head.commit_cid)
            if block is None:
                block = (await repo_sql.get_blocks(conn, did, [head.commit_cid])).get(
                    head.commit_cid
                )
            if block is None:
                raise RuntimeError(f"repository {did} lacks its commit block {head.commit_cid}")
            data = SignedCommit.decode(block).data
        state = RepoState(
            parse_did(did), head.commit_cid, head.rev, data, self._keypair(head.signing_key)
        )
        self._remember_head(state)
        return state

    def _remember_head(self, state: RepoState) -> None:
        self._commit_data[state.commit_cid] = state.data
        self._commit_data.move_to_end(state.commit_cid)
        while len(self._commit_data) > _COMMIT_DATA_CACHE:
            self._commit_data.popitem(last=False)

    def _keypair(self, secret: bytes) -> Keypair:
        keypair = self._keypairs.get(secret)
        if keypair is None:
            keypair = self._keypairs[secret] = K256Keypair.from_private_bytes(secret)
            while len(self._keypairs) > _KEYPAIR_CACHE:
                self._keypairs.popitem(last=False)
        return keypair

    async def _persist(self, conn: AsyncConnection, batch: _Batch, blobs: BlobPlan) -> list[int]:
        """Write the batch's net effect: blocks, roots, records, blob refs and the events."""
        now = now_ms()
        fates = _BlockFates()
        final: dict[str, PreparedWrite | None] = {}
        superseded: list[PreparedWrite] = []
        roots: dict[str, tuple[CID, str]] = {}
        # Fresh records without blobs (the common case) leave `record_blob` alone.
        blob_rows_change = False
        for request, planned in batch.done:
            fates.apply(request.did, planned)
            roots[request.did] = (planned.state.commit_cid, planned.state.rev)
            for result in planned.results:
                if result.action is None:
                    continue
                earlier = final.get(result.uri)
                if earlier is not None:
                    superseded.append(earlier)
                final[result.uri] = None if result.action == "delete" else result.write
                blob_rows_change |= result.action != "create" or bool(result.write.blobs)
        revs = {did: rev for did, (_, rev) in roots.items()}
        await repo_sql.upsert_records(
            conn,
            [_record_row(w, revs[w.did]) for w in final.values() if w is not None],
            now,
        )
        await repo_sql.delete_records(conn, [uri for uri, w in final.items() if w is None])
        await fates.settle_candidates(conn)
        await repo_sql.delete_blocks(conn, sorted(fates.deletes))
        await repo_sql.put_blocks(
            conn, [(did, cid, rev, block) for (did, cid), (rev, block) in fates.puts.items()]
        )
        await repo_sql.update_roots(conn, [(d, c, r) for d, (c, r) in roots.items()], now)
        if blob_rows_change:
            await blobs.persist(conn, final, superseded)
        return await sequence_commits(conn, [planned.event for _, planned in batch.done])

    # -- lifecycle ---------------------------------------------------------------------------
    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Wait for background clean-ups (blob deletions) to finish."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


class _BlockFates:
    """The net effect of a batch's commits on each (did, block): stored, deleted, or maybe freed.

    Applied in commit order: a later commit can re-create a node an earlier one removed, or free
    one an earlier one created. Old record blocks are only candidates until the record index
    (already updated in the transaction) says no record of the repo points at them any more.
    """

    def __init__(self) -> None:
        self.puts: dict[tuple[str, CID], tuple[str, bytes]] = {}
        self.deletes: set[tuple[str, CID]] = set()
        self.candidates: set[tuple[str, CID]] = set()

    def apply(self, did: str, planned: PlannedCommit) -> None:
        rev = planned.state.rev
        for cid in planned.removed_blocks:
            key = (did, cid)
            self.puts.pop(key, None)
            self.candidates.discard(key)
            self.deletes.add(key)
        for cid in planned.old_record_cids:
            self.candidates.add((did, cid))
        for cid, block in planned.new_blocks.items():
            key = (did, cid)
            self.puts[key] = (rev, block)
            self.deletes.discard(key)
            self.candidates.discard(key)

    async def settle_candidates(self, conn: AsyncConnection) -> None:
        by_did: dict[str, list[CID]] = {}
        for did, cid in self.candidates:
            by_did.setdefault(did, []).append(cid)
        for did, cids in by_did.items():
            used = await repo_sql.referenced_record_cids(conn, did, [str(c) for c in cids])
            for cid in cids:
                if str(cid) not in used:
                    self.puts.pop((did, cid), None)
                    self.deletes.add((did, cid))
        self.candidates.clear()


_WRITES: Final = frozenset(("create", "update"))


def _record_row(write: PreparedWrite, rev: str) -> repo_sql.RecordRow:
    assert write.cid is not None
    return repo_sql.RecordRow(
        write.uri, write.did, str(write.collection), str(write.rkey), str(write.cid), rev
    )


def _retrieve(future: asyncio.Future[WriteOutcome]) -> None:
    """Mark a request's exception as seen, so an abandoned request does not log a warning."""
    if not future.cancelled():
        future.exception()


def _fail(request: _Request, exc: BaseException) -> None:
    if isinstance(exc, Exception):
        request.future.set_exception(exc)
    else:
        request.future.cancel()
