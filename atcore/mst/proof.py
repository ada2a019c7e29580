"""Proof blocks for keys, and their verification.

* `proof_blocks(tree, key)`: the nodes on the lookup path of `key`, root first. They prove the
  key's value (inclusion) or its absence (exclusion); `com.atproto.sync.getRecord` serves them.
* `covering_proof(tree, key)`: the lookup path, carried on to the bottom of the tree, plus the
  nodes that locate the key's nearest neighbours: the right edge of the subtree just before the
  key and the left edge of the subtree just after it, down to the first record on each side. This
  is what inverting a create, update or delete of `key` may read (a delete merges the two
  neighbouring subtrees along those edges; a re-insert splits along the lookup path), and it is
  the set the reference implementations put in a Sync 1.1 `#commit` for each op.
* `verify_proof(root, key, blocks)`: the value the blocks prove for `key` under `root`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping

from atcore.cid import CID
from atcore.mst.blockstore import MemoryBlockStore
from atcore.mst.errors import MalformedNodeError, MissingBlockError, ProofError
from atcore.mst.node import Node, key_bytes, key_height
from atcore.mst.tree import MST


def proof_blocks(tree: MST, key: str) -> dict[CID, bytes]:
    """The nodes from the root to where `key` is (or would be): proof of its value or absence."""
    raw = key_bytes(key)
    height = key_height(raw)
    tree.root_cid()
    nodes = []
    node: Node | None = tree.root
    while node is not None:
        nodes.append(node)
        if height >= node.layer:
            break
        node = tree.child(node, bisect_left(node.keys, raw))
    return _blocks(nodes)


def covering_proof(tree: MST, key: str) -> dict[CID, bytes]:
    """The node blocks needed to locate `key` and its two neighbours (see the module notes)."""
    raw = key_bytes(key)
    tree.root_cid()
    nodes: list[Node] = []
    node: Node | None = tree.root
    while node is not None:
        nodes.append(node)
        i = bisect_left(node.keys, raw)
        if i < len(node.keys) and node.keys[i] == raw:
            _edge(tree, tree.child(node, i), nodes, rightmost=True)
            _edge(tree, tree.child(node, i + 1), nodes, rightmost=False)
            break
        node = tree.child(node, i)
    return _blocks(nodes)


def commit_proof_blocks(tree: MST, paths: Iterable[str]) -> dict[CID, bytes]:
    """Union of the covering proofs of `paths` in `tree` (the tree *after* a commit)."""
    out: dict[CID, bytes] = {}
    for path in paths:
        out.update(covering_proof(tree, path))
    return out


def verify_proof(root: CID, key: str, blocks: Mapping[CID, bytes]) -> CID | None:
    """The value `blocks` prove for `key` in the tree `root` (None: proven absent).

    Raises `ProofError` when the blocks are incomplete, do not hash to their CIDs, or do not form
    valid MST nodes along the path.
    """
    try:
        return MST.load(MemoryBlockStore(blocks), root).get(key)
    except MissingBlockError as exc:
        raise ProofError(f"proof for {key!r} lacks node {exc.cid}") from exc
    except MalformedNodeError as exc:
        raise ProofError(f"proof for {key!r} has an invalid node: {exc}") from exc


def _edge(tree: MST, node: Node | None, nodes: list[Node], *, rightmost: bool) -> None:
    """Follow the right (or left) edge of a subtree down to the first node ending in a record."""
    while node is not None:
        nodes.append(node)
        node = tree.child(node, len(node.keys) if rightmost else 0)


def _blocks(nodes: list[Node]) -> dict[CID, bytes]:
    out: dict[CID, bytes] = {}
    for node in nodes:
        cid, block = node.sealed()  # root_cid() sealed the tree
        out[cid] = block
    return out
