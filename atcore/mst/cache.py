"""A bounded LRU of decoded MST nodes, shared by the trees of a trusted write path.

Loading a repository tree per commit decodes and validates the same upper nodes again and again,
and each commit's new path is loaded by the next one. A `NodeCache` handed to `MST.load` keeps
the decoded form of recently loaded or stored nodes by CID, so those loads skip the store, the
hash check and the decoder. Content addressing makes sharing safe across trees and repositories:
a CID always names the same node, and each tree gets its own mutable copy.

Only for stores the caller trusts to hold what it wrote (the PDS's own). Never use a cache to
check a proof or invert a commit: a cached node would stand in for a block the proof lacks.
Not thread-safe; use one per thread or event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from atcore.cid import CID
from atcore.mst.errors import MalformedNodeError
from atcore.mst.node import Node


class _Entry(NamedTuple):
    layer: int
    keys: tuple[bytes, ...]
    vals: tuple[CID, ...]
    subs: tuple[CID | None, ...]
    block: bytes
    heads: list[bytes] | None  # shared: node heads are replaced, never changed in place


class NodeCache:
    """Decoded nodes by CID, least recently used evicted beyond `capacity`."""

    __slots__ = ("_capacity", "_entries")

    def __init__(self, capacity: int = 50_000) -> None:
        if capacity < 1:
            raise ValueError("cache capacity must be positive")
        self._capacity = capacity
        self._entries: OrderedDict[CID, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, cid: CID, layer: int | None) -> Node | None:
        """A fresh copy of the cached node, checked against the place it is loaded into."""
        entry = self._entries.get(cid)
        if entry is None:
            return None
        self._entries.move_to_end(cid)
        if layer is None:
            if not entry.keys and entry.subs[0] is not None:
                raise MalformedNodeError(f"root node {cid} has no entries but a subtree")
        elif layer != entry.layer or (not entry.keys and entry.subs[0] is None):
            raise MalformedNodeError(f"node {cid} does not belong on layer {layer}")
        node = Node(
            entry.layer, list(entry.keys), list(entry.vals), list(entry.subs), cid=cid,
            block=entry.block,
        )  # fmt: skip
        node.heads = entry.heads
        return node

    def put(self, node: Node) -> None:
        """Remember an encoded node (its children are recorded by CID)."""
        cid, block = node.sealed()
        subs = tuple(sub.sealed()[0] if isinstance(sub, Node) else sub for sub in node.subs)
        entries = self._entries
        entries[cid] = _Entry(
            node.layer, tuple(node.keys), tuple(node.vals), subs, block, node.heads
        )
        entries.move_to_end(cid)
        if len(entries) > self._capacity:
            entries.popitem(last=False)
