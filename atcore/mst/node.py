"""MST keys and nodes: key rules, key height, and the strict node codec.

A node block is canonical DAG-CBOR `{"e": [entry...], "l": CID | null}` with each entry
`{"k": suffix bytes, "p": prefix length, "t": CID | null, "v": CID}`. Keys are compressed against
the previous key *in the same node*; the first entry carries its whole key with `p = 0`.

In memory a node is the flat form `keys[i]`, `vals[i]` and `subs[0..n]`, where `subs[0]` is `l`
and `subs[i + 1]` is entry i's `t`: the subtree between `keys[i]` and `keys[i + 1]`. A sub is a
loaded `Node`, the `CID` of a node not yet loaded, or `None`. Keys are kept as ASCII `bytes` (the
MST key is a byte string; byte order is the tree order).

Encoding is hand-assembled (the shape is fixed, and this is the write path's hot loop); a test
checks it byte-for-byte against the generic DAG-CBOR encoder. Decoding goes through cbrrr, which
rejects non-canonical CBOR, and then checks everything MST-specific: field set, link formats,
maximal prefix compression, strictly ascending keys, key syntax and every key's height.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Final, TypeAlias

import cbrrr

from atcore.cid import CID
from atcore.mst.errors import InvalidKeyError, MalformedNodeError

MAX_KEY_BYTES: Final = 1024
# collection "/" rkey from the allowed characters; neither segment may be "." or ".."
_KEY_RE: Final = re.compile(rb"(?!\.\.?/)[A-Za-z0-9_~.:\-]+/(?!\.\.?\Z)[A-Za-z0-9_~.:\-]+")
_DAG_CBOR_PREFIX: Final = CID.CIDV1_DAG_CBOR_SHA256_32_PFX  # node links: dag-cbor + sha2-256/32
_NODE_FIELDS: Final = frozenset(("e", "l"))
_ENTRY_FIELDS: Final = frozenset(("k", "p", "t", "v"))

Sub: TypeAlias = "Node | CID | None"


# -- keys --------------------------------------------------------------------------------------
def key_height(key: str | bytes) -> int:
    """The layer of `key`: leading zero bits of SHA-256(key), counted in 2-bit chunks (fanout 4)."""
    raw = key.encode() if isinstance(key, str) else key
    digest = int.from_bytes(hashlib.sha256(raw).digest(), "big")
    return (256 - digest.bit_length()) // 2


def common_prefix_len(a: str | bytes, b: str | bytes) -> int:
    """Length of the longest common prefix of two strings (or two byte strings)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # invariant: a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def is_valid_key(key: str | bytes) -> bool:
    """True for a valid MST key: `collection/rkey`, chars `A-Za-z0-9 . - _ : ~`, <= 1024 bytes."""
    if isinstance(key, str):
        if not key.isascii():
            return False
        key = key.encode()
    return len(key) <= MAX_KEY_BYTES and _KEY_RE.fullmatch(key) is not None


def key_bytes(key: str) -> bytes:
    """Validate a repo path and return it as the MST key bytes."""
    if not is_valid_key(key):
        raise InvalidKeyError(f"not a valid MST key: {key[:100]!r}")
    return key.encode()


