"""diff: record ops and block sets against brute-force oracles; only differing paths are read."""

from __future__ import annotations

from hypothesis import given

from atcore.cid import CID
from atcore.mst import MST, MemoryBlockStore, RecordOp, diff, diff_trees
from tests.atcore._mst_support import (
    VALUES,
    CountingStore,
    all_node_cids,
    build,
    contents,
    stored,
)


def _oracle(old: dict[str, CID], new: dict[str, CID]) -> list[RecordOp]:
    ops = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before is None and after is not None:
            ops.append(RecordOp.create(key, after))
        elif after is None and before is not None:
            ops.append(RecordOp.delete(key, before))
        elif before is not None and after is not None and before != after:
            ops.append(RecordOp.update(key, after, before))
    return ops


@given(contents, contents)
def test_diff_matches_map_oracle_and_node_sets(old: dict[str, CID], new: dict[str, CID]) -> None:
    store = MemoryBlockStore()
    old_tree, new_tree = build(old), build(new)
    _, old_root = stored(old_tree, store)
    _, new_root = stored(new_tree, store)
    result = diff(old_root, new_root, store)
    assert result.ops == _oracle(old, new)
    old_nodes = all_node_cids(MST.load(store, old_root))
    new_nodes = all_node_cids(MST.load(store, new_root))
    assert result.added_blocks == new_nodes - old_nodes
    assert result.removed_blocks == old_nodes - new_nodes


@given(contents, contents)
def test_diff_of_related_trees_with_unsaved_changes(
    old: dict[str, CID], changes: dict[str, CID]
) -> None:
    # a tree edited in memory, diffed against its stored original
    store, root = stored(build(old))
    edited = MST.load(store, root)
    new = dict(old)
    for i, (key, value) in enumerate(changes.items()):
        if i % 3 == 0 and key in new:
            del new[key]
            edited.delete(key)
        else:
            new[key] = value
            edited.put(key, value)
    result = diff_trees(MST.load(store, root), edited)
    assert result.ops == _oracle(old, new)
    assert result.added_blocks == set(edited.new_blocks())


def test_diff_against_nothing_creates_everything() -> None:
    items = {f"com.example.record/{i:03d}": VALUES[i % 3] for i in range(50)}
    store, root = stored(build(items))
    result = diff(None, root, store)
    assert result.ops == [RecordOp.create(k, v) for k, v in sorted(items.items())]
    assert result.added_blocks == all_node_cids(MST.load(store, root))
    assert diff(root, root, store).ops == []


def test_diff_reads_only_differing_paths() -> None:
    items = {f"com.example.record/{i:06d}": VALUES[0] for i in range(5000)}
    mem, old_root = stored(build(items))
    tree = MST.load(mem, old_root)
    tree.put("com.example.record/002500", VALUES[1])
    _, new_root = stored(tree, mem)
    store = CountingStore({cid: mem.get(cid) or b"" for cid in mem})
    result = diff(old_root, new_root, store)
    assert result.ops == [RecordOp.update("com.example.record/002500", VALUES[1], VALUES[0])]
    depth = MST.load(mem, old_root).root.layer + 1
    assert len(store.reads) <= 2 * depth + 2  # both paths (and the two root loads)
