"""Content identifiers (CIDv1; CIDv0 parsed for completeness).

atproto uses CIDv1 with the sha-256 multihash and either the dag-cbor codec (records, MST nodes,
commits) or the raw codec (blobs). `CID` subclasses cbrrr's CID so the DAG-CBOR codec can construct
and emit it directly (tag 42) without a conversion pass.

Errors: `CidError` (a `ValueError`) for every malformed input.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

import cbrrr

CODEC_RAW: Final = 0x55
CODEC_DAG_CBOR: Final = 0x71
CODEC_DAG_PB: Final = 0x70
HASH_SHA256: Final = 0x12

_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class CidError(ValueError):
    """A CID could not be parsed."""


def read_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """Decode an unsigned LEB128 varint at `pos`; returns (value, next position)."""
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise CidError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and shift:
                raise CidError("varint is not minimally encoded")
            return value, pos
        shift += 7
        if shift > 63:
            raise CidError("varint too long")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _b58decode(text: str) -> bytes:
    num = 0
    for char in text:
        idx = _B58_ALPHABET.find(char)
        if idx < 0:
            raise CidError(f"invalid base58 character {char!r}")
        num = num * 58 + idx
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\x00" * pad + body


class CID(cbrrr.CID):
    """An immutable, hashable CID holding its binary form in `cid_bytes`."""

    __slots__ = ()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, raw: bytes) -> CID:
        """Parse and validate a binary CID (no multibase prefix)."""
        cls._split(raw)
        return cls(bytes(raw))

    @classmethod
    def parse(cls, text: str) -> CID:
        """Parse a CID string: base32 multibase CIDv1 (`b...`) or base58btc CIDv0 (`Qm...`)."""
        if len(text) == 46 and text.startswith("Qm"):
            return cls.from_bytes(_b58decode(text))
        if not text.startswith("b") or text != text.lower() or text.endswith("="):
            raise CidError(f"unsupported CID string {text[:60]!r}")
        body = text[1:]
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except ValueError as exc:
            raise CidError(f"invalid base32 in CID {text[:60]!r}") from exc
        return cls.from_bytes(raw)

    @classmethod
    def for_dag_cbor(cls, block: bytes) -> CID:
        return cls(cls.CIDV1_DAG_CBOR_SHA256_32_PFX + hashlib.sha256(block).digest())

    @classmethod
    def for_raw(cls, data: bytes) -> CID:
        return cls(cls.CIDV1_RAW_SHA256_32_PFX + hashlib.sha256(data).digest())

    # -- inspection ---------------------------------------------------------------------------
    @staticmethod
    def _split(raw: bytes) -> tuple[int, int, int, bytes]:
        """Return (version, codec, hash code, digest); raises CidError when malformed."""
        if len(raw) == 34 and raw[0] == 0x12 and raw[1] == 0x20:
            return 0, CODEC_DAG_PB, HASH_SHA256, raw[2:]
        version, pos = read_varint(raw, 0)
        if version != 1:
            raise CidError(f"unsupported CID version {version}")
        codec, pos = read_varint(raw, pos)
        hash_code, pos = read_varint(raw, pos)
        size, pos = read_varint(raw, pos)
        digest = raw[pos:]
        if len(digest) != size:
            raise CidError("CID digest length does not match its multihash header")
        return version, codec, hash_code, digest

    @property
    def version(self) -> int:
        return self._split(self.cid_bytes)[0]

    @property
    def codec(self) -> int:
        return self._split(self.cid_bytes)[1]

    @property
    def hash_code(self) -> int:
        return self._split(self.cid_bytes)[2]

    @property
    def digest(self) -> bytes:
        return self._split(self.cid_bytes)[3]

    def is_atproto_blessed(self) -> bool:
        """True for the CID forms atproto repositories use (v1, sha-256, dag-cbor or raw)."""
        return self.is_cidv1_dag_cbor_sha256_32() or self.is_cidv1_raw_sha256_32()

    def __str__(self) -> str:
        if self.cid_bytes[:2] == b"\x12\x20" and len(self.cid_bytes) == 34:
            return self._b58encode(self.cid_bytes)
        return "b" + base64.b32encode(self.cid_bytes).decode().lower().rstrip("=")

    def __repr__(self) -> str:
        return f"CID({self})"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, cbrrr.CID):
            return NotImplemented
        return self.cid_bytes < other.cid_bytes

    @staticmethod
    def _b58encode(raw: bytes) -> str:
        num = int.from_bytes(raw, "big")
        out = ""
        while num:
            num, rem = divmod(num, 58)
            out = _B58_ALPHABET[rem] + out
        pad = len(raw) - len(raw.lstrip(b"\x00"))
        return "1" * pad + out
