"""Proofs and Sync 1.1: commit-proof fixtures, inversion properties, proof verification."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore.car import read_car, write_car
from atcore.cid import CID
from atcore.mst import (
    MST,
    InversionError,
    MemoryBlockStore,
    ProofError,
    RecordOp,
    commit_proof_blocks,
    invert_commit,
    key_height,
    prepare_commit,
    proof_blocks,
    verify_proof,
)
from tests.atcore._mst_support import (
    VALUES,
    applied,
    build,
    contents,
    keys,
    op_batches,
    stored,
)
from tests.interop import json_cases


@pytest.mark.parametrize("case", json_cases("firehose/commit-proof-fixtures.json", "comment"))
def test_commit_proof_fixture(case: dict[str, Any]) -> None:
    leaf = CID.parse(case["leafValue"])
    store, before = stored(build({key: leaf for key in case["keys"]}))
    assert str(before) == case["rootBeforeCommit"]

    tree = MST.load(store, before)
    writes = [RecordOp.create(k, leaf) for k in case["adds"]]
    writes += [RecordOp.delete(k) for k in case["dels"]]
    commit = prepare_commit(tree, writes)
    assert commit.prev_data == before
    assert str(commit.data) == case["rootAfterCommit"]
    assert {str(cid) for cid in commit.blocks} == set(case["blocksInProof"])
    assert set(commit.blocks) >= set(commit.new_blocks)

    # the proof alone, as a consumer reads it from a CAR slice, undoes the ops in any order
    _, slice_blocks = read_car(write_car([commit.data], commit.blocks.items()))
    for order in itertools.permutations(commit.ops):
        assert invert_commit(commit.data, list(order), slice_blocks) == before


@given(contents, st.data())
def test_inversion_restores_prev_data(before: dict[str, CID], data: st.DataObject) -> None:
    store, prev_data = stored(build(before))
    writes = data.draw(op_batches(before))
    commit = prepare_commit(MST.load(store, prev_data), writes)
    assert commit.prev_data == prev_data
    assert commit.data == build(applied(before, writes)).root_cid()
    assert invert_commit(commit.data, commit.ops, commit.blocks) == prev_data
    # distinct paths: undoing them in any other order must work from the same blocks
    shuffled = data.draw(st.permutations(commit.ops))
    assert invert_commit(commit.data, shuffled, commit.blocks) == prev_data
    # the commit's blocks also prove every op's new state on their own
    for op in commit.ops:
        assert verify_proof(commit.data, op.path, commit.blocks) == op.cid


@given(contents, st.data())
def test_commit_proof_blocks_on_a_fresh_tree(before: dict[str, CID], data: st.DataObject) -> None:
    # a consumer rebuilding the proof from a full copy of the new tree gets the same blocks
    store, prev_data = stored(build(before))
    writes = data.draw(op_batches(before))
    commit = prepare_commit(MST.load(store, prev_data), writes)
    after = build(applied(before, writes))
    assert commit_proof_blocks(after, [op.path for op in writes]) == commit.blocks


def test_inversion_needs_the_neighbour_blocks() -> None:
    # Delete a layer-1 key whose right-hand gap is empty: its left subtree survives unchanged,
    # and re-inserting the key must walk that subtree's right edge, which no new block holds.
    ordered = [f"com.example.record/{i:04d}" for i in range(300)]
    before = dict.fromkeys(ordered, VALUES[0])
    victim = next(
        key
        for prev, key, nxt in zip(ordered, ordered[1:], ordered[2:], strict=False)
        if key_height(prev) == 0 and key_height(key) == 1 and key_height(nxt) >= 1
    )
    store, prev_data = stored(build(before))
    commit = prepare_commit(MST.load(store, prev_data), [RecordOp.delete(victim)])
    assert invert_commit(commit.data, commit.ops, commit.blocks) == prev_data
    only_new = dict(commit.new_blocks)
    with pytest.raises(InversionError, match="missing"):
        invert_commit(commit.data, commit.ops, only_new)
    del commit.blocks[commit.data]
    with pytest.raises(InversionError, match="missing"):
        invert_commit(commit.data, commit.ops, commit.blocks)


def test_inversion_rejects_ops_that_do_not_match() -> None:
    before = {f"com.example.record/{i:03d}": VALUES[0] for i in range(40)}
    store, prev_data = stored(build(before))
    path = "com.example.record/050"
    commit = prepare_commit(MST.load(store, prev_data), [RecordOp.create(path, VALUES[1])])
    assert invert_commit(commit.data, commit.ops, commit.blocks) == prev_data
    wrong_value = [RecordOp.create(path, VALUES[2])]
    with pytest.raises(InversionError):
        invert_commit(commit.data, wrong_value, commit.blocks)
    claims_delete = [RecordOp.delete("com.example.record/005", VALUES[0])]
    with pytest.raises(InversionError):
        invert_commit(commit.data, claims_delete, commit.blocks)
    updated = prepare_commit(
        MST.load(store, prev_data), [RecordOp.update("com.example.record/005", VALUES[1])]
    )
    no_prev = [RecordOp.update("com.example.record/005", VALUES[1])]
    with pytest.raises(InversionError, match="prev"):
        invert_commit(updated.data, no_prev, updated.blocks)
    # an incomplete op list inverts to some other root, which the caller compares to prevData
    assert invert_commit(commit.data, [], commit.blocks) != prev_data


# -- inclusion / exclusion proofs ------------------------------------------------------------------
@given(contents, keys)
def test_proofs_prove_presence_and_absence(items: dict[str, CID], key: str) -> None:
    store, root = stored(build(items))
    tree = MST.load(store, root)
    blocks = proof_blocks(tree, key)
    assert root in blocks
    assert verify_proof(root, key, blocks) == items.get(key)


def test_proof_failures() -> None:
    items = {f"com.example.record/{i:04d}": VALUES[i % 2] for i in range(500)}
    store, root = stored(build(items))
    key = "com.example.record/0321"
    blocks = proof_blocks(MST.load(store, root), key)
    assert len(blocks) > 1
    deepest = next(cid for cid in blocks if cid != root)
    partial = {cid: block for cid, block in blocks.items() if cid != deepest}
    with pytest.raises(ProofError, match="lacks"):
        verify_proof(root, key, partial)
    tampered = dict(blocks)
    tampered[deepest] = blocks[root]
    with pytest.raises(ProofError):
        verify_proof(root, key, tampered)
    with pytest.raises(ProofError):
        verify_proof(root, key, {})


def test_inversion_tolerates_an_omitted_child_below_a_trimmed_top() -> None:
    # A create on a new top layer, above every key: the new root is [old root, key]. Undoing it
    # trims back to the old root, a block older producers left out of the slice.
    before = {f"com.example.record/3k{i:05d}": VALUES[0] for i in range(40)}
    top = max(key_height(k) for k in before)
    key = next(
        f"com.example.record/z{i}"
        for i in range(10_000)
        if key_height(f"com.example.record/z{i}") > top
    )
    store, prev_data = stored(build(before))
    commit = prepare_commit(MST.load(store, prev_data), [RecordOp.create(key, VALUES[1])])
    assert prev_data in commit.blocks  # covering proofs do carry it
    slim = {cid: block for cid, block in commit.blocks.items() if cid != prev_data}
    assert invert_commit(commit.data, commit.ops, slim) == prev_data
    # once the top is bare, any op that needs the omitted child is an incomplete proof
    more = [
        RecordOp.create("com.example.record/3k00007x", VALUES[1]),
        RecordOp.create(key, VALUES[1]),
    ]
    commit = prepare_commit(MST.load(store, prev_data), more)
    below = MST.load(MemoryBlockStore(commit.blocks), commit.data).root.subs[0]
    assert isinstance(below, CID)
    slim = {cid: block for cid, block in commit.blocks.items() if cid != below}
    with pytest.raises(InversionError, match="missing"):
        invert_commit(commit.data, commit.ops, slim)
