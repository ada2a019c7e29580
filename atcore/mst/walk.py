"""Ordered and structural walks over a tree, loading only the nodes they reach.

`walk_range` yields the pairs of a key range in order (or reverse order), entering a subtree only
when its key range overlaps the requested one, so listing a collection or a page of it reads the
nodes along the range's two edges plus the nodes inside it, never the rest of the repository.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from atcore.cid import CID
from atcore.mst.node import Node

if TYPE_CHECKING:
    from atcore.mst.tree import MST


def walk_range(
    tree: MST, lo: bytes | None, hi: bytes | None, *, reverse: bool
) -> Iterator[tuple[str, CID]]:
    """Pairs with lo <= key < hi (None: unbounded), ascending unless `reverse`."""
    walk = _descending if reverse else _ascending
    for key, value in walk(tree, tree.root, lo, hi):
        yield key.decode(), value


def _ascending(
    tree: MST, node: Node, lo: bytes | None, hi: bytes | None
) -> Iterator[tuple[bytes, CID]]:
    keys, vals = node.keys, node.vals
    # subtree `first` may straddle lo and subtree `last` may straddle hi; those between cannot
    first = 0 if lo is None else bisect_left(keys, lo)
    last = len(keys) if hi is None else bisect_left(keys, hi)
    for i in range(first, last + 1):
        sub = tree.child(node, i)
        if sub is not None:
            yield from _ascending(tree, sub, lo if i == first else None, hi if i == last else None)
        if i < last:
            yield keys[i], vals[i]


def _descending(
    tree: MST, node: Node, lo: bytes | None, hi: bytes | None
) -> Iterator[tuple[bytes, CID]]:
    keys, vals = node.keys, node.vals
    first = 0 if lo is None else bisect_left(keys, lo)
    last = len(keys) if hi is None else bisect_left(keys, hi)
    for i in range(last, first - 1, -1):
        if i < last:
            yield keys[i], vals[i]
        sub = tree.child(node, i)
        if sub is not None:
            yield from _descending(tree, sub, lo if i == first else None, hi if i == last else None)


def iter_node_blocks(tree: MST) -> Iterator[tuple[CID, bytes]]:
    """Every node block of a sealed tree, pre-order.

    Children are resolved without being attached to their parents, so exporting a large
    repository does not pin all of it in memory.
    """
    stack = [tree.root]
    while stack:
        node = stack.pop()
        yield node.sealed()
        for sub in reversed(node.subs):
            if sub is not None:
                stack.append(tree.resolve(sub, node.layer - 1))


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest byte string above every string starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))
