"""Canonical DAG-CBOR for the atproto data model: a thin, strict layer over cbrrr.

cbrrr (C) already encodes canonically (length-first sorted map keys, minimal-length heads, tag 42
links) and decodes strictly, rejecting: non-minimal integers and lengths, indefinite lengths,
undefined and other simple values, half/single floats, NaN and infinities, tags other than 42,
non-string map keys, unsorted or duplicate keys, invalid UTF-8, lengths running past the buffer,
and trailing bytes. What it lets through, and this module refuses, is what atproto narrows further:

* floats of any kind (atproto has none);
* integers outside the signed 64-bit range (CBOR itself reaches -2**64 .. 2**64-1);
* malformed CIDs inside tag 42 (the `CID` constructor validates what the decoder hands it).

The float/integer walk over decoded values is skipped whenever the bytes cannot contain either:
a float always starts with the byte 0xFB, and an out-of-range integer always starts with 0x1B or
0x3B followed by a byte >= 0x80. Those byte searches run at memchr speed, so typical records
(text, no such bytes) pay almost nothing; anything else falls back to the exact walk.

Errors: `DagCborError` (a `ValueError`) for any input outside canonical atproto DAG-CBOR.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import cbrrr
from cbrrr import _cbrrr

from atcore.cid import CID, CidError

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_FLOAT64_HEAD: Final = b"\xfb"
_WIDE_INT_HEADS: Final = (b"\x1b", b"\x3b")  # 8-byte unsigned / negative integer heads

_DECODE_ERRORS: Final = (cbrrr.CbrrrDecodeError, CidError, ValueError, EOFError)


class DagCborError(ValueError):
    """Bytes are not canonical DAG-CBOR, or a value is outside the atproto data model."""


def encode(value: Any) -> bytes:
    """Encode a data-model value (dict/list/str/int/bool/None/bytes/CID) as canonical DAG-CBOR."""
    try:
        out = cbrrr.encode_dag_cbor(value, cid_type=CID)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DagCborError(f"cannot encode as DAG-CBOR: {exc}") from exc
    if may_hold_float_or_wide_int(out):
        check_numbers(value)
    return out


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one canonical DAG-CBOR object; links come back as `CID`."""
    if type(data) is not bytes:
        data = bytes(data)
    try:
        value = cbrrr.decode_dag_cbor(data, cid_ctor=CID)
    except _DECODE_ERRORS as exc:
        raise DagCborError(f"invalid DAG-CBOR: {exc}") from exc
    if may_hold_float_or_wide_int(data):
        check_numbers(value)
    return value


def decode_prefix(data: bytes | bytearray | memoryview) -> tuple[Any, int]:
    """Decode the first object of `data`; returns (value, bytes it used). Rest is not read.

    For framed streams: an event-stream frame is a header object directly followed by a body,
    and a consumer filtering on the header need not decode the body at all.
    """
    if type(data) is not bytes:
        data = bytes(data)
    try:
        # cbrrr's public API hides the consumed length; its extension function returns it.
        value, length = _cbrrr.decode_dag_cbor(data, CID, False)
    except _DECODE_ERRORS as exc:
        raise DagCborError(f"invalid DAG-CBOR: {exc}") from exc
    if may_hold_float_or_wide_int(data[:length]):
        check_numbers(value)
    return value, length


def decode_multi(data: bytes | bytearray | memoryview) -> list[Any]:
    """Decode back-to-back DAG-CBOR objects (an event-stream frame is header + body)."""
    return list(iter_decode_multi(data))


def iter_decode_multi(data: bytes | bytearray | memoryview) -> Iterator[Any]:
    """Lazily decode back-to-back objects, so a caller can stop after the first (the header)."""
    if type(data) is not bytes:
        data = bytes(data)
    suspicious = may_hold_float_or_wide_int(data)
    values = cbrrr.decode_multi_dag_cbor_in_violation_of_the_spec(data, cid_ctor=CID)
    while True:
        try:
            value = next(values)
        except StopIteration:
            return
        except _DECODE_ERRORS as exc:
            raise DagCborError(f"invalid DAG-CBOR: {exc}") from exc
        if suspicious:
            check_numbers(value)
        yield value


def cid_of(value: Any) -> tuple[CID, bytes]:
    """Encode a value and return (its dag-cbor CID, its block bytes)."""
    block = encode(value)
    return CID.for_dag_cbor(block), block


def may_hold_float_or_wide_int(data: bytes) -> bool:
    """False only when the encoding provably holds no float and no integer outside int64.

    Conservative: True may be a false alarm (the byte sat inside a string, bytes or CID), which
    only costs the exact walk.
    """
    if _FLOAT64_HEAD in data:
        return True
    for head in _WIDE_INT_HEADS:
        pos = data.find(head)
        while pos >= 0:
            if pos + 1 < len(data) and data[pos + 1] >= 0x80:
                return True
            pos = data.find(head, pos + 1)
    return False


def check_numbers(value: Any) -> None:
    """Reject floats and integers outside int64 anywhere in a decoded/encodable value."""
    # The stack holds iterables of children (dict value views, lists) so that popping needs no
    # type dispatch; this loop is the whole cost of a strict decode beyond cbrrr's own.
    stack: list[Any] = [(value,)]
    push = stack.append
    pop = stack.pop
    while stack:
        for child in pop():
            child_type = type(child)
            if child_type is dict:
                push(child.values())
            elif child_type is list:
                push(child)
            elif child_type is int:
                if not INT64_MIN <= child <= INT64_MAX:
                    raise DagCborError(f"integer {child} is outside the signed 64-bit range")
            elif child_type is float:
                raise DagCborError("floats are not allowed in the atproto data model")
