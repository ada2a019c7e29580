"""MST write throughput: `atcore.mst` vs `atmst` (the other Python MST, immutable nodes).

Tasks (ops/s = keys or writes per second; higher is better):
  build            insert N random-order keys into an empty tree. atmst computes a root per
                   insert by design; ours runs both ways: one root at the end (bulk import) and
                   a root after every insert (a commit per write)
  update resident  on an N-key tree held in memory: change one key's value, compute the new
                   root (a PDS keeping hot repos in memory)
  update cold      on an N-key tree in a block store: load the root, change one key, compute
                   the new root and collect the new blocks (a PDS loading the repo per commit);
                   atmst gets a fresh node cache per write to match; the NodeCache row
                   chains commits through a shared `NodeCache` (what atmst's LRU would give it)
Keys look like post paths (`app.bsky.feed.post/<13-char rkey>`), inserted in random order.

Run: `.venv/bin/python -m scripts.bench._mst [--quick]`
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import cycle

import cbrrr
from atmst.blockstore import MemoryBlockStore as AtmstBlockStore
from atmst.mst.node_store import NodeStore
from atmst.mst.node_wrangler import NodeWrangler

from atcore.cid import CID
from atcore.dagcbor import cid_of
from atcore.mst import MST, MemoryBlockStore, NodeCache
from scripts.bench._util import Measurement, ops_per_second, print_table

OURS = "atcore.mst"
PEER = "atmst"


@dataclass(frozen=True)
class _Sizes:
    build: int
    trees: tuple[int, ...]
    min_seconds: float
    repeats: int


def _keys(count: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    return [f"app.bsky.feed.post/3l{rnd.getrandbits(52):011x}" for _ in range(count)]


VALUES: list[CID] = [cid_of({"$type": "bench", "n": i})[0] for i in range(8)]
PEER_VALUES: list[cbrrr.CID] = [cbrrr.CID(v.cid_bytes) for v in VALUES]


def _build_ours(keys: Sequence[str], *, root_each: bool) -> None:
    tree = MST.create()
    value = VALUES[0]
    for key in keys:
        tree.put(key, value)
        if root_each:
            tree.root_cid()
    tree.root_cid()


def _build_peer(keys: Sequence[str]) -> None:
    store = NodeStore(AtmstBlockStore())
    wrangler = NodeWrangler(store)
    root = store.get_node(None).cid
    value = PEER_VALUES[0]
    for key in keys:
        root = wrangler.put_record(root, key, value)


def _build_rate(fn: Callable[[], None], count: int, sizes: _Sizes) -> float:
    return count * ops_per_second(fn, min_seconds=sizes.min_seconds, repeats=sizes.repeats)


def _build_rows(sizes: _Sizes) -> list[Measurement]:
    keys = _keys(sizes.build)
    task = f"build: insert {sizes.build:,} keys"
    n = len(keys)
    return [
        Measurement(
            task, PEER, _build_rate(lambda: _build_peer(keys), n, sizes), "root per insert"
        ),
        Measurement(
            task,
            f"{OURS} (root each)",
            _build_rate(lambda: _build_ours(keys, root_each=True), n, sizes),
            "root per insert",
        ),
        Measurement(
            task,
            OURS,
            _build_rate(lambda: _build_ours(keys, root_each=False), n, sizes),
            "one root at the end",
        ),
    ]


def _update_rows(size: int, sizes: _Sizes) -> list[Measurement]:
    keys = _keys(size, seed=size)
    tree = MST.from_items((key, VALUES[0]) for key in keys)
    root = tree.root_cid()
    blocks = tree.new_blocks()
    store = MemoryBlockStore(blocks)
    peer_blocks = AtmstBlockStore({bytes(cid): block for cid, block in blocks.items()})
    # 500 keys against 7 values: a key never gets the value it already holds (no no-op writes)
    targets = zip(cycle(random.Random(3).sample(keys, min(500, size))), cycle(range(1, 8)))

    def ours_resident() -> None:
        key, v = next(targets)
        tree.put(key, VALUES[v])
        tree.root_cid()

    def ours_cold() -> None:
        key, v = next(targets)
        fresh = MST.load(store, root)
        fresh.put(key, VALUES[v])
        fresh.root_cid()
        fresh.new_blocks()

    cache = NodeCache()
    cached_root = [root]

    def ours_cold_cached() -> None:
        # the PDS flow with a process-wide node cache: each commit loads the previous one's root
        key, v = next(targets)
        fresh = MST.load(store, cached_root[0], cache=cache)
        fresh.put(key, VALUES[v])
        cached_root[0] = fresh.root_cid()
        store.put_many(fresh.new_blocks())
        fresh.mark_stored()

    warm_wrangler = NodeWrangler(NodeStore(peer_blocks))
    peer_root = [cbrrr.CID(root.cid_bytes)]

    def peer_resident() -> None:
        key, v = next(targets)
        peer_root[0] = warm_wrangler.put_record(peer_root[0], key, PEER_VALUES[v])

    def peer_cold() -> None:
        key, v = next(targets)
        NodeWrangler(NodeStore(peer_blocks)).put_record(peer_root[0], key, PEER_VALUES[v])

    def rate(fn: Callable[[], None]) -> float:
        return ops_per_second(fn, min_seconds=sizes.min_seconds, repeats=sizes.repeats)

    resident, cold = f"update resident: {size:,}-key tree", f"update cold: {size:,}-key tree"
    return [
        Measurement(resident, PEER, rate(peer_resident)),
        Measurement(resident, OURS, rate(ours_resident)),
        Measurement(cold, PEER, rate(peer_cold)),
        Measurement(cold, OURS, rate(ours_cold)),
        Measurement(cold, f"{OURS} + NodeCache", rate(ours_cold_cached), "commit chain"),
    ]


def run(quick: bool) -> list[Measurement]:
    """Measure every task; `quick` uses tiny trees and a few milliseconds each (< 2 s)."""
    sizes = (
        _Sizes(build=300, trees=(1_000,), min_seconds=0.01, repeats=1)
        if quick
        else _Sizes(build=10_000, trees=(10_000, 100_000), min_seconds=0.5, repeats=3)
    )
    rows = _build_rows(sizes)
    for size in sizes.trees:
        rows += _update_rows(size, sizes)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MST write throughput: atcore.mst vs atmst")
    parser.add_argument("--quick", action="store_true", help="tiny trees, a smoke run")
    args = parser.parse_args(argv)
    print_table(run(args.quick), baseline=PEER)


if __name__ == "__main__":
    main()
