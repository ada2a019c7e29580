"""The Merkle Search Tree: a mutable, lazily loaded view of one repository's key → CID map.

Shape (the atproto repository spec): every key lives on layer `key_height(key)`; the root sits
on the highest layer present; a node on layer L holds the layer-L keys of its key range and, in
each gap between them, a subtree on layer L - 1 when any lower key falls in that gap. Subtree
links never skip a layer (a node with no keys but one subtree is kept as a bridge), empty nodes
are pruned, and only the empty tree is a lone node with no entries. The shape is therefore a
pure function of the key set: the same pairs give the same root whatever the insertion order.

Operations mutate nodes in place and drop the cached CID of every node on the changed path;
`root_cid()` re-encodes exactly those nodes, so a write costs O(depth) encodings, and
`new_blocks()` returns exactly the nodes that are new since the last stored state. Nodes are
decoded from the `BlockStore` only when an operation reaches them, which also lets a tree be
built on a partial block set (a Sync 1.1 CAR slice): reaching an absent node raises
`MissingBlockError`.

A write whose precondition fails (`KeyExistsError`, `KeyNotFoundError`, `OpMismatchError`,
`InvalidKeyError`) raises before changing anything; one that meets a missing or malformed node
midway may leave the tree half-modified: discard it and load the root again. `apply` keeps the
ops before a failing one applied.
"""

from __future__ import annotations

import builtins
import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import islice

from atcore.cid import CID
from atcore.mst.blockstore import BlockStore, MemoryBlockStore
from atcore.mst.cache import NodeCache
from atcore.mst.errors import (
    MalformedNodeError,
    MissingBlockError,
)
from atcore.mst.node import Node, key_bytes, key_height
from atcore.mst.ops import ANY_VALUE, SOME_VALUE, RecordOp, check_expected
from atcore.mst.walk import iter_node_blocks, prefix_end, walk_range


