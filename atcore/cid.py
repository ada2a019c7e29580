"""Content identifiers: CIDv1 (any codec and multihash) and CIDv0, binary and text forms.

atproto links are CIDv1 with a sha-256 multihash and either the dag-cbor codec (records, MST nodes,
commits) or the raw codec (blobs); those are the "blessed" forms. Parsing accepts any well-formed
CIDv1 (binary, or base32 text with the `b` multibase prefix) and CIDv0 (34 binary bytes, or the
46-character base58btc `Qm...` text), because IPLD data may legitimately carry them.

`CID` subclasses cbrrr's CID so the DAG-CBOR codec constructs and emits it directly (tag 42)
without a conversion pass. Every instance is well-formed: the constructor `CID(raw)` validates,
with a fast path for the blessed 36-byte forms (the codec calls it once per decoded link, so that
path is kept to two comparisons). `CID.parse` reads text, `CID.read_from` a CID inside a buffer.

Errors: `CidError` (a `ValueError`) for every malformed input.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

import cbrrr

CODEC_RAW: Final = 0x55
CODEC_DAG_CBOR: Final = 0x71
CODEC_DAG_PB: Final = 0x70
HASH_SHA256: Final = 0x12
SHA256_SIZE: Final = 32

# A CID longer than this is not something any atproto implementation produces; refusing it
# bounds the work an attacker can cause (the reference implementation uses the same limit).
MAX_CID_BYTES: Final = 100

_PREFIX_DAG_CBOR: Final = b"\x01\x71\x12\x20"
_PREFIX_RAW: Final = b"\x01\x55\x12\x20"
_BLESSED_PREFIXES: Final = (_PREFIX_DAG_CBOR, _PREFIX_RAW)
_BLESSED_LEN: Final = 36
_V0_PREFIX: Final = b"\x12\x20"
_V0_LEN: Final = 34

_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {char: index for index, char in enumerate(_B58_ALPHABET)}
_MAX_VARINT_BYTES: Final = 9  # multiformats unsigned-varint caps values at 2**63 - 1

# RFC 4648 base32, lower case, unpadded, the multibase `b` form. The stdlib codec is pure Python
# and slow; these go through `int` (C) instead: `int(s, 32)` reads the base32hex digit set, so
# text is first translated to it, and encoding indexes a table of all 1024 two-letter pairs.
_B32_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz234567"
_B32_TO_B32HEX: Final = str.maketrans(_B32_ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_B32_TEXT: Final = re.compile("[a-z2-7]+")
_B32_PAIRS: Final = tuple(a + b for a in _B32_ALPHABET for b in _B32_ALPHABET)


class CidError(ValueError):
    """A CID could not be parsed, or is not of an accepted form."""


def read_varint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode a minimal unsigned LEB128 varint at `pos`; returns (value, next position)."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos >= len(data):
            raise CidError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index:
                raise CidError("varint is not minimally encoded")
            return value, pos
    raise CidError("varint longer than 9 bytes")


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as an unsigned LEB128 varint."""
    if value < 0:
        raise CidError("varints are unsigned")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _b58decode(text: str) -> bytes:
    num = 0
    for char in text:
        index = _B58_INDEX.get(char)
        if index is None:
            raise CidError(f"invalid base58 character {char!r}")
        num = num * 58 + index
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\x00" * pad + body


def _b58encode(raw: bytes) -> str:
    num = int.from_bytes(raw, "big")
    out: list[str] = []
    while num:
        num, rem = divmod(num, 58)
        out.append(_B58_ALPHABET[rem])
    pad = len(raw) - len(raw.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(out))


def _b32decode(text: str) -> bytes:
    """Decode canonical unpadded lower-case base32 (non-zero padding bits are refused)."""
    if not text:
        return b""
    if not _B32_TEXT.fullmatch(text):
        raise CidError("invalid base32 character in CID")
    bits = len(text) * 5
    size, pad_bits = divmod(bits, 8)
    if pad_bits >= 5:  # a whole character of padding: not a length any encoder produces
        raise CidError("invalid base32 length in CID")
    number = int(text.translate(_B32_TO_B32HEX), 32)
    if number & ((1 << pad_bits) - 1):
        raise CidError("non-canonical base32 CID (non-zero padding bits)")
    return (number >> pad_bits).to_bytes(size, "big")


