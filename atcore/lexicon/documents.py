"""Parse a lexicon document (a JSON object) into the typed model, enforcing the language rules.

Rules enforced beyond plain types (Lexicon spec, version 1):

* `lexicon` is the integer 1, `id` a valid NSID, `defs` a non-empty map of named definitions.
* Only `main` may be a primary type (record, query, procedure, subscription, permission-set); a
  named definition is never a ref, union, unknown, params or permission.
* Each schema object may only carry the fields its type defines (unknown fields are typos).
* Constraints are consistent: minimum <= maximum, min lengths <= max lengths, lengths >= 0, a
  `default`/`const` satisfies its own definition, `const` and `default` are mutually exclusive.
* `required` and `nullable` name declared properties; record `key` is `tid`, `nsid`, `any` or
  `literal:<record-key>`; blob `accept` entries are MIME types or `type/*`/`*/*` globs; a closed
  union lists at least one ref; refs are `#name`, `nsid` or `nsid#name` (stored canonically).

Whether refs point at existing definitions of a suitable type can only be known once every document
is loaded: see `Catalog.reference_problems`.

Errors: `InvalidLexiconDocument`, its message naming the document and the offending location.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from atcore.lexicon.errors import InvalidLexiconDocument
from atcore.lexicon.fields import (
    MAIN_ONLY_TYPES,
    FieldReader,
    SchemaProblem,
    canonical_ref,
    check_default_and_const,
    check_names_declared,
    check_range,
    def_name_ok,
    mime_pattern_ok,
    type_of,
)
from atcore.lexicon.primaries import PrimaryParser
from atcore.lexicon.schema import (
    STRING_FORMATS,
    ArrayDef,
    BlobDef,
    BooleanDef,
    BytesDef,
    CidLinkDef,
    FieldDef,
    IntegerDef,
    LexiconDoc,
    NamedDef,
    ObjectDef,
    RefDef,
    StringDef,
    TokenDef,
    UnionDef,
    UnknownDef,
)
from atcore.lexicon.validate import integer_validator, string_validator
from atcore.syntax import is_valid_nsid

_DOC_FIELDS: Final = frozenset({"lexicon", "id", "revision", "description", "defs", "$type"})
_SCHEMA_RECORD_TYPE: Final = "com.atproto.lexicon.schema"


def parse_document(raw: object) -> LexiconDoc:
    """Validate a lexicon document and return its typed model."""
    doc_id = raw.get("id") if isinstance(raw, dict) else None
    label = doc_id if isinstance(doc_id, str) else "lexicon document"
    try:
        return _parse_document(raw)
    except SchemaProblem as exc:
        raise InvalidLexiconDocument(f"{label}: {exc}") from None


def _parse_document(raw: object) -> LexiconDoc:
    doc = FieldReader(raw, "", _DOC_FIELDS)
    version = doc.raw.get("lexicon")
    if type(version) is not int or version != 1:
        raise SchemaProblem("lexicon must be the integer 1")
    doc_id = doc.required_str("id")
    if not is_valid_nsid(doc_id):
        raise SchemaProblem(f"id {doc_id!r} is not a valid NSID")
    if doc.raw.get("$type", _SCHEMA_RECORD_TYPE) != _SCHEMA_RECORD_TYPE:
        raise SchemaProblem(f"$type must be {_SCHEMA_RECORD_TYPE!r}")
    defs_raw = doc.raw.get("defs")
    if not isinstance(defs_raw, dict) or not defs_raw:
        raise SchemaProblem("defs must be a non-empty object")
    parser = DefinitionParser(doc_id)
    defs = {name: parser.named(name, value) for name, value in defs_raw.items()}
    return LexiconDoc(
        id=doc_id,
        defs=defs,
        description=doc.optional_str("description"),
        revision=doc.optional_int("revision", minimum=0),
    )


class DefinitionParser:
    """Parses the definitions of one document (it needs the document id to resolve `#local`)."""

    def __init__(self, doc_id: str) -> None:
        self.doc_id = doc_id
        self._fields: dict[str, Callable[[FieldReader], FieldDef]] = {
            "boolean": self._boolean,
            "integer": self._integer,
            "string": self._string,
            "bytes": self._bytes,
            "cid-link": lambda r: CidLinkDef(description=r.optional_str("description")),
            "blob": self._blob,
            "unknown": lambda r: UnknownDef(description=r.optional_str("description")),
            "ref": self._ref,
            "union": self.union_def,
            "array": self.array_def,
            "object": self.object_def,
        }
        self._primaries = PrimaryParser(self)

    # -- dispatch ------------------------------------------------------------------------------
    def named(self, name: object, raw: object) -> NamedDef:
        if not isinstance(name, str) or not def_name_ok(name):
            raise SchemaProblem(f"defs: {name!r} is not a valid definition name")
        where = f"defs/{name}"
        kind = type_of(raw, where)
        if kind in MAIN_ONLY_TYPES:
            if name != "main":
                raise SchemaProblem(f"{where}: a {kind} definition must be named main")
            return self._primaries.parse(kind, FieldReader.for_type(raw, where, kind))
        if kind == "token":
            return TokenDef(
                description=FieldReader.for_type(raw, where, kind).optional_str("description")
            )
        if kind in ("ref", "union", "unknown", "params", "permission"):
            raise SchemaProblem(f"{where}: type {kind} can not be a named definition")
        field = self.field(raw, where)
        assert not isinstance(field, RefDef | UnionDef | UnknownDef)
        return field

    def field(self, raw: object, where: str) -> FieldDef:
        kind = type_of(raw, where)
        parse = self._fields.get(kind)
        if parse is None:
            raise SchemaProblem(f"{where}: type {kind!r} is not allowed here")
        return parse(FieldReader.for_type(raw, where, kind))

    def ref(self, ref: object, where: str) -> str:
        """Canonical `nsid#name` form of a reference written in this document."""
        canonical = canonical_ref(ref, self.doc_id)
        if canonical is None:
            raise SchemaProblem(f"{where}: {ref!r} is not a reference (#name, nsid or nsid#name)")
        return canonical

    # -- field types ---------------------------------------------------------------------------
    def _boolean(self, r: FieldReader) -> BooleanDef:
        default, const = r.optional_bool("default"), r.optional_bool("const")
        check_default_and_const(r, default, const, lambda _v: None)
        return BooleanDef(description=r.optional_str("description"), default=default, const=const)

    def _integer(self, r: FieldReader) -> IntegerDef:
        definition = IntegerDef(
            description=r.optional_str("description"),
            minimum=r.optional_int("minimum"),
            maximum=r.optional_int("maximum"),
            enum=r.optional_int_list("enum", non_empty=True),
            default=r.optional_int("default"),
            const=r.optional_int("const"),
        )
        check_range(r, "minimum", "maximum", definition.minimum, definition.maximum)
        check = integer_validator(definition)
        check_default_and_const(r, definition.default, definition.const, check)
        return definition

    def _string(self, r: FieldReader) -> StringDef:
        fmt = r.optional_str("format")
        if fmt is not None and fmt not in STRING_FORMATS:
            raise SchemaProblem(f"{r.where}: unknown string format {fmt!r}")
        definition = StringDef(
            description=r.optional_str("description"),
            format=fmt,
            min_length=r.optional_int("minLength", minimum=0),
            max_length=r.optional_int("maxLength", minimum=0),
            min_graphemes=r.optional_int("minGraphemes", minimum=0),
            max_graphemes=r.optional_int("maxGraphemes", minimum=0),
            known_values=r.optional_str_list("knownValues"),
            enum=r.optional_str_list("enum", non_empty=True),
            default=r.optional_str("default"),
            const=r.optional_str("const"),
        )
        check_range(r, "minLength", "maxLength", definition.min_length, definition.max_length)
        check_range(
            r, "minGraphemes", "maxGraphemes", definition.min_graphemes, definition.max_graphemes
        )
        # Every grapheme takes at least one UTF-8 byte.
        check_range(r, "minGraphemes", "maxLength", definition.min_graphemes, definition.max_length)
        check_default_and_const(
            r, definition.default, definition.const, string_validator(definition)
        )
        return definition

    def _bytes(self, r: FieldReader) -> BytesDef:
        definition = BytesDef(
            description=r.optional_str("description"),
            min_length=r.optional_int("minLength", minimum=0),
            max_length=r.optional_int("maxLength", minimum=0),
        )
        check_range(r, "minLength", "maxLength", definition.min_length, definition.max_length)
        return definition

    def _blob(self, r: FieldReader) -> BlobDef:
        accept = r.optional_str_list("accept")
        for pattern in accept or ():
            if not mime_pattern_ok(pattern):
                raise SchemaProblem(
                    f"{r.where}/accept: {pattern!r} is not a MIME type or type/* glob"
                )
        return BlobDef(
            description=r.optional_str("description"),
            accept=accept,
            max_size=r.optional_int("maxSize", minimum=0),
        )

    def _ref(self, r: FieldReader) -> RefDef:
        return RefDef(
            ref=self.ref(r.required("ref"), f"{r.where}/ref"),
            description=r.optional_str("description"),
        )

    def union_def(self, r: FieldReader) -> UnionDef:
        raw_refs = r.required("refs")
        if not isinstance(raw_refs, list):
            raise SchemaProblem(f"{r.where}/refs: must be an array of references")
        refs = tuple(self.ref(ref, f"{r.where}/refs/{i}") for i, ref in enumerate(raw_refs))
        if len(set(refs)) != len(refs):
            raise SchemaProblem(f"{r.where}/refs: lists a reference twice")
        closed = bool(r.optional_bool("closed"))
        if closed and not refs:
            raise SchemaProblem(f"{r.where}: a closed union needs at least one ref")
        return UnionDef(refs=refs, closed=closed, description=r.optional_str("description"))

    def array_def(self, r: FieldReader) -> ArrayDef:
        definition = ArrayDef(
            items=self.field(r.required("items"), f"{r.where}/items"),
            description=r.optional_str("description"),
            min_length=r.optional_int("minLength", minimum=0),
            max_length=r.optional_int("maxLength", minimum=0),
        )
        check_range(r, "minLength", "maxLength", definition.min_length, definition.max_length)
        return definition

    def object_def(self, r: FieldReader) -> ObjectDef:
        properties = self.properties(r, self.field)
        required = r.optional_str_list("required") or ()
        nullable = r.optional_str_list("nullable") or ()
        check_names_declared(r, "required", required, properties)
        check_names_declared(r, "nullable", nullable, properties)
        return ObjectDef(
            properties=properties,
            required=required,
            nullable=nullable,
            description=r.optional_str("description"),
        )

    def properties(self, r: FieldReader, parse: Callable[[object, str], Any]) -> dict[str, Any]:
        raw = r.required("properties")
        if not isinstance(raw, dict):
            raise SchemaProblem(f"{r.where}/properties: must be an object")
        return {name: parse(value, f"{r.where}/properties/{name}") for name, value in raw.items()}
