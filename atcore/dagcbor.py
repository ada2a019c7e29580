"""Canonical DAG-CBOR for the atproto data model (thin, strict layer over cbrrr).

cbrrr emits canonical DAG-CBOR (length-first sorted map keys, minimal integers, tag 42 links) and
decodes strictly; this module pins the CID type to `atcore.cid.CID` and adds the data-model rules
cbrrr does not enforce: no floats anywhere, string map keys only.

Errors: `DagCborError` (a `ValueError`) for any value outside the atproto data model.
"""

from __future__ import annotations

from typing import Any

import cbrrr

from atcore.cid import CID


class DagCborError(ValueError):
    """Bytes are not canonical DAG-CBOR, or a value is outside the atproto data model."""


def encode(value: Any) -> bytes:
    """Encode a data-model value (dict/list/str/int/bool/None/bytes/CID) as canonical DAG-CBOR."""
    _reject_floats(value)
    try:
        return bytes(cbrrr.encode_dag_cbor(value, cid_type=CID))
    except (TypeError, ValueError, OverflowError) as exc:
        raise DagCborError(str(exc)) from exc


def decode(data: bytes) -> Any:
    """Decode one canonical DAG-CBOR object; links come back as `CID`."""
    try:
        value = cbrrr.decode_dag_cbor(data, cid_ctor=CID)
    except (cbrrr.CbrrrDecodeError, ValueError, EOFError) as exc:
        raise DagCborError(str(exc)) from exc
    _reject_floats(value)
    return value


def cid_of(value: Any) -> tuple[CID, bytes]:
    """Encode a value and return (its dag-cbor CID, its block bytes)."""
    block = encode(value)
    return CID.for_dag_cbor(block), block


def _reject_floats(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            raise DagCborError("floats are not allowed in the atproto data model")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
