"""Validators for containers and references: array, object, ref, union, record.

References are linked lazily through a `Linker` (the catalog): the first value that reaches a `ref`
or a union variant looks its target up once and keeps the compiled validator, so documents may
reference each other in any order and recursive schemas (a thread view holding thread views) work.

Unions: data must be an object with a string `$type`. A `$type` listed in `refs` is validated
against that variant; `nsid` and `nsid#main` both name a main definition (the reference
implementation accepts both; the spec asks writers for the bare form). An unlisted `$type` is an
error in a closed union and accepted unvalidated in an open one (newer schema revisions may add
variants) as long as it is a well-formed `nsid` or `nsid#name`.

Validators return the value, with `default`s filled in where a property is missing; the input is
never mutated (a container is shallow-copied only when a default was applied beneath it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from atcore.lexicon.errors import ValidationError
from atcore.lexicon.fields import def_name_ok
from atcore.lexicon.schema import (
    ArrayDef,
    BlobDef,
    BooleanDef,
    BytesDef,
    CidLinkDef,
    FieldDef,
    IntegerDef,
    ObjectDef,
    RecordDef,
    RefDef,
    StringDef,
    UnionDef,
    UnknownDef,
    short_ref,
)
from atcore.lexicon.validate import (
    Validator,
    blob_validator,
    boolean_validator,
    bytes_validator,
    integer_validator,
    string_validator,
    validate_cid_link,
    validate_unknown,
)
from atcore.syntax import is_valid_nsid

MISSING: Final[Any] = object()
_NEEDS_TYPE: Final = 'must be an object which includes the "$type" property'


class Linker(Protocol):
    """Looks up the compiled validator a reference points at (raises `LexiconError` if none)."""

    def ref_target(self, ref: str) -> Validator:
        """Validator for a value of the definition `ref` (records include their `$type` check)."""
        ...

    def variant_target(self, ref: str) -> Validator:
        """Validator for a union variant (an object or record whose `$type` already matched)."""
        ...


def compile_field(definition: FieldDef, linker: Linker) -> Validator:
    """The validator for a property, array item or body schema."""
    match definition:
        case BooleanDef():
            return boolean_validator(definition)
        case IntegerDef():
            return integer_validator(definition)
        case StringDef():
            return string_validator(definition)
        case BytesDef():
            return bytes_validator(definition)
        case CidLinkDef():
            return validate_cid_link
        case BlobDef():
            return blob_validator(definition)
        case UnknownDef():
            return validate_unknown
        case RefDef():
            return _lazy(linker.ref_target, definition.ref)
        case UnionDef():
            return union_validator(definition, linker)
        case ArrayDef():
            return array_validator(definition, linker)
        case ObjectDef():
            return object_validator(definition, linker)


def default_of(definition: FieldDef) -> Any:
    """The schema default of a property, or MISSING."""
    if (
        isinstance(definition, BooleanDef | IntegerDef | StringDef)
        and definition.default is not None
    ):
        return definition.default
    return MISSING


def array_validator(definition: ArrayDef, linker: Linker) -> Validator:
    check_item = compile_field(definition.items, linker)
    min_length, max_length = definition.min_length, definition.max_length

    def validate_array(value: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("must be an array")
        if max_length is not None and len(value) > max_length:
            raise ValidationError(f"must not have more than {max_length} elements")
        if min_length is not None and len(value) < min_length:
            raise ValidationError(f"must not have fewer than {min_length} elements")
        result = value
        for index, item in enumerate(value):
            try:
                checked = check_item(item)
            except ValidationError as exc:
                exc.within(index)
                raise
            if checked is not item:
                if result is value:
                    result = list(value)
                result[index] = checked
        return result

    return validate_array


def object_validator(definition: ObjectDef, linker: Linker) -> Validator:
    required = definition.required
    nullable = frozenset(definition.nullable)
    fields = {
        name: (compile_field(prop, linker), name in nullable)
        for name, prop in definition.properties.items()
    }
    defaults = tuple(
        (name, default)
        for name, prop in definition.properties.items()
        if (default := default_of(prop)) is not MISSING
    )

    def validate_object(value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError("must be an object")
        for name in required:
            if name not in value:
                raise ValidationError(f'must have the property "{name}"')
        result = value
        # Walk the data rather than the schema: records set few of their optional properties.
        for name, item in value.items():
            field = fields.get(name)
            if field is None:
                continue  # undeclared fields are ignored, as the spec asks
            check, is_nullable = field
            if item is None and is_nullable:
                continue
            # A null that is not allowed reaches the field's validator, whose type error
            # ("must be a string") is the right message.
            try:
                checked = check(item)
            except ValidationError as exc:
                exc.within(name)
                raise
            if checked is not item:
                if result is value:
                    result = dict(value)
                result[name] = checked
        for name, default in defaults:
            if name not in value:
                if result is value:
                    result = dict(value)
                result[name] = default
        return result

    return validate_object


def union_validator(definition: UnionDef, linker: Linker) -> Validator:
    variants: dict[str, Validator] = {}
    for ref in definition.refs:
        check = _lazy(linker.variant_target, ref)
        variants[ref] = check
        variants[short_ref(ref)] = check
    closed = definition.closed
    listing = ", ".join(short_ref(ref) for ref in definition.refs)

    def validate_union(value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(_NEEDS_TYPE)
        type_name = value.get("$type")
        if type(type_name) is not str:
            raise ValidationError(_NEEDS_TYPE)
        check = variants.get(type_name)
        if check is not None:
            return check(value)
        if closed:
            raise ValidationError(f'has $type "{type_name}", which is not one of: {listing}')
        if not type_reference_ok(type_name):
            raise ValidationError(f'has $type "{type_name}", which is not an NSID reference')
        return value

    return validate_union


def record_validator(
    nsid: str, definition: RecordDef, linker: Linker
) -> tuple[Validator, Validator]:
    """(validator of a whole record including its `$type`, validator of its fields only)."""
    check_body = object_validator(definition.record, linker)

    def validate_record(value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError("must be an object")
        type_name = value.get("$type")
        if type_name != nsid:
            reason = f'must be "{nsid}"' if isinstance(type_name, str) else "must be a string"
            raise ValidationError(reason, ["$type"])
        return check_body(value)

    return validate_record, check_body


def type_reference_ok(type_name: str) -> bool:
    """`nsid` or `nsid#name`, as data writes `$type`."""
    nsid, hash_mark, name = type_name.partition("#")
    return is_valid_nsid(nsid) and (not hash_mark or def_name_ok(name))


def _lazy(resolve: Callable[[str], Validator], ref: str) -> Validator:
    """A validator that resolves `ref` on first use and delegates to its target afterwards."""
    target: Validator | None = None

    def validate_reference(value: Any) -> Any:
        nonlocal target
        if target is None:
            target = resolve(ref)
        return target(value)

    return validate_reference
