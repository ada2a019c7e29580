"""Reading the fields of one schema object in a lexicon document, and the small syntax rules.

`FieldReader` wraps one JSON object of a document together with its location, rejects fields its
type does not define, and reads typed values; every broken rule raises `SchemaProblem`, which
`documents.parse_document` turns into `InvalidLexiconDocument`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from atcore.lexicon.errors import ValidationError
from atcore.syntax import is_valid_nsid, is_valid_record_key

MAIN_ONLY_TYPES: Final = frozenset(
    {"record", "query", "procedure", "subscription", "permission-set"}
)

_COMMON: Final = frozenset({"type", "description"})
_TYPE_FIELDS: Final[dict[str, frozenset[str]]] = {
    "boolean": frozenset({"default", "const"}),
    "integer": frozenset({"minimum", "maximum", "enum", "default", "const"}),
    "string": frozenset(
        {
            "format",
            "maxLength",
            "minLength",
            "maxGraphemes",
            "minGraphemes",
            "knownValues",
            "enum",
            "default",
            "const",
        }
    ),
    "bytes": frozenset({"minLength", "maxLength"}),
    "cid-link": frozenset(),
    "blob": frozenset({"accept", "maxSize"}),
    "unknown": frozenset(),
    "token": frozenset(),
    "ref": frozenset({"ref"}),
    "union": frozenset({"refs", "closed"}),
    "array": frozenset({"items", "minLength", "maxLength"}),
    "object": frozenset({"properties", "required", "nullable"}),
    "params": frozenset({"properties", "required"}),
    "record": frozenset({"key", "record"}),
    "query": frozenset({"parameters", "output", "errors"}),
    "procedure": frozenset({"parameters", "input", "output", "errors"}),
    "subscription": frozenset({"parameters", "message", "errors"}),
    "permission-set": frozenset({"title", "title:lang", "detail", "detail:lang", "permissions"}),
}

_DEF_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_MIME_NAME: Final = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
_MIME_PATTERN: Final = re.compile(rf"\*/\*|{_MIME_NAME}/(?:\*|{_MIME_NAME})")


class SchemaProblem(Exception):
    """Internal: one lexicon language rule broken at one location."""


class FieldReader:
    """One JSON object of a lexicon document, read field by field."""

    def __init__(self, raw: object, where: str, allowed: frozenset[str]) -> None:
        if not isinstance(raw, dict):
            raise SchemaProblem(f"{where or 'document'}: must be an object")
        unexpected = [key for key in raw if key not in allowed]
        if unexpected:
            raise SchemaProblem(f"{where or 'document'}: unexpected field(s) {sorted(unexpected)}")
        self.raw: dict[str, Any] = raw
        self.where = where

    @classmethod
    def for_type(cls, raw: object, where: str, kind: str) -> FieldReader:
        """A reader allowing exactly the fields the spec defines for schema type `kind`."""
        return cls(raw, where, _COMMON | _TYPE_FIELDS[kind])

    def _at(self, key: str) -> str:
        return f"{self.where}/{key}" if self.where else key

    def required(self, key: str) -> object:
        if key not in self.raw:
            raise SchemaProblem(f"{self.where or 'document'}: missing required field {key!r}")
        return self.raw[key]

    def required_str(self, key: str) -> str:
        value = self.required(key)
        if not isinstance(value, str):
            raise SchemaProblem(f"{self._at(key)}: must be a string")
        return value

    def optional_str(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is not None and not isinstance(value, str):
            raise SchemaProblem(f"{self._at(key)}: must be a string")
        return value

    def optional_bool(self, key: str) -> bool | None:
        value = self.raw.get(key)
        if value is not None and type(value) is not bool:
            raise SchemaProblem(f"{self._at(key)}: must be a boolean")
        return value

    def optional_int(self, key: str, minimum: int | None = None) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if type(value) is not int:
            raise SchemaProblem(f"{self._at(key)}: must be an integer")
        if minimum is not None and value < minimum:
            raise SchemaProblem(f"{self._at(key)}: must be at least {minimum}")
        return value

    def optional_str_list(self, key: str, non_empty: bool = False) -> tuple[str, ...] | None:
        return self._list(key, str, "strings", non_empty)

    def optional_int_list(self, key: str, non_empty: bool = False) -> tuple[int, ...] | None:
        return self._list(key, int, "integers", non_empty)

    def _list(
        self, key: str, kind: type[Any], noun: str, non_empty: bool
    ) -> tuple[Any, ...] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or any(type(item) is not kind for item in value):
            raise SchemaProblem(f"{self._at(key)}: must be an array of {noun}")
        if non_empty and not value:
            raise SchemaProblem(f"{self._at(key)}: must not be empty")
        return tuple(value)


def check_range(
    r: FieldReader, low_key: str, high_key: str, low: int | None, high: int | None
) -> None:
    """A lower bound may not exceed its upper bound."""
    if low is not None and high is not None and low > high:
        raise SchemaProblem(f"{r.where}: {low_key} ({low}) is greater than {high_key} ({high})")


def check_default_and_const(
    r: FieldReader, default: object, const: object, check: Callable[[Any], object]
) -> None:
    """`default` and `const` exclude each other, and each must satisfy its own definition."""
    if default is not None and const is not None:
        raise SchemaProblem(f"{r.where}: const and default are mutually exclusive")
    for key, value in (("default", default), ("const", const)):
        if value is None:
            continue
        try:
            check(value)
        except ValidationError as exc:
            raise SchemaProblem(f"{r.where}/{key}: {value!r} {exc.reason}") from None


def def_name_ok(name: str) -> bool:
    """Definition names are identifiers (`main`, `viewerState`, `post_view`)."""
    return _DEF_NAME.fullmatch(name) is not None


def key_type_ok(key: str) -> bool:
    """A record `key`: `tid`, `nsid`, `any` or `literal:<record-key>`."""
    if key in ("tid", "nsid", "any"):
        return True
    literal = key.removeprefix("literal:")
    return literal != key and is_valid_record_key(literal)


def mime_pattern_ok(pattern: str) -> bool:
    """A blob `accept` entry: a MIME type, `type/*` or `*/*` (no partial globs, no bare `*`)."""
    return _MIME_PATTERN.fullmatch(pattern) is not None


def canonical_ref(ref: object, context_nsid: str) -> str | None:
    """`#name`, `nsid` or `nsid#name` as canonical `nsid#name` (None if malformed)."""
    if not isinstance(ref, str):
        return None
    nsid, hash_mark, name = ref.partition("#")
    if not nsid:
        nsid = context_nsid
    elif not is_valid_nsid(nsid):
        return None
    if not hash_mark:
        name = "main"
    return f"{nsid}#{name}" if def_name_ok(name) else None


def type_of(raw: object, where: str) -> str:
    if not isinstance(raw, dict):
        raise SchemaProblem(f"{where}: must be an object")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise SchemaProblem(f"{where}: must have a string type")
    return kind


def check_names_declared(
    r: FieldReader, key: str, names: tuple[str, ...], properties: Mapping[str, object]
) -> None:
    for name in names:
        if name not in properties:
            raise SchemaProblem(f"{r.where}/{key}: {name!r} is not a declared property")
    if len(set(names)) != len(names):
        raise SchemaProblem(f"{r.where}/{key}: names a property twice")
