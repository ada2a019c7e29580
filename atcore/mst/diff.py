"""Differences between two trees: record ops plus the node blocks added and removed.

Both trees are read as key-ordered streams of *items*: a record (key, value) or a subtree not yet
expanded. Two subtrees with the same CID at the heads of both streams hold the same keys, so both
are skipped unread; otherwise the one on the higher layer (both, on a tie) is expanded into its
entries. A subtree facing a record is skipped past the record when its lower bound (the key just
before it in its tree) shows that all of its keys sort after the record. The walk therefore only
reads nodes on the paths where the trees differ.

A node counts as added (removed) when the walk expanded it in the new (old) tree only: identical
subtrees are never expanded, and a node occupies the same position in any tree that contains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from atcore.cid import CID
from atcore.mst.blockstore import BlockStore
from atcore.mst.node import Node
from atcore.mst.ops import RecordOp
from atcore.mst.tree import MST


@dataclass(frozen=True, slots=True)
class MSTDiff:
    """Record ops in key order, and the node CIDs only the new / only the old tree has."""

    ops: list[RecordOp] = field(default_factory=list)
    added_blocks: set[CID] = field(default_factory=set)
    removed_blocks: set[CID] = field(default_factory=set)


class _Record:
    __slots__ = ("key", "value")

    def __init__(self, key: bytes, value: CID) -> None:
        self.key = key
        self.value = value


class _Subtree:
    """A subtree whose keys all sort after `lower` (the key before it in its tree)."""

    __slots__ = ("cid", "layer", "lower", "sub")

    def __init__(self, lower: bytes, cid: CID, sub: Node | CID, layer: int) -> None:
        self.lower = lower
        self.cid = cid
        self.sub = sub
        self.layer = layer


_Item = _Record | _Subtree


def diff(old_root: CID | None, new_root: CID, store: BlockStore) -> MSTDiff:
    """Diff two stored trees (`old_root=None` diffs against the empty tree)."""
    old = MST.create(store) if old_root is None else MST.load(store, old_root)
    return diff_trees(old, MST.load(store, new_root))


def diff_trees(old: MST, new: MST) -> MSTDiff:
    """Diff two trees, either of which may hold unsaved changes."""
    result = MSTDiff()
    old_cid, new_cid = old.root_cid(), new.root_cid()
    if old_cid == new_cid:
        return result
    # Each stream is a stack whose top is the next item in key order.
    a: list[_Item] = [_Subtree(b"", old_cid, old.root, old.root.layer)]
    b: list[_Item] = [_Subtree(b"", new_cid, new.root, new.root.layer)]
    seen_a: set[CID] = set()
    seen_b: set[CID] = set()
    ops = result.ops
    while a and b:
        x, y = a[-1], b[-1]
        if isinstance(x, _Record):
            if isinstance(y, _Record):
                _compare_records(a, b, ops)
            elif x.key <= y.lower:  # the new subtree lies wholly after the old record
                a.pop()
                ops.append(RecordOp("delete", x.key.decode(), None, x.value))
            else:
                _expand(new, b, seen_b)
        elif isinstance(y, _Record):
            if y.key <= x.lower:
                b.pop()
                ops.append(RecordOp("create", y.key.decode(), y.value, None))
            else:
                _expand(old, a, seen_a)
        elif x.cid == y.cid:
            a.pop()
            b.pop()
        else:
            if x.layer >= y.layer:
                _expand(old, a, seen_a)
            if y.layer >= x.layer:
                _expand(new, b, seen_b)
    _drain(old, a, seen_a, ops, "delete")
    _drain(new, b, seen_b, ops, "create")
    result.added_blocks.update(seen_b - seen_a)
    result.removed_blocks.update(seen_a - seen_b)
    return result


def _compare_records(a: list[_Item], b: list[_Item], ops: list[RecordOp]) -> None:
    x, y = a[-1], b[-1]
    assert isinstance(x, _Record)
    assert isinstance(y, _Record)
    if x.key == y.key:
        a.pop()
        b.pop()
        if x.value != y.value:
            ops.append(RecordOp("update", y.key.decode(), y.value, x.value))
    elif x.key < y.key:
        a.pop()
        ops.append(RecordOp("delete", x.key.decode(), None, x.value))
    else:
        b.pop()
        ops.append(RecordOp("create", y.key.decode(), y.value, None))


def _expand(tree: MST, stack: list[_Item], seen: set[CID]) -> None:
    """Replace the subtree on top of `stack` by its entries (pushed in reverse order)."""
    top = stack.pop()
    assert isinstance(top, _Subtree)
    seen.add(top.cid)
    node = tree.resolve(top.sub, top.layer)
    keys, vals, subs = node.keys, node.vals, node.subs
    for i in range(len(keys), -1, -1):
        sub = subs[i]
        if sub is not None:
            cid = sub.cid if isinstance(sub, Node) else sub
            assert cid is not None  # trees are sealed before diffing
            stack.append(_Subtree(keys[i - 1] if i else top.lower, cid, sub, node.layer - 1))
        if i:
            stack.append(_Record(keys[i - 1], vals[i - 1]))


def _drain(
    tree: MST,
    stack: list[_Item],
    seen: set[CID],
    ops: list[RecordOp],
    action: Literal["create", "delete"],
) -> None:
    """Everything left in one stream after the other ran out is a create (or a delete)."""
    while stack:
        top = stack[-1]
        if isinstance(top, _Subtree):
            _expand(tree, stack, seen)
            continue
        stack.pop()
        key = top.key.decode()
        if action == "create":
            ops.append(RecordOp("create", key, top.value, None))
        else:
            ops.append(RecordOp("delete", key, None, top.value))
