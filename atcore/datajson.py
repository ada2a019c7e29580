"""The atproto JSON form of the data model, and typed blob references.

JSON and the data model differ in three places: links are `{"$link": "<cid>"}`, byte strings are
`{"$bytes": "<base64>"}` (RFC 4648 standard alphabet, padding optional), and JSON has one number
type where the data model has only integers. `json_to_data` converts JSON as parsed by `json.loads`
into data-model values (`CID`, `bytes`, `int`, ...) and enforces the data-model rules strictly, as
the reference implementation does on write paths:

* `$link` / `$bytes` objects must have exactly that one key, a string value, and a valid CID /
  base64 payload;
* any object with a `$type` must have a non-empty string there; `$type: "blob"` objects must be
  well-formed blob references (a CID link `ref`, `mimeType` with a '/', integer `size` >= 0, no
  other keys);
* numbers must be integers in the signed 64-bit range; a float with an integral value (`123.0`)
  is the same JSON number as `123` and is accepted as such, any other float is refused;
* nesting depth, container length and key length stay within the recommended data limits.

`data_to_json` is the inverse. It refuses maps whose keys are exactly `$link` or `$bytes`, since
those could not be read back unambiguously. `block_to_json` goes from a DAG-CBOR block straight to
the JSON form (the read path of getRecord/listRecords), in C whenever that is provably equivalent.

Errors: `DataModelError` (a `ValueError`) for every JSON value or blob reference outside the model.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import cbrrr

from atcore import dagcbor
from atcore.cid import CID, CidError

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
# Recommended atproto data limits (nesting levels below the top-level container, container
# length, UTF-8 bytes per object key), as enforced by the reference implementation's strict mode.
MAX_DEPTH: Final = 32
MAX_CONTAINER_LEN: Final = 128 * 1024
MAX_KEY_BYTES: Final = 8192
# Output conversion is applied to data we already hold; it only guards against runaway recursion.
MAX_OUTPUT_DEPTH: Final = 256

# A blessed link as canonical DAG-CBOR writes it: tag 42, 37-byte string, 0x00, CIDv1 prefix.
_TAG_42: Final = b"\xd8\x2a"
_BLESSED_LINK_HEADS: Final = (
    b"\xd8\x2a\x58\x25\x00\x01\x71\x12\x20",
    b"\xd8\x2a\x58\x25\x00\x01\x55\x12\x20",
)

_LINK: Final = "$link"
_BYTES: Final = "$bytes"
_TYPE: Final = "$type"
_BLOB_KEYS: Final = frozenset({"$type", "ref", "mimeType", "size"})
_LEGACY_BLOB_KEYS: Final = frozenset({"cid", "mimeType"})


class DataModelError(ValueError):
    """A JSON value or blob reference does not fit the atproto data model."""


# -- JSON -> data model -----------------------------------------------------------------------


def json_to_data(obj: Any, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Convert a JSON object (a record, a node) into a data-model map; the top level must be one."""
    if type(obj) is not dict:
        raise DataModelError(f"expected a JSON object at the top level, got {type(obj).__name__}")
    value = _from_json(obj, 0, max_depth)
    assert type(value) is dict  # an object converts to a map unless it is $link/$bytes
    return value