def _b32encode(raw: bytes) -> str:
    chars = (len(raw) * 8 + 4) // 5
    number = int.from_bytes(raw, "big") << (chars * 5 - len(raw) * 8)
    pairs = [_B32_PAIRS[(number >> shift) & 1023] for shift in range((chars - 2) * 5, -1, -10)]
    if chars % 2:  # odd length: the last character stands alone
        pairs.append(_B32_ALPHABET[number & 31])
    return "".join(pairs)


def _cid_end(data: bytes | bytearray | memoryview, pos: int) -> int:
    """Validate the binary CID starting at `pos`; returns where it ends (no length cap here)."""
    if data[pos : pos + 4] in _BLESSED_PREFIXES and len(data) - pos >= _BLESSED_LEN:
        return pos + _BLESSED_LEN
    if data[pos : pos + 2] == _V0_PREFIX:
        if len(data) - pos < _V0_LEN:
            raise CidError("truncated CIDv0")
        return pos + _V0_LEN
    version, cursor = read_varint(data, pos)
    if version != 1:
        raise CidError(f"unsupported CID version {version}")
    _codec, cursor = read_varint(data, cursor)
    hash_code, cursor = read_varint(data, cursor)
    size, cursor = read_varint(data, cursor)
    if hash_code == HASH_SHA256 and size != SHA256_SIZE:
        raise CidError(f"sha-256 multihash with a {size}-byte digest")
    if size > len(data) - cursor:
        raise CidError("CID digest is truncated")
    return cursor + size


def _validated(raw: object) -> bytes:
    if type(raw) is not bytes:
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise CidError(f"a binary CID must be bytes, not {type(raw).__name__}")
        raw = bytes(raw)
    if not raw:
        raise CidError("empty CID")
    if len(raw) > MAX_CID_BYTES:
        raise CidError(f"CID of {len(raw)} bytes exceeds {MAX_CID_BYTES}")
    if _cid_end(raw, 0) != len(raw):
        raise CidError("CID has trailing bytes after its multihash")
    return raw


