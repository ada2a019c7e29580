"""MST keys (height, prefix, syntax) and the strict node codec."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore import dagcbor
from atcore.cid import CID
from atcore.mst import (
    MST,
    MalformedNodeError,
    MemoryBlockStore,
    common_prefix_len,
    decode_node,
    encode_node,
    is_valid_key,
    key_height,
)
from atcore.mst.node import Node, _shared_prefix
from tests.atcore._mst_support import KEY_POOL, VALUES
from tests.interop import json_cases, lines

LEAF = CID.parse("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454")
SUB = dagcbor.cid_of({"sub": 1})[0]


@pytest.mark.parametrize("case", json_cases("mst/key_heights.json", "key"))
def test_key_height_fixture(case: dict[str, Any]) -> None:
    assert key_height(case["key"]) == case["height"]
    assert key_height(case["key"].encode()) == case["height"]


@pytest.mark.parametrize("case", json_cases("mst/common_prefix.json"))
def test_common_prefix_fixture(case: dict[str, Any]) -> None:
    assert common_prefix_len(case["left"], case["right"]) == case["len"]
    assert common_prefix_len(case["left"].encode(), case["right"].encode()) == case["len"]


@pytest.mark.parametrize("key", lines("mst/example_keys.txt"))
def test_example_key_is_valid_and_named_after_its_layer(key: str) -> None:
    # example_keys.txt names each key "<letter><layer>/<digits>"
    assert is_valid_key(key)
    assert key_height(key) == int(key[1])


@given(st.text(max_size=12), st.text(max_size=12))
def test_common_prefix_matches_naive_scan(a: str, b: str) -> None:
    naive = 0
    while naive < min(len(a), len(b)) and a[naive] == b[naive]:
        naive += 1
    assert common_prefix_len(a, b) == naive


@given(st.binary(max_size=12), st.binary(max_size=12))
def test_byte_prefix_fast_path_agrees(a: bytes, b: bytes) -> None:
    assert _shared_prefix(a, b) == common_prefix_len(a, b)
    assert _shared_prefix(a + b, a) == len(a)


@pytest.mark.parametrize(
    "key",
    [
        "coll/3jui7kd54zh2y",
        "coll/self",
        "coll/example.com",
        "com.example/rkey",
        "coll/~1.2-3_",
        "coll/pre:fix",
        "coll/_",
        "a/" + "b" * 1022,
    ],
)
def test_valid_keys(key: str) -> None:
    assert is_valid_key(key)
    assert is_valid_key(key.encode())


@pytest.mark.parametrize(
    "key",
    [
        "",
        "asdf",
        "nested/collection/asdf",
        "coll/",
        "/rkey",
        "coll/jalapeño",
        "coll/abc💩",
        "coll/key$",
        "coll/any space",
        "coll/dHJ1ZQ==",
        "coll/number[3]",
        "coll/.",
        "../rkey",
        "coll/abc\x00",
        "a/" + "b" * 1023,
    ],
)
def test_invalid_keys(key: str) -> None:
    assert not is_valid_key(key)


# -- codec ---------------------------------------------------------------------------------------
def _as_data(keys: list[bytes], vals: list[CID], subs: list[CID | None]) -> dict[str, Any]:
    """The node in the spec's generic data-model form, built independently of encode_node."""
    entries = []
    prev = b""
    for i, key in enumerate(keys):
        p = 0
        while p < min(len(prev), len(key)) and prev[p] == key[p]:
            p += 1
        entries.append({"p": p, "k": key[p:], "v": vals[i], "t": subs[i + 1]})
        prev = key
    return {"l": subs[0], "e": entries}


@st.composite
def node_parts(draw: st.DrawFn) -> tuple[list[bytes], list[CID], list[CID | None]]:
    keys = sorted(k.encode() for k in draw(st.sets(st.sampled_from(KEY_POOL), max_size=20)))
    vals = [draw(st.sampled_from(VALUES)) for _ in keys]
    subs = [draw(st.sampled_from([None, SUB])) for _ in range(len(keys) + 1)]
    return keys, vals, subs


@given(node_parts())
def test_encode_matches_generic_dag_cbor_and_round_trips(
    parts: tuple[list[bytes], list[CID], list[CID | None]],
) -> None:
    keys, vals, subs = parts
    block = encode_node(keys, vals, subs)
    assert block == dagcbor.encode(_as_data(keys, vals, subs))
    assert decode_node(block) == (keys, vals, subs)


def test_encode_handles_long_keys_and_non_sha256_links() -> None:
    keys = [b"c/" + b"x" * 300, b"c/" + b"x" * 299 + b"y"]
    odd = CID.from_bytes(bytes.fromhex("01551220") + bytes(32))
    block = encode_node(keys, [odd, LEAF], [None, None, None])
    assert block == dagcbor.encode(_as_data(keys, [odd, LEAF], [None, None, None]))


