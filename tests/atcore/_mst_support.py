"""Shared pieces for the MST tests: key pools, Hypothesis strategies and small oracles."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import strategies as st

from atcore.cid import CID
from atcore.dagcbor import cid_of
from atcore.mst import MST, MemoryBlockStore, RecordOp

# Two collections with shared prefixes exercise prefix compression; ~16% of keys sit on layer 1+
# and ~6% on layer 2+, so sets of a few dozen keys already give multi-layer trees.
KEY_POOL: list[str] = [f"com.example.record/3k{i:05d}" for i in range(240)] + [
    f"app.bsky.feed.like/{i:x}z" for i in range(120)
]
VALUES: list[CID] = [cid_of({"n": i})[0] for i in range(6)]

keys = st.sampled_from(KEY_POOL)
values = st.sampled_from(VALUES)
# Hypothesis favours small collections; mix in big ones so trees reach layers 2 and 3.
contents = st.one_of(
    st.dictionaries(keys, values, max_size=12),
    st.dictionaries(keys, values, min_size=30, max_size=90),
)


class CountingStore(MemoryBlockStore):
    """A memory store that records which blocks were read."""

    def __init__(self, blocks: dict[CID, bytes] | None = None) -> None:
        super().__init__(blocks)
        self.reads: list[CID] = []

    def get(self, cid: CID) -> bytes | None:
        self.reads.append(cid)
        return super().get(cid)


def build(items: dict[str, CID] | Iterable[tuple[str, CID]]) -> MST:
    pairs = items.items() if isinstance(items, dict) else items
    return MST.from_items(pairs)


def stored(tree: MST, store: MemoryBlockStore | None = None) -> tuple[MemoryBlockStore, CID]:
    """Persist a tree's new blocks; returns the store and the root."""
    store = store if store is not None else MemoryBlockStore()
    root = tree.root_cid()
    store.put_many(tree.new_blocks())
    tree.mark_stored()
    return store, root


def all_node_cids(tree: MST) -> set[CID]:
    return {cid for cid, _ in tree.iter_blocks()}


@st.composite
def op_batches(draw: st.DrawFn, before: dict[str, CID]) -> list[RecordOp]:
    """A valid batch of writes against `before`: distinct paths, each op legal in order."""
    paths = draw(st.lists(keys, unique=True, min_size=1, max_size=12))
    ops: list[RecordOp] = []
    for path in paths:
        value = draw(values)
        if path not in before:
            ops.append(RecordOp.create(path, value))
        elif draw(st.booleans()):
            ops.append(RecordOp.delete(path))
        else:
            ops.append(RecordOp.update(path, value))
    return ops


def applied(before: dict[str, CID], ops: list[RecordOp]) -> dict[str, CID]:
    after = dict(before)
    for op in ops:
        if op.cid is None:
            del after[op.path]
        else:
            after[op.path] = op.cid
    return after