class CID(cbrrr.CID):
    """An immutable, hashable, totally ordered CID holding its binary form in `cid_bytes`."""

    __slots__ = ()

    # -- construction -------------------------------------------------------------------------
    def __init__(self, cid_bytes: bytes) -> None:
        """Wrap a complete binary CID (no multibase prefix); raises CidError when malformed."""
        if (
            type(cid_bytes) is not bytes
            or len(cid_bytes) != _BLESSED_LEN
            or cid_bytes[:4] not in _BLESSED_PREFIXES
        ):
            cid_bytes = _validated(cid_bytes)  # the rare case: any other well-formed CID
        self.cid_bytes = cid_bytes

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview) -> CID:
        """Parse and validate a complete binary CID (no multibase prefix)."""
        return cls(bytes(raw))

    @classmethod
    def read_from(cls, data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[CID, int]:
        """Parse the binary CID that starts at `data[pos]`; returns (CID, position after it)."""
        if pos >= len(data):
            raise CidError("truncated CID")
        end = _cid_end(data, pos)
        if end - pos > MAX_CID_BYTES:
            raise CidError(f"CID of {end - pos} bytes exceeds {MAX_CID_BYTES}")
        return cls(bytes(data[pos:end])), end

    @classmethod
    def parse(cls, text: str) -> CID:
        """Parse a CID string: base32 CIDv1 (`b...`) or base58btc CIDv0 (`Qm...`).

        Only the canonical spelling is accepted (lower case, no padding), so `str(CID.parse(s))`
        always equals `s`.
        """
        if not isinstance(text, str):
            raise CidError(f"a CID string must be str, not {type(text).__name__}")
        if len(text) > 2 * MAX_CID_BYTES:
            raise CidError("CID string too long")
        if text.startswith("Qm") and len(text) == 46:
            raw = _b58decode(text)
            if len(raw) != _V0_LEN or not raw.startswith(_V0_PREFIX):
                raise CidError(f"invalid CIDv0 {text!r}")
            return cls(raw)
        if not text.startswith("b"):
            raise CidError(f"unsupported CID string {text[:60]!r} (expected base32 'b...')")
        raw = _b32decode(text[1:])
        if raw.startswith(_V0_PREFIX) and len(raw) == _V0_LEN:
            raise CidError("a CIDv0 must be written in base58btc, not base32")
        return cls(raw)

    @classmethod
    def for_dag_cbor(cls, block: bytes) -> CID:
        """The CIDv1 (dag-cbor, sha-256) of an encoded DAG-CBOR block."""
        return cls(_PREFIX_DAG_CBOR + hashlib.sha256(block).digest())

    @classmethod
    def for_raw(cls, data: bytes) -> CID:
        """The CIDv1 (raw, sha-256) of arbitrary bytes, as used for blobs."""
        return cls(_PREFIX_RAW + hashlib.sha256(data).digest())

    # -- inspection ---------------------------------------------------------------------------
    def _fields(self) -> tuple[int, int, int, bytes]:
        """(version, codec, hash code, digest)."""
        raw = self.cid_bytes
        if len(raw) == _BLESSED_LEN and raw.startswith(_BLESSED_PREFIXES):
            return 1, raw[1], HASH_SHA256, raw[4:]
        if len(raw) == _V0_LEN and raw.startswith(_V0_PREFIX):
            return 0, CODEC_DAG_PB, HASH_SHA256, raw[2:]
        _version, pos = read_varint(raw, 0)
        codec, pos = read_varint(raw, pos)
        hash_code, pos = read_varint(raw, pos)
        _size, pos = read_varint(raw, pos)
        return 1, codec, hash_code, raw[pos:]

    @property
    def version(self) -> int:
        return self._fields()[0]

    @property
    def codec(self) -> int:
        return self._fields()[1]

    @property
    def hash_code(self) -> int:
        return self._fields()[2]

    @property
    def digest(self) -> bytes:
        return self._fields()[3]

    def is_atproto_blessed(self) -> bool:
        """True for the CID forms atproto repositories use (v1, sha-256, dag-cbor or raw)."""
        raw = self.cid_bytes
        return len(raw) == _BLESSED_LEN and raw.startswith(_BLESSED_PREFIXES)

    def is_dag_cbor(self) -> bool:
        """A blessed link to a DAG-CBOR node (record, MST node, commit)."""
        return len(self.cid_bytes) == _BLESSED_LEN and self.cid_bytes.startswith(_PREFIX_DAG_CBOR)

    def is_raw(self) -> bool:
        """A blessed link to raw bytes (a blob)."""
        return len(self.cid_bytes) == _BLESSED_LEN and self.cid_bytes.startswith(_PREFIX_RAW)

    def verifies(self, block: bytes | bytearray | memoryview) -> bool:
        """Whether `block` hashes to this CID; raises CidError for a hash function we lack."""
        _version, _codec, hash_code, digest = self._fields()
        if hash_code != HASH_SHA256:
            raise CidError(f"cannot verify multihash code {hash_code:#x}")
        return hashlib.sha256(block).digest() == digest

    # -- text form and ordering ----------------------------------------------------------------
    def __str__(self) -> str:
        raw = self.cid_bytes
        if len(raw) == _V0_LEN and raw.startswith(_V0_PREFIX):
            return _b58encode(raw)
        return "b" + _b32encode(raw)

    def encode(self, base: str = "base32") -> str:
        """cbrrr's text-form API; only the canonical form is produced."""
        if base != "base32":
            raise CidError(f"unsupported multibase {base!r}")
        return str(self)

    def __repr__(self) -> str:
        return f"CID({self})"

    # Ordering is by binary form: stable, cheap, and what sorted CAR/MST tooling expects.
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, cbrrr.CID):
            return NotImplemented
        return self.cid_bytes < other.cid_bytes

    def __le__(self, other: object) -> bool:
        if not isinstance(other, cbrrr.CID):
            return NotImplemented
        return self.cid_bytes <= other.cid_bytes

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, cbrrr.CID):
            return NotImplemented
        return self.cid_bytes > other.cid_bytes

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, cbrrr.CID):
            return NotImplemented
        return self.cid_bytes >= other.cid_bytes


def is_cid_string(text: str) -> bool:
    """Whether `text` is a canonical CID string (base32 CIDv1 or base58btc CIDv0)."""
    try:
        CID.parse(text)
    except CidError:
        return False
    return True