def _entry(p: int, k: bytes, t: CID | None = None, v: Any = LEAF) -> dict[str, Any]:
    return {"p": p, "k": k, "v": v, "t": t}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([], "not a map"),
        ({"e": []}, "missing l"),
        ({"e": [], "l": None, "x": 1}, "extra field"),
        ({"e": {}, "l": None}, "e not a list"),
        ({"e": [{"p": 0, "k": b"a/b", "v": LEAF}], "l": None}, "entry without t"),
        ({"e": [[0, b"a/b"]], "l": None}, "entry not a map"),
        ({"e": [_entry(0, b"a/b", v="x")], "l": None}, "value not a link"),
        ({"e": [_entry(1, b"a/b")], "l": None}, "first prefix beyond previous key"),
        ({"e": [_entry(True, b"a/b")], "l": None}, "boolean prefix"),
        ({"e": [_entry(0, b"a/b"), _entry(0, b"a/c")], "l": None}, "prefix not maximal"),
        ({"e": [_entry(0, b"a/c"), _entry(2, b"b")], "l": None}, "keys descending"),
        ({"e": [_entry(0, b"a/b"), _entry(3, b"")], "l": None}, "duplicate key"),
        ({"e": [_entry(0, b"a/b"), _entry(5, b"x")], "l": None}, "prefix beyond previous key"),
        ({"e": [_entry(0, b"ab")], "l": None}, "invalid key"),
        ({"e": [], "l": CID.for_raw(b"x")}, "raw-codec subtree link"),
        ({"e": [_entry(0, b"a/b", t=CID.for_raw(b"x"))], "l": None}, "raw-codec entry subtree"),
    ],
)
def test_decode_rejects_malformed_nodes(data: Any, why: str) -> None:
    with pytest.raises(MalformedNodeError):
        decode_node(dagcbor.encode(data))


def test_decode_rejects_non_canonical_cbor() -> None:
    # {"l": null, "e": []} with the map keys out of canonical order
    with pytest.raises(MalformedNodeError):
        decode_node(bytes.fromhex("a2616cf6616580"))
    with pytest.raises(MalformedNodeError):
        decode_node(encode_node([], [], [None]) + b"\x00")


def _layer_key(layer: int, start: int = 0) -> bytes:
    return next(k.encode() for k in KEY_POOL[start:] if key_height(k) == layer)


def test_from_block_checks_layers() -> None:
    low, high = _layer_key(0), _layer_key(1)
    mixed = encode_node(sorted([low, high]), [LEAF, LEAF], [None, None, None])
    with pytest.raises(MalformedNodeError):
        Node.from_block(CID.for_dag_cbor(mixed), mixed, None)
    leaf_with_sub = encode_node([low], [LEAF], [SUB, None])
    with pytest.raises(MalformedNodeError):
        Node.from_block(CID.for_dag_cbor(leaf_with_sub), leaf_with_sub, None)
    wrong_layer = encode_node([high], [LEAF], [None, None])
    with pytest.raises(MalformedNodeError):
        Node.from_block(CID.for_dag_cbor(wrong_layer), wrong_layer, 2)
    empty = encode_node([], [], [None])
    with pytest.raises(MalformedNodeError):
        Node.from_block(CID.for_dag_cbor(empty), empty, 1)
    bare_pointer = encode_node([], [], [SUB])
    with pytest.raises(MalformedNodeError):
        Node.from_block(CID.for_dag_cbor(bare_pointer), bare_pointer, None)
    assert Node.from_block(CID.for_dag_cbor(bare_pointer), bare_pointer, 3).layer == 3
    assert Node.from_block(CID.for_dag_cbor(empty), empty, None).is_empty()


def test_load_rejects_block_not_matching_its_cid() -> None:
    block = encode_node([b"a/b"], [LEAF], [None, None])
    other = dagcbor.cid_of({"other": True})[0]
    with pytest.raises(MalformedNodeError):
        MST.load(MemoryBlockStore({other: block}), other)
    with pytest.raises(MalformedNodeError):
        MST.load(MemoryBlockStore({}), CID.for_raw(block))


@given(node_parts())
def test_loaded_node_reencodes_to_its_own_block_after_a_child_change(
    parts: tuple[list[bytes], list[CID], list[CID | None]],
) -> None:
    # A loaded node carries entry heads built from its decoded prefixes; re-encoding it after a
    # change that keeps its keys (a new child link) must still give canonical bytes.
    keys, vals, subs = parts
    if not keys:
        return
    layer = key_height(keys[0])
    keys = [key for key in keys if key_height(key) == layer]
    subs = subs[: len(keys) + 1] if layer else [None] * (len(keys) + 1)
    vals = vals[: len(keys)]
    block = encode_node(keys, vals, subs)
    node = Node.from_block(CID.for_dag_cbor(block), block, layer)
    assert node.heads is not None
    node.touch()
    assert node.encode()[1] == block
    if layer:
        node.subs[0] = LEAF
        node.touch()
        assert node.encode()[1] == encode_node(keys, vals, [LEAF, *subs[1:]])