def json_value_to_data(obj: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """Convert any JSON value (not only an object) into a data-model value."""
    return _from_json(obj, 0, max_depth)


def _from_json(obj: Any, depth: int, max_depth: int) -> Any:
    kind = type(obj)
    if kind is str or kind is bool or obj is None:
        return obj
    if kind is int:
        return _checked_int(obj)
    if kind is float:
        if obj.is_integer():  # also False for NaN and infinities
            return _checked_int(int(obj))
        raise DataModelError(f"floats are not allowed in the atproto data model ({obj!r})")
    if depth > max_depth:
        raise DataModelError(f"nested deeper than {max_depth} levels")
    if kind is list:
        if len(obj) > MAX_CONTAINER_LEN:
            raise DataModelError(f"array of {len(obj)} items exceeds {MAX_CONTAINER_LEN}")
        # Plain loops, not comprehensions: a comprehension costs a second stack frame per level.
        items = []
        for item in obj:
            items.append(_from_json(item, depth + 1, max_depth))
        return items
    if kind is dict:
        return _object_from_json(obj, depth, max_depth)
    raise DataModelError(f"{kind.__name__} is not a JSON value")


def _checked_int(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise DataModelError(f"integer {value} is outside the signed 64-bit range")
    return value


def _object_from_json(obj: dict[Any, Any], depth: int, max_depth: int) -> Any:
    if _LINK in obj:
        return _link_from_json(obj)
    if _BYTES in obj:
        return _bytes_from_json(obj)
    if len(obj) > MAX_CONTAINER_LEN:
        raise DataModelError(f"object of {len(obj)} keys exceeds {MAX_CONTAINER_LEN}")
    out: dict[str, Any] = {}
    for key, item in obj.items():
        _check_key(key)
        out[key] = _from_json(item, depth + 1, max_depth)
    if _TYPE in out:
        type_name = out[_TYPE]
        if type(type_name) is not str or not type_name:
            raise DataModelError(f"$type must be a non-empty string, got {type_name!r}")
        if type_name == "blob":
            BlobRef.from_data(out)  # validates the shape; the map itself is the data-model form
    return out


def _check_key(key: Any) -> None:
    if type(key) is not str:
        raise DataModelError(f"object keys must be strings, got {type(key).__name__}")
    # A character is at most 4 UTF-8 bytes, so only long keys need the exact (encoding) check.
    if len(key) * 4 > MAX_KEY_BYTES and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise DataModelError(f"object key longer than {MAX_KEY_BYTES} UTF-8 bytes")


def _link_from_json(obj: dict[Any, Any]) -> CID:
    text = obj[_LINK]
    if len(obj) != 1:
        raise DataModelError("a $link object must have no other keys")
    if type(text) is not str:
        raise DataModelError(f"$link must be a string, got {type(text).__name__}")
    try:
        return CID.parse(text)
    except CidError as exc:
        raise DataModelError(f"invalid $link: {exc}") from exc


def _bytes_from_json(obj: dict[Any, Any]) -> bytes:
    text = obj[_BYTES]
    if len(obj) != 1:
        raise DataModelError("a $bytes object must have no other keys")
    if type(text) is not str:
        raise DataModelError(f"$bytes must be a string, got {type(text).__name__}")
    return decode_base64(text)


def decode_base64(text: str) -> bytes:
    """Standard-alphabet base64 with optional padding (the `$bytes` encoding)."""
    if not text.endswith("="):
        text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DataModelError(f"invalid base64 in $bytes: {exc}") from exc


def encode_base64(data: bytes) -> str:
    """Unpadded standard base64, the form the reference implementation emits."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


# -- data model -> JSON -----------------------------------------------------------------------


def data_to_json(value: Any, *, max_depth: int = MAX_OUTPUT_DEPTH) -> Any:
    """Convert a data-model value into its JSON form (ready for `json.dumps`)."""
    return _to_json(value, 0, max_depth)


def _to_json(value: Any, depth: int, max_depth: int) -> Any:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return _checked_int(value)
    if depth > max_depth:
        raise DataModelError(f"nested deeper than {max_depth} levels")
    if kind is dict:
        if _LINK in value or _BYTES in value:
            raise DataModelError("a map with a $link or $bytes key has no JSON form")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise DataModelError(f"map keys must be strings, got {type(key).__name__}")
            out[key] = _to_json(item, depth + 1, max_depth)
        return out
    if kind is list:
        items = []
        for item in value:
            items.append(_to_json(item, depth + 1, max_depth))
        return items
    if kind is CID:
        return {_LINK: str(value)}
    if kind is bytes:
        return {_BYTES: encode_base64(value)}
    raise DataModelError(f"{kind.__name__} is not a data-model value")


def block_to_json(block: bytes) -> Any:
    """Decode a DAG-CBOR block straight into its JSON form (what getRecord serves).

    Same result and strictness as `data_to_json(dagcbor.decode(block))`, several times faster:
    when every link in the block is provably a blessed CID (each tag-42 byte pair is followed by
    a blessed CID head, so no link needs the general CID parser), cbrrr builds the JSON form in C
    (`atjson_mode`, which itself refuses floats and `$link`/`$bytes` map keys) and only the
    int64 check remains. Anything else, including every error, takes the exact path, so errors
    are reported identically: `DagCborError` for bad bytes, `DataModelError` for no JSON form.
    """
    if type(block) is not bytes:
        block = bytes(block)
    tags = block.count(_TAG_42)
    if not tags or tags == sum(block.count(head) for head in _BLESSED_LINK_HEADS):
        try:
            obj = cbrrr.decode_dag_cbor(block, atjson_mode=True)
        except ValueError:
            pass  # let the exact path produce the precise error
        else:
            if dagcbor.may_hold_float_or_wide_int(block):
                dagcbor.check_numbers(obj)
            return obj
    return data_to_json(dagcbor.decode(block))


# -- blob references --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A reference to a blob: its raw CID, MIME type and size in bytes.

    Legacy references (`{"cid": "<string>", "mimeType": ...}`, no size) can be read; they carry
    `size == LEGACY_SIZE` and refuse to be written back, as the spec requires.
    """

    ref: CID
    mime_type: str
    size: int

    LEGACY_SIZE: ClassVar[int] = -1

    @property
    def is_legacy(self) -> bool:
        return self.size == self.LEGACY_SIZE

    @classmethod
    def from_data(cls, value: Any) -> BlobRef:
        """Parse a data-model blob map (with a CID `ref`) or the legacy form."""
        if type(value) is not dict:
            raise DataModelError(f"a blob reference must be a map, got {type(value).__name__}")
        if value.get(_TYPE) == "blob":
            return cls._typed(value)
        if value.keys() == _LEGACY_BLOB_KEYS:
            return cls._legacy(value)
        raise DataModelError("not a blob reference ($type is not 'blob')")

    @classmethod
    def from_json(cls, obj: Any) -> BlobRef:
        """Parse the JSON form (`ref` as a `$link` object), or the legacy form."""
        return cls.from_data(json_value_to_data(obj))

    @classmethod
    def _typed(cls, value: dict[str, Any]) -> BlobRef:
        if value.keys() != _BLOB_KEYS:
            missing = sorted(_BLOB_KEYS - value.keys())
            extra = sorted(value.keys() - _BLOB_KEYS)
            raise DataModelError(f"blob keys: missing {missing}, unexpected {extra}")
        ref, mime_type, size = value["ref"], value["mimeType"], value["size"]
        # The spec describes `ref` as a raw-codec CID, but the official interop fixtures include
        # valid records whose blob refs use the dag-cbor codec, so any valid link is accepted.
        if type(ref) is not CID:
            raise DataModelError("blob ref must be a CID link")
        if type(mime_type) is not str or "/" not in mime_type:
            raise DataModelError(f"blob mimeType must be a MIME type string, got {mime_type!r}")
        if type(size) is not int or not 0 <= size <= INT64_MAX:
            raise DataModelError(f"blob size must be a non-negative integer, got {size!r}")
        return cls(ref, mime_type, size)

    @classmethod
    def _legacy(cls, value: dict[str, Any]) -> BlobRef:
        cid_text, mime_type = value["cid"], value["mimeType"]
        if type(cid_text) is not str or type(mime_type) is not str or not mime_type:
            raise DataModelError("legacy blob needs a string cid and a non-empty mimeType")
        try:
            ref = CID.parse(cid_text)
        except CidError as exc:
            raise DataModelError(f"legacy blob cid: {exc}") from exc
        return cls(ref, mime_type, cls.LEGACY_SIZE)

    def to_data(self) -> dict[str, Any]:
        """The data-model map (always the current, typed form)."""
        if self.is_legacy:
            raise DataModelError("legacy blob references must not be written; re-upload the blob")
        return {"$type": "blob", "ref": self.ref, "mimeType": self.mime_type, "size": self.size}

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as served over XRPC."""
        data: dict[str, Any] = data_to_json(self.to_data())
        return data


def iter_blob_refs(value: Any, *, include_legacy: bool = False) -> Iterator[BlobRef]:
    """Every blob reference inside a data-model value, depth first in document order.

    Maps that look like blobs but are malformed are skipped rather than raised: this is for
    discovering references (e.g. which blobs a record pins), not for validation.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is list:
            stack.extend(reversed(item))
        elif type(item) is dict:
            if item.get(_TYPE) == "blob" or (include_legacy and item.keys() == _LEGACY_BLOB_KEYS):
                blob = _blob_or_none(item)
                if blob is not None:
                    yield blob
                continue
            stack.extend(reversed(list(item.values())))


def _blob_or_none(value: dict[str, Any]) -> BlobRef | None:
    try:
        return BlobRef.from_data(value)
    except DataModelError:
        return None