# -- the in-memory node ------------------------------------------------------------------------
class Node:
    """One tree node; `cid is None` means it changed since it was last encoded."""

    __slots__ = ("block", "cid", "fresh", "heads", "keys", "layer", "subs", "vals")

    def __init__(
        self,
        layer: int,
        keys: list[bytes],
        vals: list[CID],
        subs: list[Sub],
        *,
        cid: CID | None = None,
        block: bytes | None = None,
    ) -> None:
        self.layer = layer
        self.keys = keys
        self.vals = vals
        self.subs = subs
        self.cid = cid
        self.block = block
        self.heads: list[bytes] | None = None  # entry_heads(keys), kept while the keys stay
        # True once encoded by us (rather than loaded): its block is new to the store.
        self.fresh = False

    @classmethod
    def empty(cls) -> Node:
        return cls(0, [], [], [None])

    def is_empty(self) -> bool:
        """No keys and no subtree: only valid as the root of an empty tree."""
        return not self.keys and self.subs[0] is None

    def touch(self, *, keys_changed: bool = False) -> None:
        """Forget the cached encoding after a change (and the key heads if the keys changed)."""
        self.cid = None
        self.block = None
        self.fresh = False
        if keys_changed:
            self.heads = None

    def sealed(self) -> tuple[CID, bytes]:
        """The cached (CID, block); only valid once the node has been encoded or loaded."""
        if self.cid is None or self.block is None:
            raise RuntimeError("node has unencoded changes")
        return self.cid, self.block

    def encode(self) -> tuple[CID, bytes]:
        """Encode (children must already have CIDs) and cache the result."""
        if self.cid is not None and self.block is not None:
            return self.cid, self.block
        heads = self.heads
        if heads is None:
            heads = self.heads = entry_heads(self.keys)
        block = assemble_node(heads, self.vals, self.subs)
        self.cid = CID.for_dag_cbor(block)
        self.block = block
        self.fresh = True
        return self.cid, block

    @classmethod
    def from_block(cls, cid: CID, block: bytes, layer: int | None) -> Node:
        """Decode a stored node. `layer` is what its parent implies; None for the root."""
        keys, vals, subs, heads = _decode_node(block)
        if layer is None:
            if not keys and subs[0] is not None:
                raise MalformedNodeError(f"root node {cid} has no entries but a subtree")
            layer = key_height(keys[0]) if keys else 0
        elif layer < 0:
            raise MalformedNodeError(f"node {cid} sits below layer 0")
        elif not keys and subs[0] is None:
            raise MalformedNodeError(f"non-root node {cid} is empty")
        sha256, wanted_bits = hashlib.sha256, 256 - 2 * layer  # key_height, inlined: hot loop
        for key in keys:
            bits = int.from_bytes(sha256(key).digest(), "big").bit_length()
            if bits != wanted_bits and bits != wanted_bits - 1:
                raise MalformedNodeError(f"key {key!r} in node {cid} is not a layer-{layer} key")
        if layer == 0 and any(s is not None for s in subs):
            raise MalformedNodeError(f"layer-0 node {cid} links a subtree")
        node = cls(layer, keys, vals, list(subs), cid=cid, block=block)
        node.heads = heads  # re-encoding after a change below needs them: most loads do
        return node


