"""Hypothesis strategies for atproto data-model values and CIDs, shared by the atcore tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from atcore.cid import CID, CODEC_DAG_CBOR, CODEC_DAG_PB, CODEC_RAW, HASH_SHA256, encode_varint

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def blessed_cids() -> st.SearchStrategy[CID]:
    """CIDv1, sha-256, dag-cbor or raw: the forms atproto writes."""
    prefixes = st.sampled_from([b"\x01\x71\x12\x20", b"\x01\x55\x12\x20"])
    return st.builds(
        lambda prefix, digest: CID(prefix + digest), prefixes, st.binary(min_size=32, max_size=32)
    )


def _other_v1_cids() -> st.SearchStrategy[CID]:
    """Other well-formed CIDv1s: unusual codecs, hash functions and digest lengths."""

    def build(codec: int, hash_code: int, digest: bytes) -> CID:
        if hash_code == HASH_SHA256:
            digest = (digest * 32)[:32] if digest else bytes(32)
        raw = b"\x01" + encode_varint(codec) + encode_varint(hash_code)
        return CID(raw + encode_varint(len(digest)) + digest)

    codecs = st.sampled_from([CODEC_RAW, CODEC_DAG_CBOR, CODEC_DAG_PB, 0x0129, 0x300001])
    hashes = st.sampled_from([0x00, HASH_SHA256, 0x13, 0xB220, 0x1E])
    return st.builds(build, codecs, hashes, st.binary(max_size=64))


def _v0_cids() -> st.SearchStrategy[CID]:
    return st.builds(lambda digest: CID(b"\x12\x20" + digest), st.binary(min_size=32, max_size=32))


def cids(*, blessed_only: bool = False) -> st.SearchStrategy[CID]:
    """CIDs; by default mostly blessed ones, with some CIDv0 and exotic CIDv1."""
    if blessed_only:
        return blessed_cids()
    return st.one_of(blessed_cids(), _other_v1_cids(), _v0_cids())


def int64s() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(-(2**16), 2**16),
        st.integers(INT64_MIN, INT64_MAX),
        st.sampled_from([INT64_MIN, INT64_MAX, 23, 24, 255, 256, 65535, 65536, -24, -25]),
    )


def map_keys(*, json_safe: bool = True) -> st.SearchStrategy[str]:
    """Map keys; `json_safe` leaves out `$`-keys, which carry meaning in the JSON form."""
    keys = st.one_of(st.text(max_size=12), st.sampled_from(["a", "b", "aa", "é", "$type", "text"]))
    if json_safe:
        return keys.filter(lambda key: not key.startswith("$"))
    return keys


def data_model_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        int64s(),
        st.text(max_size=40),
        st.binary(max_size=40),
        cids(),
    )


def data_model_values(*, json_safe: bool = True, max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Arbitrary atproto data-model values (nested maps and lists of scalars and links)."""
    return st.recursive(
        data_model_scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=6),
            st.dictionaries(map_keys(json_safe=json_safe), children, max_size=6),
        ),
        max_leaves=max_leaves,
    )


def data_model_maps(*, json_safe: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Data-model values whose top level is a map (records, nodes)."""
    return st.dictionaries(
        map_keys(json_safe=json_safe), data_model_values(json_safe=json_safe), max_size=8
    )
