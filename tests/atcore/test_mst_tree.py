"""The MST: known roots, operations, history independence, walks, ranges and lazy loading."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore.cid import CID
from atcore.mst import (
    MST,
    InvalidKeyError,
    KeyExistsError,
    KeyNotFoundError,
    MalformedNodeError,
    MemoryBlockStore,
    MissingBlockError,
    NodeCache,
    OpMismatchError,
    OverlayBlockStore,
    RecordOp,
    key_height,
)
from atcore.mst.node import Node
from tests.atcore._mst_support import (
    VALUES,
    CountingStore,
    all_node_cids,
    build,
    contents,
    keys,
    op_batches,
    stored,
    values,
)
from tests.conftest import interop_dir

LEAF = CID.parse("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454")
REC = "com.example.record/"


def _tree(*rkeys: str) -> MST:
    return build({REC + r: LEAF for r in rkeys})


# Known-answer roots published with the reference implementations' interop tests
# (bluesky-social/atproto packages/repo/tests/mst.test.ts, indigo atproto/repo/mst).
@pytest.mark.parametrize(
    ("rkeys", "root"),
    [
        ((), "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"),
        (("3jqfcqzm3fo2j",), "bafyreibj4lsc3aqnrvphp5xmrnfoorvru4wynt6lwidqbm2623a6tatzdu"),
        (("3jqfcqzm3fx2j",), "bafyreih7wfei65pxzhauoibu3ls7jgmkju4bspy4t2ha2qdjnzqvoy33ai"),
        (
            ("3jqfcqzm3fp2j", "3jqfcqzm3fr2j", "3jqfcqzm3fs2j", "3jqfcqzm3ft2j", "3jqfcqzm4fc2j"),
            "bafyreicmahysq4n6wfuxo522m6dpiy7z7qzym3dzs756t5n7nfdgccwq7m",
        ),
    ],
    ids=["empty", "trivial", "singlelayer2", "simple"],
)
def test_known_roots(rkeys: tuple[str, ...], root: str) -> None:
    assert str(_tree(*rkeys).root_cid()) == root


def test_trims_top_on_delete() -> None:
    tree = _tree("3jqfcqzm3fn2j", "3jqfcqzm3fo2j", "3jqfcqzm3fp2j", "3jqfcqzm3fs2j")
    tree.add(REC + "3jqfcqzm3ft2j", LEAF)
    tree.add(REC + "3jqfcqzm3fu2j", LEAF)
    assert tree.root.layer == 1
    assert str(tree.root_cid()) == "bafyreifnqrwbk6ffmyaz5qtujqrzf5qmxf7cbxvgzktl4e3gabuxbtatv4"
    tree.delete(REC + "3jqfcqzm3fs2j")
    assert tree.root.layer == 0
    assert str(tree.root_cid()) == "bafyreie4kjuxbwkhzg2i5dljaswcroeih4dgiqq6pazcmunwt2byd725vi"


def test_insertion_that_splits_two_layers_down() -> None:
    tree = _tree(
        *("3jqfcqzm3fo2j", "3jqfcqzm3fp2j", "3jqfcqzm3fr2j", "3jqfcqzm3fs2j", "3jqfcqzm3ft2j"),
        *("3jqfcqzm3fz2j", "3jqfcqzm4fc2j", "3jqfcqzm4fd2j", "3jqfcqzm4ff2j", "3jqfcqzm4fg2j"),
        "3jqfcqzm4fh2j",
    )
    before = "bafyreiettyludka6fpgp33stwxfuwhkzlur6chs4d2v4nkmq2j3ogpdjem"
    assert str(tree.root_cid()) == before
    tree.add(REC + "3jqfcqzm3fx2j", LEAF)
    assert tree.root.layer == 2
    assert str(tree.root_cid()) == "bafyreid2x5eqs4w4qxvc5jiwda4cien3gw2q6cshofxwnvv7iucrmfohpm"
    tree.delete(REC + "3jqfcqzm3fx2j")
    assert tree.root.layer == 1
    assert str(tree.root_cid()) == before


def test_new_layers_two_above_the_top() -> None:
    tree = _tree("3jqfcqzm3ft2j", "3jqfcqzm3fz2j")
    l0 = "bafyreidfcktqnfmykz2ps3dbul35pepleq7kvv526g47xahuz3rqtptmky"
    l2 = "bafyreiavxaxdz7o7rbvr3zg2liox2yww46t7g6hkehx4i4h3lwudly7dhy"
    assert str(tree.root_cid()) == l0
    tree.add(REC + "3jqfcqzm3fx2j", LEAF)
    assert str(tree.root_cid()) == l2
    tree.delete(REC + "3jqfcqzm3fx2j")
    assert str(tree.root_cid()) == l0
    tree.add(REC + "3jqfcqzm3fx2j", LEAF)
    tree.add(REC + "3jqfcqzm4fd2j", LEAF)
    assert str(tree.root_cid()) == "bafyreig4jv3vuajbsybhyvb7gggvpwh2zszwfyttjrj6qwvcsp24h6popu"
    tree.delete(REC + "3jqfcqzm4fd2j")
    assert str(tree.root_cid()) == l2


def test_example_keys_are_order_independent_and_round_trip() -> None:
    path = interop_dir() / "mst" / "example_keys.txt"
    if not path.is_file():
        pytest.skip(f"interop fixture {path} not found")
    example = path.read_text().split()
    shuffled = example[:]
    random.Random(7).shuffle(shuffled)
    forward = build({k: LEAF for k in example})
    backward = build({k: LEAF for k in reversed(example)})
    mixed = build({k: LEAF for k in shuffled})
    assert forward.root_cid() == backward.root_cid() == mixed.root_cid()
    assert forward.root.layer == max(key_height(k) for k in example)
    store, root = stored(mixed)
    loaded = MST.load(store, root)
    assert [k for k, _ in loaded.items()] == sorted(example)
    for key in shuffled[:40]:
        loaded.delete(key)
    assert loaded.root_cid() == build({k: LEAF for k in shuffled[40:]}).root_cid()


# -- single operations -----------------------------------------------------------------------------
def test_operation_semantics() -> None:
    tree = MST.create()
    a, b = VALUES[0], VALUES[1]
    tree.add(REC + "a", a)
    with pytest.raises(KeyExistsError):
        tree.add(REC + "a", b)
    assert tree.get(REC + "a") == a
    assert tree.update(REC + "a", b) == a
    with pytest.raises(OpMismatchError):
        tree.update(REC + "a", a, prev=a)
    with pytest.raises(KeyNotFoundError):
        tree.update(REC + "zz", a)
    assert tree.put(REC + "a", a) == b
    assert tree.put(REC + "b", a) is None
    with pytest.raises(OpMismatchError):
        tree.delete(REC + "a", prev=b)
    assert tree.delete(REC + "a", prev=a) == a
    with pytest.raises(KeyNotFoundError):
        tree.delete(REC + "a")
    assert tree.remove(REC + "a") is None
    assert tree.remove(REC + "b") == a
    assert tree.is_empty()
    assert tree.root_cid() == MST.create().root_cid()
    with pytest.raises(InvalidKeyError):
        tree.put("no-slash", a)
    with pytest.raises(InvalidKeyError):
        tree.get("")


def test_apply_resolves_prev_and_checks_swaps() -> None:
    tree = _tree("a", "b")
    done = tree.apply(
        [
            RecordOp.create(REC + "c", VALUES[1]),
            RecordOp.update(REC + "a", VALUES[2], prev=LEAF),
            RecordOp.delete(REC + "b"),
        ]
    )
    assert done == [
        RecordOp.create(REC + "c", VALUES[1]),
        RecordOp.update(REC + "a", VALUES[2], prev=LEAF),
        RecordOp.delete(REC + "b", prev=LEAF),
    ]
    with pytest.raises(OpMismatchError):
        tree.apply([RecordOp.delete(REC + "a", prev=LEAF)])
    with pytest.raises(KeyExistsError):
        tree.apply([RecordOp.create(REC + "c", VALUES[1])])


# -- properties ------------------------------------------------------------------------------------
@given(contents, st.randoms(use_true_random=False))
def test_root_is_independent_of_insertion_order(items: dict[str, CID], rnd: random.Random) -> None:
    pairs = list(items.items())
    reference = build(sorted(pairs)).root_cid()
    rnd.shuffle(pairs)
    assert build(pairs).root_cid() == reference
    # reaching the same set through deletions gives the same root as well
    extra = build(pairs + [("zzz.extra/" + str(i), VALUES[0]) for i in range(20)])
    for i in range(20):
        extra.delete("zzz.extra/" + str(i))
    assert extra.root_cid() == reference


@given(contents, keys, values)
def test_put_then_delete_restores_root(items: dict[str, CID], key: str, value: CID) -> None:
    items.pop(key, None)
    store, root = stored(build(items))
    tree = MST.load(store, root)
    tree.add(key, value)
    assert tree.get(key) == value
    assert tree.root_cid() != root
    tree.delete(key)
    assert tree.root_cid() == root


@given(contents)
def test_walk_is_sorted_and_complete(items: dict[str, CID]) -> None:
    tree = build(items)
    assert list(tree.items()) == sorted(items.items())
    store, root = stored(tree)
    loaded = MST.load(store, root)
    assert list(loaded.items()) == sorted(items.items())
    for key, value in items.items():
        assert loaded.get(key) == value


@given(
    contents,
    st.one_of(st.none(), keys),
    st.one_of(st.none(), keys),
    st.one_of(st.none(), st.integers(0, 30)),
    st.booleans(),
)
def test_range_listing_matches_sorted_oracle(
    items: dict[str, CID], after: str | None, before: str | None, limit: int | None, rev: bool
) -> None:
    store, root = stored(build(items))
    tree = MST.load(store, root)
    oracle = [
        (k, v)
        for k, v in sorted(items.items(), reverse=rev)
        if (after is None or k > after) and (before is None or k < before)
    ]
    expected = oracle[:limit] if limit is not None else oracle
    assert tree.list(after=after, before=before, limit=limit, reverse=rev) == expected


@given(
    contents,
    st.sampled_from(
        ["com.example.record/", "app.bsky.feed.like/", "com.ex", "app.bsky.feed.like/1"]
    ),
)
def test_prefix_listing_matches_oracle(items: dict[str, CID], prefix: str) -> None:
    tree = build(items)
    expected = sorted((k, v) for k, v in items.items() if k.startswith(prefix))
    assert tree.list_prefix(prefix) == expected
    assert list(tree.iter_prefix(prefix, reverse=True)) == expected[::-1]


@given(contents, st.data())
def test_new_blocks_are_exactly_the_new_nodes(items: dict[str, CID], data: st.DataObject) -> None:
    store, root = stored(build(items))
    old_nodes = all_node_cids(MST.load(store, root))
    tree = MST.load(store, root)
    tree.apply(data.draw(op_batches(items)))
    new_root = tree.root_cid()
    fresh = tree.new_blocks()
    reloaded = MST.load(OverlayBlockStore(MemoryBlockStore(fresh), store), new_root)
    assert set(fresh) == all_node_cids(reloaded) - old_nodes
    tree.mark_stored()
    assert tree.new_blocks() == {}


@given(contents, st.lists(st.lists(st.tuples(keys, st.none() | values), max_size=10), max_size=4))
def test_resident_tree_reports_exactly_the_nodes_new_since_the_last_commit(
    items: dict[str, CID], batches: list[list[tuple[str, CID | None]]]
) -> None:
    # a tree kept in memory across commits; batches may undo their own or earlier writes
    store, root = stored(build(items))
    tree = MST.load(store, root)
    previous = all_node_cids(MST.load(store, root))
    for batch in batches:
        for key, value in batch:
            if value is None:
                tree.remove(key)
            else:
                tree.put(key, value)
        fresh = tree.new_blocks()
        store.put_many(fresh)
        current = all_node_cids(MST.load(store, tree.root_cid()))
        assert set(fresh) == current - previous
        tree.mark_stored()
        previous = current


def test_lazy_loading_reads_only_the_path() -> None:
    items = {f"com.example.record/{i:06d}": LEAF for i in range(3000)}
    mem, root = stored(build(items))
    store = CountingStore({cid: mem.get(cid) or b"" for cid in mem})
    tree = MST.load(store, root)
    assert tree.get("com.example.record/001234") == LEAF
    depth = tree.root.layer + 1
    assert len(store.reads) <= depth
    store.reads.clear()
    new_key = "com.example.record/001234x"
    height = key_height(new_key)
    tree.put(new_key, VALUES[1])
    tree.root_cid()
    # the path down to the key's layer, then a split (two new nodes) on each layer below it
    assert len(store.reads) <= depth
    assert len(tree.new_blocks()) <= (tree.root.layer - height + 1) + 2 * height


def test_missing_block_is_reported() -> None:
    mem, root = stored(build({f"com.example.record/{i:04d}": LEAF for i in range(200)}))
    only_root = MemoryBlockStore({root: mem.get(root) or b""})
    tree = MST.load(only_root, root)
    with pytest.raises(MissingBlockError) as info:
        list(tree.items())
    assert info.value.cid in mem


# -- node cache ------------------------------------------------------------------------------------
@given(contents, st.lists(st.tuples(keys, values), min_size=1, max_size=8))
def test_cached_commit_chain_matches_uncached(
    items: dict[str, CID], writes: list[tuple[str, CID]]
) -> None:
    store, root = stored(build(items))
    cache = NodeCache(capacity=64)
    cached_root = plain_root = root
    for key, value in writes:
        cached = MST.load(store, cached_root, cache=cache)
        plain = MST.load(store, plain_root)
        cached.put(key, value)
        plain.put(key, value)
        assert cached.new_blocks() == plain.new_blocks()
        store.put_many(cached.new_blocks())
        cached.mark_stored()
        cached_root, plain_root = cached.root_cid(), plain.root_cid()
        assert cached_root == plain_root
    items.update(writes)
    assert list(MST.load(store, cached_root, cache=cache).items()) == sorted(items.items())
    assert len(cache) <= 64


def test_cache_serves_the_next_commit_without_reading_the_store() -> None:
    mem, root = stored(build({f"com.example.record/{i:05d}": LEAF for i in range(2000)}))
    store = CountingStore({cid: mem.get(cid) or b"" for cid in mem})
    cache = NodeCache()
    tree = MST.load(store, root, cache=cache)
    tree.put("com.example.record/00777", VALUES[1])
    store.put_many(tree.new_blocks())
    tree.mark_stored()
    store.reads.clear()
    again = MST.load(store, tree.root_cid(), cache=cache)
    assert again.get("com.example.record/00777") == VALUES[1]
    assert store.reads == []


def test_cache_checks_where_a_node_is_loaded() -> None:
    store, root = stored(build({f"com.example.record/{i:05d}": LEAF for i in range(300)}))
    cache = NodeCache()
    top = MST.load(store, root, cache=cache)
    list(top.items())  # decodes (and caches) every node
    child_cid = next(sub for sub in MST.load(store, root).root.subs if sub is not None)
    assert isinstance(child_cid, CID)
    # served from the cache alone (the store is empty), at the wrong layer: rejected
    wrong_parent = Node(top.root.layer + 1, [], [], [child_cid])
    with pytest.raises(MalformedNodeError):
        MST(MemoryBlockStore(), wrong_parent, cache).child(wrong_parent, 0)
    right_parent = Node(top.root.layer, [], [], [child_cid])
    assert MST(MemoryBlockStore(), right_parent, cache).child(right_parent, 0) is not None
    with pytest.raises(ValueError, match="positive"):
        NodeCache(capacity=0)