# -- codec -------------------------------------------------------------------------------------
def _head(major: int, n: int) -> bytes:
    """A CBOR item head with the minimal-length argument."""
    if n < 24:
        return bytes((major | n,))
    if n < 0x100:
        return bytes((major | 24, n))
    if n < 0x10000:
        return bytes((major | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((major | 26,)) + n.to_bytes(4, "big")
    return bytes((major | 27,)) + n.to_bytes(8, "big")


_UINT_HEADS: Final = tuple(_head(0x00, n) for n in range(256))
_BYTES_HEADS: Final = tuple(_head(0x40, n) for n in range(256))
_ARRAY_HEADS: Final = tuple(_head(0x80, n) for n in range(256))
_LINK_HEAD_36: Final = b"\xd8\x2a\x58\x25\x00"  # tag 42, 37-byte string, multibase identity 0x00


def _link(cid: CID | None) -> bytes:
    if cid is None:
        return b"\xf6"
    raw = cid.cid_bytes
    if len(raw) == 36:
        return _LINK_HEAD_36 + raw
    return b"\xd8\x2a" + _head(0x40, len(raw) + 1) + b"\x00" + raw


def _shared_prefix(a: bytes, b: bytes) -> int:
    """`common_prefix_len` for byte strings in O(1) interpreter steps (XOR, then bit length)."""
    n = len(a) if len(a) < len(b) else len(b)
    diff = int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")
    return n - ((diff.bit_length() + 7) >> 3)


def entry_heads(keys: Sequence[bytes]) -> list[bytes]:
    """Per entry, its encoding up to its `t` value: `{"k": suffix, "p": prefix, "t":`.

    These depend on the keys alone, so a node caches them: re-encoding a node after a change
    below it (the common case on a write path) only splices in the new child link.
    """
    heads = []
    prev = b""
    for key in keys:
        p = _shared_prefix(prev, key)
        n = len(key) - p
        heads.append(
            b"\xa4\x61k"
            + (_BYTES_HEADS[n] if n < 256 else _head(0x40, n))
            + key[p:]
            + b"\x61p"
            + (_UINT_HEADS[p] if p < 256 else _head(0, p))
            + b"\x61t"
        )
        prev = key
    return heads


def assemble_node(heads: Sequence[bytes], vals: Sequence[CID], subs: Sequence[Sub]) -> bytes:
    """The node block from cached entry heads; every `Node` in `subs` must be encoded."""
    count = len(heads)
    out = bytearray(b"\xa2\x61e")
    out += _ARRAY_HEADS[count] if count < 256 else _head(0x80, count)
    for i in range(count + 1):
        if i < count:
            out += heads[i]
            sub = subs[i + 1]
        else:
            out += b"\x61l"
            sub = subs[0]
        if sub is None:
            out += b"\xf6"
        else:
            link = sub.cid if isinstance(sub, Node) else sub
            if link is None:
                raise RuntimeError("a child must be encoded before its parent")
            raw = link.cid_bytes
            if len(raw) == 36:
                out += _LINK_HEAD_36
                out += raw
            else:
                out += _link(link)
        if i < count:
            raw = vals[i].cid_bytes
            if len(raw) == 36:
                out += b"\x61v\xd8\x2a\x58\x25\x00"
                out += raw
            else:
                out += b"\x61v"
                out += _link(vals[i])
    return bytes(out)


def encode_node(keys: Sequence[bytes], vals: Sequence[CID], subs: Sequence[CID | None]) -> bytes:
    """Canonical DAG-CBOR of a node (map keys in canonical order: `e` `l`; `k` `p` `t` `v`)."""
    return assemble_node(entry_heads(keys), vals, subs)


def _node_link(value: object, what: str) -> CID | None:
    """A subtree link: null or a dag-cbor/sha-256 CID (the only form allowed between nodes)."""
    if value is None:
        return None
    if type(value) is not CID or value.cid_bytes[:4] != _DAG_CBOR_PREFIX:
        raise MalformedNodeError(f"{what} is not a dag-cbor sha-256 CID link")
    return value


def decode_node(block: bytes) -> tuple[list[bytes], list[CID], list[CID | None]]:
    """Strictly decode a node block into (keys, vals, subs); layer checks are the caller's.

    Record links may be any well-formed CID (the CID constructor validates them); they are kept
    exactly as written, never normalised.
    """
    keys, vals, subs, _heads = _decode_node(block)
    return keys, vals, subs


def _decode_node(block: bytes) -> tuple[list[bytes], list[CID], list[CID | None], list[bytes]]:
    """`decode_node` plus the entry heads (see `entry_heads`), built from the decoded prefix
    lengths and suffixes: cheaper than recomputing the prefixes when the node is re-encoded."""
    try:
        data = cbrrr.decode_dag_cbor(block, cid_ctor=CID)
    except (cbrrr.CbrrrDecodeError, ValueError, EOFError) as exc:
        raise MalformedNodeError(f"node is not canonical DAG-CBOR: {exc}") from exc
    if type(data) is not dict or data.keys() != _NODE_FIELDS:
        raise MalformedNodeError("node must be a map with exactly the fields 'e' and 'l'")
    entries = data["e"]
    if type(entries) is not list:
        raise MalformedNodeError("node field 'e' must be an array")
    keys: list[bytes] = []
    vals: list[CID] = []
    heads: list[bytes] = []
    subs: list[CID | None] = [_node_link(data["l"], "node field 'l'")]
    prev = b""
    for entry in entries:  # one pass, inlined: this loop runs for every node a tree loads
        if type(entry) is not dict or entry.keys() != _ENTRY_FIELDS:
            raise MalformedNodeError("entry must be a map with exactly the fields k, p, t, v")
        p, suffix, value = entry["p"], entry["k"], entry["v"]
        if type(p) is not int or type(suffix) is not bytes or type(value) is not CID:
            raise MalformedNodeError("entry needs an integer 'p', bytes 'k' and a link 'v'")
        if p < 0 or p > len(prev):
            raise MalformedNodeError(f"prefix length {p} exceeds the previous key")
        if p < len(prev) and suffix[:1] == prev[p : p + 1]:
            raise MalformedNodeError("prefix compression is not maximal")
        key = prev[:p] + suffix
        if prev and key <= prev:
            raise MalformedNodeError(f"keys are not strictly ascending at {key[:100]!r}")
        if len(key) > MAX_KEY_BYTES or _KEY_RE.fullmatch(key) is None:
            raise MalformedNodeError(f"invalid MST key {key[:100]!r} in node")
        keys.append(key)
        vals.append(value)
        subs.append(_node_link(entry["t"], "entry field 't'"))
        n = len(suffix)
        heads.append(
            b"\xa4\x61k"
            + (_BYTES_HEADS[n] if n < 256 else _head(0x40, n))
            + suffix
            + b"\x61p"
            + (_UINT_HEADS[p] if p < 256 else _head(0, p))
            + b"\x61t"
        )
        prev = key
    return keys, vals, subs, heads
