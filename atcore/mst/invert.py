"""Sync 1.1 commit inversion, both sides.

Consumer: a `#commit` carries the new tree's changed nodes plus, for every op, the nodes that
locate the op's key and its neighbours (a "covering proof"). Starting from the new root and
reading *only* those blocks, undoing each op in reverse order (a create is deleted, an update
restores `prev`, a delete re-inserts `prev`) must give back the previous root, `prevData`.
`invert_commit` does that; a missing block means the slice is not a valid Sync 1.1 proof
(with one tolerated omission, see `_invert_tolerating_bare_top`).

Producer: `prepare_commit` applies writes to a tree and returns the new root, the resolved ops
and every MST block the `#commit` must carry (`new_blocks` ∪ the covering proofs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from atcore.cid import CID
from atcore.mst.blockstore import BlockStore, MemoryBlockStore
from atcore.mst.errors import InversionError, MissingBlockError, MSTError
from atcore.mst.ops import RecordOp
from atcore.mst.proof import commit_proof_blocks
from atcore.mst.tree import MST


@dataclass(frozen=True, slots=True)
class PreparedCommit:
    """The MST side of one commit.

    `blocks` is every MST node block the `#commit` CAR slice must carry (record blocks and the
    commit block are the caller's); `new_blocks` is the subset new since the previous commit,
    which the caller persists (then calls `tree.mark_stored()`).
    """

    prev_data: CID
    data: CID
    ops: list[RecordOp]
    blocks: dict[CID, bytes]
    new_blocks: dict[CID, bytes]


def prepare_commit(tree: MST, writes: Iterable[RecordOp]) -> PreparedCommit:
    """Apply `writes` to `tree` (a tree whose earlier changes are stored) and collect the blocks."""
    prev_data = tree.root_cid()
    ops = tree.apply(writes)
    data = tree.root_cid()
    new_blocks = tree.new_blocks()
    blocks = commit_proof_blocks(tree, (op.path for op in ops))
    blocks.update(new_blocks)
    return PreparedCommit(prev_data, data, ops, blocks, new_blocks)


def invert_commit(
    new_root: CID, ops: Sequence[RecordOp], blocks: Mapping[CID, bytes] | BlockStore
) -> CID:
    """The tree root before the commit, recomputed from its new root, ops and blocks alone."""
    store = MemoryBlockStore(blocks) if isinstance(blocks, Mapping) else blocks
    try:
        tree = MST.load(store, new_root)
        for op in reversed(ops):
            _invert_tolerating_bare_top(tree, op)
        bare = _bare_top(tree)
        return bare if bare is not None else tree.root_cid()
    except MissingBlockError as exc:
        raise InversionError(
            f"commit blocks are not a valid Sync 1.1 proof: MST node {exc.cid} is missing"
        ) from exc
    except InversionError:
        raise
    except MSTError as exc:
        raise InversionError(f"commit cannot be inverted: {exc}") from exc


def invert_op(tree: MST, op: RecordOp) -> None:
    """Undo one op on `tree`, checking that the tree holds what the op says it wrote."""
    if op.action == "create":
        assert op.cid is not None
        tree.delete(op.path, prev=op.cid)
        return
    if op.prev is None:
        raise InversionError(f"{op.action} op on {op.path!r} lacks the 'prev' needed to invert it")
    if op.action == "update":
        assert op.cid is not None
        tree.update(op.path, op.prev, prev=op.cid)
    else:
        tree.add(op.path, op.prev)


def _bare_top(tree: MST) -> CID | None:
    """The CID below a top node left with no keys, when that child is not loaded."""
    root = tree.root
    below = root.subs[0]
    return below if not root.keys and isinstance(below, CID) else None


def _invert_tolerating_bare_top(tree: MST, op: RecordOp) -> None:
    """`invert_op`, except that undoing a create may leave the top un-trimmed.

    Deleting the last key of the top node trims the tree down to its child, which has to be read
    to make sure it is not itself a bare pointer. Slices from producers that predate covering
    proofs omit that child; like the reference relay, the child's CID is then taken as the
    root. That is sound here: if the child were a bare pointer, the recomputed root would not
    match `prevData`, and the caller rejects the commit on that comparison.
    """
    was_bare = _bare_top(tree) is not None
    try:
        invert_op(tree, op)
    except MissingBlockError as exc:
        if was_bare or op.action != "create" or _bare_top(tree) != exc.cid:
            raise
