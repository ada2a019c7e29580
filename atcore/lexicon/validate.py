"""Validators for the concrete types: boolean, integer, string, bytes, cid-link, blob, unknown.

A validator is a closure built once per schema definition (`Validator`): it takes a data-model value
(`CID` links, `bytes`, blob dicts with a `CID` ref) and returns it, or raises `ValidationError` with
the reason only; containers (see `compose`) add the path segments. Constraints are read out of the
definition when the closure is built, so validating never looks at the schema again.

Blobs: the typed form `{"$type": "blob", "ref": CID, "mimeType": str, "size": int}` (size positive,
as the data-model spec requires), and the deprecated legacy form `{"cid": str, "mimeType": str}`,
which the data-model spec says must still be read (it has no size, so `maxSize` cannot apply).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from atcore.cid import CID
from atcore.lexicon.errors import ValidationError
from atcore.lexicon.formats import (
    FORMATS,
    MimeAccept,
    grapheme_problem,
    length_problem,
)
from atcore.lexicon.schema import (
    BlobDef,
    BooleanDef,
    BytesDef,
    IntegerDef,
    StringDef,
)
from atcore.syntax import is_valid_cid_string

Validator = Callable[[Any], Any]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_UNKNOWN_DEPTH: Final = 128

_BLOB_KEYS: Final = frozenset({"$type", "ref", "mimeType", "size"})
_LEGACY_BLOB_KEYS: Final = frozenset({"cid", "mimeType"})


def boolean_validator(definition: BooleanDef) -> Validator:
    const = definition.const

    def validate_boolean(value: Any) -> Any:
        if type(value) is not bool:
            raise ValidationError("must be a boolean")
        if const is not None and value is not const:
            raise ValidationError(f"must be {str(const).lower()}")
        return value

    return validate_boolean


def integer_validator(definition: IntegerDef) -> Validator:
    const, minimum, maximum = definition.const, definition.minimum, definition.maximum
    enum = frozenset(definition.enum) if definition.enum is not None else None
    enum_text = "|".join(str(v) for v in definition.enum or ())

    def validate_integer(value: Any) -> Any:
        # `type(...) is int` keeps out bool (an int subclass) and floats such as 1.0.
        if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
            raise ValidationError("must be an integer")
        if const is not None and value != const:
            raise ValidationError(f"must be {const}")
        if enum is not None and value not in enum:
            raise ValidationError(f"must be one of ({enum_text})")
        if maximum is not None and value > maximum:
            raise ValidationError(f"can not be greater than {maximum}")
        if minimum is not None and value < minimum:
            raise ValidationError(f"can not be less than {minimum}")
        return value

    return validate_integer


def string_validator(definition: StringDef) -> Validator:
    const = definition.const
    enum = frozenset(definition.enum) if definition.enum is not None else None
    enum_text = "|".join(definition.enum or ())
    min_length, max_length = definition.min_length, definition.max_length
    min_graphemes, max_graphemes = definition.min_graphemes, definition.max_graphemes
    check_length = min_length is not None or max_length is not None
    check_graphemes = min_graphemes is not None or max_graphemes is not None
    check_format, format_noun = FORMATS[definition.format] if definition.format else (None, "")

    def validate_string(value: Any) -> Any:
        if type(value) is not str:
            raise ValidationError("must be a string")
        if const is not None and value != const:
            raise ValidationError(f'must be "{const}"')
        if enum is not None and value not in enum:
            raise ValidationError(f"must be one of ({enum_text})")
        if check_length and (problem := length_problem(value, min_length, max_length)):
            raise ValidationError(problem)
        if check_graphemes and (problem := grapheme_problem(value, min_graphemes, max_graphemes)):
            raise ValidationError(problem)
        if check_format is not None and not check_format(value):
            raise ValidationError(f"must be {format_noun}")
        return value

    return validate_string


def bytes_validator(definition: BytesDef) -> Validator:
    min_length, max_length = definition.min_length, definition.max_length

    def validate_bytes(value: Any) -> Any:
        if type(value) is not bytes:
            raise ValidationError("must be bytes")
        if max_length is not None and len(value) > max_length:
            raise ValidationError(f"must not be larger than {max_length} bytes")
        if min_length is not None and len(value) < min_length:
            raise ValidationError(f"must not be smaller than {min_length} bytes")
        return value

    return validate_bytes


def validate_cid_link(value: Any) -> Any:
    if not isinstance(value, CID):
        raise ValidationError("must be a CID link")
    return value


def blob_validator(definition: BlobDef) -> Validator:
    accept = MimeAccept(definition.accept) if definition.accept is not None else None
    accept_text = ", ".join(definition.accept or ())
    max_size = definition.max_size

    def validate_blob(value: Any) -> Any:
        size = blob_size(value)  # raises unless `value` is a well-formed blob
        if accept is not None and not accept.accepts(value["mimeType"]):
            raise ValidationError(
                f'has mimeType "{value["mimeType"]}", which is not accepted ({accept_text})'
            )
        if max_size is not None and size is not None and size > max_size:
            raise ValidationError(f"is {size} bytes, larger than the {max_size} allowed")
        return value

    return validate_blob


def blob_size(value: Any) -> int | None:
    """Size of a well-formed blob reference (None for the legacy form); raises if malformed."""
    if isinstance(value, dict):
        if value.get("$type") == "blob":
            if value.keys() == _BLOB_KEYS:
                size, mime = value["size"], value["mimeType"]
                if (
                    isinstance(value["ref"], CID)
                    and type(mime) is str
                    and mime
                    and type(size) is int
                    and size > 0
                ):
                    return size
            raise ValidationError(
                "must be a blob: $type blob, a CID link ref, a mimeType and a positive size"
            )
        if value.keys() == _LEGACY_BLOB_KEYS:
            cid, mime = value["cid"], value["mimeType"]
            if type(cid) is str and is_valid_cid_string(cid) and type(mime) is str and mime:
                return None
    raise ValidationError("must be a blob")


def validate_unknown(value: Any) -> Any:
    """Any object, but not a blob, with data-model-valid contents (no floats, sound blobs)."""
    if not isinstance(value, dict):
        raise ValidationError("must be an object")
    if value.get("$type") == "blob":
        raise ValidationError("must be an object, not a blob")
    if "$type" in value and type(value["$type"]) is not str:
        raise ValidationError("must have a string $type")
    _check_data_model(value, MAX_UNKNOWN_DEPTH)
    return value


def _check_data_model(value: Any, depth: int) -> None:
    if depth <= 0:
        raise ValidationError("is nested too deeply")
    if isinstance(value, dict):
        if value.get("$type") == "blob":
            blob_size(value)
            return
        for key, item in value.items():
            if type(key) is not str:
                raise ValidationError("must only have string keys")
            _check_item(item, key, depth)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_item(item, index, depth)
    elif type(value) is float:
        raise ValidationError("must not be a float (the atproto data model has no floats)")
    elif type(value) is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValidationError("must be a 64-bit integer")
    elif not isinstance(value, str | bool | bytes | CID) and value is not None:
        raise ValidationError(f"is a {type(value).__name__}, not an atproto data-model value")


def _check_item(item: Any, segment: str | int, depth: int) -> None:
    try:
        _check_data_model(item, depth - 1)
    except ValidationError as exc:
        exc.within(segment)
        raise