class MST:
    """A repository tree over a block store. Keys are repo paths (`collection/rkey`)."""

    __slots__ = ("_cache", "_known", "_root", "_store")

    def __init__(self, store: BlockStore, root: Node, cache: NodeCache | None = None) -> None:
        self._store = store
        self._root = root
        self._cache = cache
        # CIDs of nodes of the last stored state that changed or were dropped since: a node
        # rebuilt with such a content (a split undoing an insert of the batch, say) is not new.
        self._known: set[CID] = set()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def create(cls, store: BlockStore | None = None, *, cache: NodeCache | None = None) -> MST:
        """An empty tree (reads, if any, go to `store`)."""
        return cls(store if store is not None else MemoryBlockStore(), Node.empty(), cache)

    @classmethod
    def load(cls, store: BlockStore, root: CID, *, cache: NodeCache | None = None) -> MST:
        """The tree rooted at `root`; only the root node is decoded now.

        `cache` (trusted stores only, see `NodeCache`) serves and remembers decoded nodes.
        """
        if not root.is_cidv1_dag_cbor_sha256_32():
            raise MalformedNodeError(f"MST root {root} is not a dag-cbor sha-256 CID")
        tree = cls(store, Node.empty(), cache)
        tree._root = tree._load(root, None)
        return tree

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, CID]], store: BlockStore | None = None) -> MST:
        """A tree holding `items` (later duplicates win)."""
        tree = cls.create(store)
        for key, value in items:
            tree.put(key, value)
        return tree

    # -- node access (shared with diff, proof and invert) ------------------------------------
    @property
    def root(self) -> Node:
        return self._root

    @property
    def store(self) -> BlockStore:
        return self._store

    def child(self, node: Node, index: int) -> Node | None:
        """Sub `index` of `node`, decoding it from the store on first use."""
        sub = node.subs[index]
        if sub is None or isinstance(sub, Node):
            return sub
        loaded = self._load(sub, node.layer - 1)
        node.subs[index] = loaded
        return loaded

    def resolve(self, sub: Node | CID, layer: int) -> Node:
        """A sub as a node, without attaching it to its parent."""
        return sub if isinstance(sub, Node) else self._load(sub, layer)

    def _load(self, cid: CID, layer: int | None) -> Node:
        cache = self._cache
        if cache is not None:
            cached = cache.get(cid, layer)
            if cached is not None:
                return cached
        block = self._store.get(cid)
        if block is None:
            raise MissingBlockError(cid)
        if hashlib.sha256(block).digest() != cid.cid_bytes[4:]:  # links are sha2-256/32
            raise MalformedNodeError(f"block stored under {cid} does not hash to it")
        node = Node.from_block(cid, block, layer)
        if cache is not None:
            cache.put(node)
        return node

    # -- reads -------------------------------------------------------------------------------
    def get(self, key: str) -> CID | None:
        """The value at `key`, or None."""
        return self._get(key_bytes(key))

    def _get(self, key: bytes) -> CID | None:
        height = key_height(key)
        node: Node | None = self._root
        while node is not None and height <= node.layer:
            i = bisect_left(node.keys, key)
            if height == node.layer:
                return node.vals[i] if i < len(node.keys) and node.keys[i] == key else None
            node = self.child(node, i)
        return None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def is_empty(self) -> bool:
        return self._root.is_empty()

    def items(self) -> Iterator[tuple[str, CID]]:
        """Every (key, value) in key order."""
        return walk_range(self, None, None, reverse=False)

    def list(
        self,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> builtins.list[tuple[str, CID]]:
        """Pairs with after < key < before (bounds exclusive), ascending unless `reverse`."""
        lo = after.encode() + b"\x00" if after is not None else None  # next byte string after it
        hi = before.encode() if before is not None else None
        return list(islice(walk_range(self, lo, hi, reverse=reverse), limit))

    def list_prefix(
        self, prefix: str, *, limit: int | None = None
    ) -> builtins.list[tuple[str, CID]]:
        """Pairs whose key starts with `prefix` (e.g. `"app.bsky.feed.post/"`), ascending."""
        return list(islice(self.iter_prefix(prefix), limit))

    def iter_prefix(self, prefix: str, *, reverse: bool = False) -> Iterator[tuple[str, CID]]:
        """Lazily, the pairs whose key starts with `prefix`."""
        raw = prefix.encode()
        return walk_range(self, raw or None, prefix_end(raw), reverse=reverse)

    # -- writes ------------------------------------------------------------------------------
    def put(self, key: str, value: CID) -> CID | None:
        """Create or update `key`; returns the previous value."""
        return self._put(key_bytes(key), value, ANY_VALUE)

    def add(self, key: str, value: CID) -> None:
        """Create `key`; raises `KeyExistsError` if present."""
        self._put(key_bytes(key), value, None)

    def update(self, key: str, value: CID, *, prev: CID | None = None) -> CID:
        """Change an existing key (checking its current value when `prev` is given)."""
        old = self._put(key_bytes(key), value, SOME_VALUE if prev is None else prev)
        assert old is not None  # the guard raised otherwise
        return old

    def delete(self, key: str, *, prev: CID | None = None) -> CID:
        """Remove an existing key (checking its current value when `prev` is given)."""
        old = self._remove(key_bytes(key), SOME_VALUE if prev is None else prev)
        assert old is not None
        return old

    def remove(self, key: str) -> CID | None:
        """Remove `key` if present; returns the value it had."""
        return self._remove(key_bytes(key), ANY_VALUE)

    def apply(self, ops: Iterable[RecordOp]) -> builtins.list[RecordOp]:
        """Apply writes in order; returns them with `prev` resolved from the tree."""
        done: builtins.list[RecordOp] = []
        for op in ops:
            key = key_bytes(op.path)
            expect: object = SOME_VALUE if op.prev is None else op.prev
            if op.action == "delete":
                prev = self._remove(key, expect)
            else:
                assert op.cid is not None
                prev = self._put(key, op.cid, None if op.action == "create" else expect)
            done.append(RecordOp(op.action, op.path, op.cid, prev))
        return done

    def _put(self, key: bytes, value: CID, expect: object) -> CID | None:
        height = key_height(key)
        root = self._root
        if root.is_empty() or height > root.layer:
            check_expected(key, None, expect)
            if root.is_empty():
                self._retire(root)
                self._root = Node(height, [key], [value], [None, None])
            else:
                left, right = self._split(root, key)
                subs: list[Node | CID | None] = [_lift(left, height - 1), _lift(right, height - 1)]
                self._root = Node(height, [key], [value], subs)
            return None
        return self._insert(root, key, value, height, expect)

    def _insert(
        self, node: Node, key: bytes, value: CID, height: int, expect: object
    ) -> CID | None:
        i = bisect_left(node.keys, key)
        if node.layer == height:
            if i < len(node.keys) and node.keys[i] == key:
                prev = node.vals[i]
                check_expected(key, prev, expect)
                if prev != value:
                    node.vals[i] = value
                    self._retire(node)
                return prev
            check_expected(key, None, expect)
            left, right = self._split(self.child(node, i), key)
            node.keys.insert(i, key)
            node.vals.insert(i, value)
            node.subs[i : i + 1] = [left, right]
            self._retire(node, keys_changed=True)
            return None
        sub = self.child(node, i)
        if sub is None:
            check_expected(key, None, expect)
            node.subs[i] = _lift(Node(height, [key], [value], [None, None]), node.layer - 1)
            self._retire(node)
            return None
        found = self._insert(sub, key, value, height, expect)
        if sub.cid is None:
            self._retire(node)
        return found

    def _split(self, node: Node | None, key: bytes) -> tuple[Node | None, Node | None]:
        """Cut a subtree into the parts below and above `key` (which it does not contain)."""
        if node is None:
            return None, None
        i = bisect_left(node.keys, key)
        sub = self.child(node, i)
        low, high = self._split(sub, key)
        if i == len(node.keys) and low is sub and high is None:
            return node, None  # wholly below the key: keep the node (and its cached CID)
        if i == 0 and high is sub and low is None:
            return None, node
        self._retire(node)  # replaced by the two halves below
        left = Node(node.layer, node.keys[:i], node.vals[:i], [*node.subs[:i], low])
        right = Node(node.layer, node.keys[i:], node.vals[i:], [high, *node.subs[i + 1 :]])
        return (None if left.is_empty() else left), (None if right.is_empty() else right)

    def _remove(self, key: bytes, expect: object) -> CID | None:
        height = key_height(key)
        root = self._root
        prev = self._delete(root, key, height, expect) if height <= root.layer else None
        if prev is None:
            check_expected(key, None, expect if expect is ANY_VALUE else SOME_VALUE)
            return None
        while not root.keys:  # the top may now be a bare pointer: trim it
            top = self.child(root, 0)
            if top is None:
                root = Node.empty()
                break
            root = top
        self._root = root
        return prev

    def _delete(self, node: Node, key: bytes, height: int, expect: object) -> CID | None:
        i = bisect_left(node.keys, key)
        if node.layer == height:
            if i == len(node.keys) or node.keys[i] != key:
                return None
            prev = node.vals[i]
            check_expected(key, prev, expect)
            left, right = node.subs[i], node.subs[i + 1]
            if left is not None and right is not None:
                merged: Node | CID | None = self._merge(
                    self.resolve(left, node.layer - 1), self.resolve(right, node.layer - 1)
                )
            else:
                merged = left if right is None else right
            del node.keys[i]
            del node.vals[i]
            node.subs[i : i + 2] = [merged]
            self._retire(node, keys_changed=True)
            return prev
        sub = self.child(node, i)
        if sub is None:
            return None
        found = self._delete(sub, key, height, expect)
        if found is not None:
            if sub.is_empty():
                node.subs[i] = None
            self._retire(node)
        return found

    def _merge(self, left: Node, right: Node) -> Node:
        """Join two adjacent same-layer subtrees, zipping their facing edges recursively."""
        inner_left, inner_right = left.subs[-1], right.subs[0]
        if inner_left is not None and inner_right is not None:
            layer = left.layer - 1
            seam: Node | CID | None = self._merge(
                self.resolve(inner_left, layer), self.resolve(inner_right, layer)
            )
        else:
            seam = inner_right if inner_left is None else inner_left
        self._retire(right)  # folded into `left`
        left.keys.extend(right.keys)
        left.vals.extend(right.vals)
        left.subs[-1] = seam
        left.subs.extend(right.subs[1:])
        self._retire(left, keys_changed=True)
        return left

    def _retire(self, node: Node, *, keys_changed: bool = False) -> None:
        """Drop a node's encoding before changing (or discarding) it, remembering a stored CID."""
        if node.cid is not None and not node.fresh:
            self._known.add(node.cid)
        node.touch(keys_changed=keys_changed)

    # -- encoding ----------------------------------------------------------------------------
    def root_cid(self) -> CID:
        """The root CID, re-encoding only the nodes changed since they were last encoded."""
        return _seal(self._root)

    def new_blocks(self) -> dict[CID, bytes]:
        """Node blocks of the tree that were not in it as of its load or last `mark_stored()`.

        That is what a commit's diff must carry. A block may still exist in the store from
        older history (a commit undoing an earlier one); write it again under the new revision,
        as the spec wants re-created blocks in later `since` diffs.
        """
        _seal(self._root)
        out: dict[CID, bytes] = {}
        stack = [self._root]
        while stack:
            node = stack.pop()
            cid, block = node.sealed()
            if not node.fresh or cid in self._known:
                continue  # stored already, and so is everything below it
            out[cid] = block
            stack.extend(sub for sub in node.subs if isinstance(sub, Node))
        return out

    def mark_stored(self) -> None:
        """Record that the caller has persisted `new_blocks()` (and cache them, if caching)."""
        _seal(self._root)
        self._known.clear()
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.fresh:
                node.fresh = False
                if self._cache is not None:
                    self._cache.put(node)
                stack.extend(sub for sub in node.subs if isinstance(sub, Node))

    def iter_blocks(self) -> Iterator[tuple[CID, bytes]]:
        """Every node block of the tree, pre-order (for a full repo export)."""
        _seal(self._root)
        return iter_node_blocks(self)


def _seal(node: Node) -> CID:
    if node.cid is not None:
        return node.cid
    for sub in node.subs:
        if isinstance(sub, Node) and sub.cid is None:
            _seal(sub)
    return node.encode()[0]


def _lift(node: Node | None, layer: int) -> Node | None:
    """Stack bridge nodes on `node` until it sits on `layer` (links may not skip layers)."""
    while node is not None and node.layer < layer:
        node = Node(node.layer + 1, [], [], [node])
    return node
