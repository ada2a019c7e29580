"""Planning one commit in memory: the CPU half of `RepoWriter`, free of I/O.

Given a repository's state and prepared writes, `plan_commit` decides what each write does
against the current tree (create, update, delete, or nothing for an identical put or a delete of
an absent record), checks `swapRecord`, applies the ops to the MST, signs the commit, and
collects everything the transaction must persist and the `#commit` event must carry.

Which old blocks a commit frees
    The MST only ever replaces nodes it has read: a node whose content changes, or that is merged
    away or split, is first loaded through the `RepoView`. So the nodes a commit removes are the
    ones it touched that the new tree no longer references (`_tree_refs` walks only the nodes in
    memory: every node still present is either one of those or linked from one). The previous
    commit block goes too, as in the reference PDS. Old record blocks are only *candidates*: another
    record may hold the same content, which only the record index can tell (the writer checks).

Raises `MissingBlockError` when the tree needs a block that is not in memory (the writer fetches
it and plans again), and `InvalidWrite` / `InvalidSwap` for writes the repository refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from atcore.car import write_car
from atcore.cid import CID
from atcore.commit import UnsignedCommit, sign
from atcore.crypto import Keypair
from atcore.mst import MST, RecordOp, prepare_commit
from atcore.mst.node import Node
from atcore.syntax import Did, Tid
from atcore.tid import TidClock, tid_from_parts, tid_to_parts
from pds.repo.errors import InvalidSwap, InvalidWrite
from pds.repo.prepare import NO_SWAP, Action, PreparedWrite, ValidationStatus
from pds.repo.storage import RepoView
from pds.sequencer import CommitEvent

MAX_EVENT_BLOCK_BYTES = 2_000_000


@dataclass(frozen=True, slots=True)
class RepoState:
    """A repository's head: what the next commit builds on."""

    did: Did
    commit_cid: CID
    rev: str
    data: CID
    keypair: Keypair


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one write did; `action` None means nothing changed (identical put, absent delete)."""

    write: PreparedWrite
    action: Action | None

    @property
    def uri(self) -> str:
        return self.write.uri

    @property
    def cid(self) -> CID | None:
        return self.write.cid

    @property
    def validation_status(self) -> ValidationStatus | None:
        return self.write.validation_status


@dataclass(slots=True)
class PlannedCommit:
    """A signed commit and everything its transaction must write."""

    state: RepoState  # the repository after this commit
    since: str
    commit_block: bytes
    ops: list[RecordOp]
    results: list[WriteResult]
    event: CommitEvent
    new_blocks: dict[CID, bytes]  # MST nodes, record blocks and the commit block to store
    removed_blocks: set[CID]  # MST nodes and the previous commit, now unreferenced
    old_record_cids: set[CID] = field(default_factory=set)  # freed unless another record uses them


def next_rev(clock: TidClock, previous: str) -> Tid:
    """A fresh TID strictly above `previous` (the clock may lag a rev stored by an earlier run)."""
    rev = clock.next()
    if rev > previous:
        return rev
    timestamp, _ = tid_to_parts(previous)
    return tid_from_parts(timestamp + 1, clock.clock_id)


def resolve_ops(
    tree: MST, writes: Sequence[PreparedWrite]
) -> tuple[list[RecordOp], list[WriteResult]]:
    """Decide each write's op against the tree (and the writes before it in the same commit)."""
    current: dict[str, CID | None] = {}
    ops: list[RecordOp] = []
    results: list[WriteResult] = []
    for write in writes:
        path = write.path
        existing = current[path] if path in current else tree.get(path)
        if write.swap_record is not NO_SWAP and existing != write.swap_record:
            raise InvalidSwap(f"Record was at {existing if existing is not None else 'null'}")
        op = _op_for(write, existing)
        results.append(WriteResult(write, op.action if op else None))
        if op is not None:
            current[path] = op.cid
            ops.append(op)
    return ops, results


def _op_for(write: PreparedWrite, existing: CID | None) -> RecordOp | None:
    path = write.path
    if write.action == "delete":
        if existing is None:
            if write.missing_ok:
                return None
            raise InvalidWrite(f"Could not find record to delete: {write.uri}")
        return RecordOp.delete(path, existing)
    assert write.cid is not None
    if existing is None:
        if write.action == "update" and not write.upsert:
            raise InvalidWrite(f"Could not find record to update: {write.uri}")
        return RecordOp.create(path, write.cid)
    if write.action == "create":
        raise InvalidWrite(f"Record already exists: {write.uri}")
    if write.upsert and existing == write.cid:
        return None
    return RecordOp.update(path, write.cid, existing)


def plan_commit(
    view: RepoView,
    state: RepoState,
    writes: Sequence[PreparedWrite],
    clock: TidClock,
) -> PlannedCommit | list[WriteResult]:
    """Plan the commit for `writes`, or return the results alone when nothing would change.

    An empty `writes` list still makes a commit (a new rev over the same data), as
    `applyWrites` with no writes does in the reference PDS.
    """
    tree = MST.load(view, state.data)
    ops, results = resolve_ops(tree, writes)
    if writes and not ops:
        return results
    prepared = prepare_commit(tree, ops)
    rev = next_rev(clock, state.rev)
    commit = sign(UnsignedCommit(did=state.did, data=prepared.data, rev=rev), state.keypair)
    commit_block = commit.encode()
    commit_cid = CID.for_dag_cbor(commit_block)

    record_blocks = _record_blocks(writes, prepared.ops)
    event_blocks = [(commit_cid, commit_block), *prepared.blocks.items(), *record_blocks.items()]
    size = sum(len(block) for _, block in event_blocks)
    if size > MAX_EVENT_BLOCK_BYTES:
        raise InvalidWrite("Too many writes. Max event size: 2MB")

    live = _tree_refs(tree)
    removed = {cid for cid in view.touched if cid not in live}
    removed.add(state.commit_cid)
    new_blocks = {**prepared.new_blocks, **record_blocks, commit_cid: commit_block}
    old_records = {op.prev for op in prepared.ops if op.prev is not None}
    new_state = RepoState(state.did, commit_cid, rev, prepared.data, state.keypair)
    event = CommitEvent(
        repo=state.did,
        commit=commit_cid,
        rev=rev,
        since=state.rev,
        blocks=write_car([commit_cid], event_blocks),
        ops=prepared.ops,
        prev_data=state.data,
    )
    return PlannedCommit(
        state=new_state,
        since=state.rev,
        commit_block=commit_block,
        ops=prepared.ops,
        results=results,
        event=event,
        new_blocks=new_blocks,
        removed_blocks=removed - new_blocks.keys(),
        old_record_cids=old_records - {cid for cid in record_blocks},
    )


def _record_blocks(writes: Sequence[PreparedWrite], ops: Sequence[RecordOp]) -> dict[CID, bytes]:
    """Blocks of the records the ops write (a record identical to another is stored once)."""
    written = {op.cid for op in ops if op.cid is not None}
    blocks: dict[CID, bytes] = {}
    for write in writes:
        if write.cid in written and write.block is not None:
            blocks[write.cid] = write.block
    return blocks


def _tree_refs(tree: MST) -> set[CID]:
    """CIDs of the in-memory nodes of a sealed tree and of the unloaded subtrees they link."""
    tree.root_cid()
    refs: set[CID] = set()
    stack: list[Node] = [tree.root]
    while stack:
        node = stack.pop()
        assert node.cid is not None
        refs.add(node.cid)
        for sub in node.subs:
            if isinstance(sub, Node):
                stack.append(sub)
            elif sub is not None:
                refs.add(sub)
    return refs
