"""Parsing the primary definitions (record, query, procedure, subscription, permission-set).

Their parts: `params` (booleans, integers, strings or arrays of those only), XRPC bodies (an
`encoding` MIME type and an optional object/ref/union schema), error lists, subscription messages
(always a union) and permissions (a resource plus resource-specific scalar or array fields, kept
verbatim: the Permission spec, not the Lexicon spec, gives them meaning).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from atcore.lexicon.fields import (
    FieldReader,
    SchemaProblem,
    check_names_declared,
    key_type_ok,
    type_of,
)
from atcore.lexicon.schema import (
    BodyDef,
    BooleanDef,
    ErrorDef,
    IntegerDef,
    MessageDef,
    NamedDef,
    ObjectDef,
    ParamDef,
    ParamsDef,
    PermissionDef,
    PermissionSetDef,
    ProcedureDef,
    QueryDef,
    RecordDef,
    RefDef,
    StringDef,
    SubscriptionDef,
    UnionDef,
)
from atcore.syntax import is_valid_language

if TYPE_CHECKING:
    from atcore.lexicon.documents import DefinitionParser

_WHITESPACE: Final = re.compile(r"\s")


class PrimaryParser:
    """Parses primary definitions, using `fields` for the field types they contain."""

    def __init__(self, fields: DefinitionParser) -> None:
        self.fields = fields
        self._parsers: dict[str, Callable[[FieldReader], NamedDef]] = {
            "record": self._record,
            "query": self._query,
            "procedure": self._procedure,
            "subscription": self._subscription,
            "permission-set": self._permission_set,
        }

    def parse(self, kind: str, r: FieldReader) -> NamedDef:
        return self._parsers[kind](r)

    # -- sub-types -----------------------------------------------------------------------------
    def param(self, raw: object, where: str) -> ParamDef:
        kind = type_of(raw, where)
        if kind == "array":
            array = self.fields.array_def(FieldReader.for_type(raw, where, kind))
            if not isinstance(array.items, BooleanDef | IntegerDef | StringDef):
                raise SchemaProblem(
                    f"{where}/items: params arrays hold booleans, integers or strings"
                )
            return array
        if kind not in ("boolean", "integer", "string"):
            raise SchemaProblem(
                f"{where}: params hold booleans, integers, strings or arrays of them"
            )
        param = self.fields.field(raw, where)
        assert isinstance(param, BooleanDef | IntegerDef | StringDef)
        return param

    def params(self, raw: object, where: str) -> ParamsDef:
        if type_of(raw, where) != "params":
            raise SchemaProblem(f"{where}: must have type params")
        r = FieldReader.for_type(raw, where, "params")
        properties = self.fields.properties(r, self.param)
        required = r.optional_str_list("required") or ()
        check_names_declared(r, "required", required, properties)
        return ParamsDef(
            properties=properties, required=required, description=r.optional_str("description")
        )

    def _permission(self, raw: object, where: str) -> PermissionDef:
        if not isinstance(raw, dict) or raw.get("type") != "permission":
            raise SchemaProblem(f"{where}: must be an object with type permission")
        resource = raw.get("resource")
        if not isinstance(resource, str) or not resource:
            raise SchemaProblem(f"{where}/resource: must be a non-empty string")
        extra = {k: v for k, v in raw.items() if k not in ("type", "resource")}
        for key, value in extra.items():
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(item, str | int) for item in items):
                raise SchemaProblem(f"{where}/{key}: must be a string, integer, boolean or array")
        return PermissionDef(resource=resource, fields=extra)

    # -- primary types -------------------------------------------------------------------------
    def _record(self, r: FieldReader) -> RecordDef:
        key = r.required_str("key")
        if not key_type_ok(key):
            raise SchemaProblem(f"{r.where}/key: {key!r} is not tid, nsid, any or literal:<key>")
        raw = r.required("record")
        where = f"{r.where}/record"
        if type_of(raw, where) != "object":
            raise SchemaProblem(f"{where}: must have type object")
        record = self.fields.object_def(FieldReader.for_type(raw, where, "object"))
        return RecordDef(key=key, record=record, description=r.optional_str("description"))

    def _method_parts(self, r: FieldReader) -> tuple[ParamsDef | None, tuple[ErrorDef, ...]]:
        raw_params = r.raw.get("parameters")
        params = None if raw_params is None else self.params(raw_params, f"{r.where}/parameters")
        return params, self._errors(r)

    def _query(self, r: FieldReader) -> QueryDef:
        params, errors = self._method_parts(r)
        return QueryDef(
            parameters=params,
            output=self._body(r, "output"),
            errors=errors,
            description=r.optional_str("description"),
        )

    def _procedure(self, r: FieldReader) -> ProcedureDef:
        params, errors = self._method_parts(r)
        return ProcedureDef(
            parameters=params,
            input=self._body(r, "input"),
            output=self._body(r, "output"),
            errors=errors,
            description=r.optional_str("description"),
        )

    def _subscription(self, r: FieldReader) -> SubscriptionDef:
        params, errors = self._method_parts(r)
        where = f"{r.where}/message"
        message = FieldReader(r.required("message"), where, frozenset({"description", "schema"}))
        schema_where = f"{where}/schema"
        schema_raw = message.required("schema")
        if type_of(schema_raw, schema_where) != "union":
            raise SchemaProblem(f"{schema_where}: subscription messages must be a union of refs")
        schema = self.fields.union_def(FieldReader.for_type(schema_raw, schema_where, "union"))
        return SubscriptionDef(
            message=MessageDef(schema=schema, description=message.optional_str("description")),
            parameters=params,
            errors=errors,
            description=r.optional_str("description"),
        )

    def _permission_set(self, r: FieldReader) -> PermissionSetDef:
        raw = r.required("permissions")
        if not isinstance(raw, list):
            raise SchemaProblem(f"{r.where}/permissions: must be an array")
        return PermissionSetDef(
            permissions=tuple(
                self._permission(item, f"{r.where}/permissions/{i}") for i, item in enumerate(raw)
            ),
            title=r.optional_str("title"),
            title_lang=lang_map(r, "title:lang"),
            detail=r.optional_str("detail"),
            detail_lang=lang_map(r, "detail:lang"),
            description=r.optional_str("description"),
        )

    def _body(self, r: FieldReader, key: str) -> BodyDef | None:
        raw = r.raw.get(key)
        if raw is None:
            return None
        where = f"{r.where}/{key}"
        body = FieldReader(raw, where, frozenset({"description", "encoding", "schema"}))
        encoding = body.required_str("encoding")
        if "/" not in encoding:
            raise SchemaProblem(f"{where}/encoding: {encoding!r} is not a MIME type")
        schema_raw = body.raw.get("schema")
        schema: ObjectDef | RefDef | UnionDef | None = None
        if schema_raw is not None:
            parsed = self.fields.field(schema_raw, f"{where}/schema")
            if not isinstance(parsed, ObjectDef | RefDef | UnionDef):
                raise SchemaProblem(f"{where}/schema: must be an object, a ref or a union")
            schema = parsed
        return BodyDef(
            encoding=encoding, schema=schema, description=body.optional_str("description")
        )

    def _errors(self, r: FieldReader) -> tuple[ErrorDef, ...]:
        raw = r.raw.get("errors")
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise SchemaProblem(f"{r.where}/errors: must be an array")
        errors = []
        for i, item in enumerate(raw):
            error = FieldReader(item, f"{r.where}/errors/{i}", frozenset({"name", "description"}))
            name = error.required_str("name")
            if not name or _WHITESPACE.search(name):
                raise SchemaProblem(f"{error.where}/name: {name!r} is not an error name")
            errors.append(ErrorDef(name=name, description=error.optional_str("description")))
        return tuple(errors)


def lang_map(r: FieldReader, key: str) -> dict[str, str]:
    raw = r.raw.get(key)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SchemaProblem(f"{r.where}/{key}: must be an object")
    for lang, text in raw.items():
        if not is_valid_language(lang) or not isinstance(text, str):
            raise SchemaProblem(
                f"{r.where}/{key}: {lang!r} must be a language tag mapped to a string"
            )
    return dict(raw)
