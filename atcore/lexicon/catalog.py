"""A catalog of lexicon documents with precompiled validators.

Every definition is compiled into a validator closure when its document is added; references
between definitions are linked on first use (see `compose`). Validation entry points name the root
of the error path: `record/...`, `params/...`, `input/...`, `output/...`, `message/...`.

`Catalog.from_directory` loads every `*.json` below a directory, recursively, whatever the file
names (the repository keeps its lexicons at NSID paths: `lexicons/app/skyspot/checkin.json`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from atcore.lexicon.compose import compile_field, record_validator
from atcore.lexicon.documents import parse_document
from atcore.lexicon.errors import InvalidLexiconDocument, LexiconNotFound, ValidationError
from atcore.lexicon.fields import canonical_ref
from atcore.lexicon.params import ParamsDecoder, ParamsValidator, params_decoder, params_validator
from atcore.lexicon.references import reference_problems
from atcore.lexicon.schema import (
    BodyDef,
    LexiconDoc,
    MethodDef,
    NamedDef,
    ObjectDef,
    PermissionSetDef,
    ProcedureDef,
    QueryDef,
    RecordDef,
    SubscriptionDef,
    TokenDef,
    short_ref,
)
from atcore.lexicon.validate import Validator
from atcore.syntax import is_valid_nsid, is_valid_record_key, is_valid_tid

_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True, slots=True)
class _Method:
    definition: MethodDef
    params: ParamsValidator
    decode: ParamsDecoder
    input: Validator | None
    output: Validator | None
    message: Validator | None


class Catalog:
    """Lexicon documents by NSID, and validation of data against them."""

    def __init__(self, documents: Iterable[Mapping[str, Any] | LexiconDoc] = ()) -> None:
        self._docs: dict[str, LexiconDoc] = {}
        self._defs: dict[str, NamedDef] = {}  # canonical `nsid#name` -> definition
        self._values: dict[str, Validator] = {}  # data definitions (records include `$type`)
        self._record_bodies: dict[str, Validator] = {}  # records as union variants
        self._records: dict[str, Validator] = {}  # record NSID -> whole-record validator
        self._methods: dict[str, _Method] = {}
        for document in documents:
            self.add(document)

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> Catalog:
        """Load every `*.json` lexicon document below `path` (recursively)."""
        root = Path(path)
        if not root.is_dir():
            raise LexiconNotFound(f"no lexicon directory at {root}")
        catalog = cls()
        for file in sorted(root.rglob("*.json")):
            try:
                catalog.add(json.loads(file.read_text(encoding="utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidLexiconDocument(f"{file}: not a JSON document ({exc})") from None
            except InvalidLexiconDocument as exc:
                raise InvalidLexiconDocument(f"{file}: {exc}") from None
        return catalog

    # -- documents -----------------------------------------------------------------------------
    def add(self, document: Mapping[str, Any] | LexiconDoc) -> LexiconDoc:
        """Validate (if raw), compile and register a document; its id must be new."""
        doc = document if isinstance(document, LexiconDoc) else parse_document(dict(document))
        if doc.id in self._docs:
            raise InvalidLexiconDocument(f"{doc.id}: a document with this id is already loaded")
        for name, definition in doc.defs.items():
            self._compile(f"{doc.id}#{name}", definition)
        self._docs[doc.id] = doc
        self._defs.update((f"{doc.id}#{name}", d) for name, d in doc.defs.items())
        return doc

    def get(self, nsid: str) -> LexiconDoc:
        """The document with id `nsid`."""
        try:
            return self._docs[nsid]
        except KeyError:
            raise LexiconNotFound(f"no lexicon document {nsid}") from None

    def __contains__(self, nsid: object) -> bool:
        return nsid in self._docs

    def __iter__(self) -> Iterator[LexiconDoc]:
        return iter(self._docs.values())

    def __len__(self) -> int:
        return len(self._docs)

    def resolve_ref(self, ref: str, context_nsid: str | None = None) -> NamedDef:
        """The definition `ref` (`nsid`, `nsid#name`, or `#name` relative to `context_nsid`)."""
        canonical = canonical_ref(ref, context_nsid or "")
        if canonical is None or canonical.startswith("#"):
            raise LexiconNotFound(f"{ref!r} is not a resolvable reference")
        try:
            return self._defs[canonical]
        except KeyError:
            raise LexiconNotFound(f"no lexicon definition {short_ref(canonical)}") from None

    def reference_problems(self) -> list[str]:
        """Every ref or union member that points nowhere or at a definition it can not use."""
        return reference_problems(self._docs.values(), self._defs)

    # -- data validation -----------------------------------------------------------------------
    def validate_record(self, nsid: str, value: Any) -> None:
        """Check a record (data-model form) against the record type `nsid`, `$type` included."""
        check = self._records.get(nsid)
        if check is None:
            raise LexiconNotFound(f"no record lexicon {nsid}")
        _rooted(check, "record", value)

    def validate_record_key(self, nsid: str, rkey: str) -> None:
        """Check a record key against the record type's `key` (tid, nsid, any, literal:...)."""
        key = self._record_def(nsid).key
        if not is_valid_record_key(rkey):
            raise ValidationError("must be a valid record key", ["rkey"])
        if key == "tid" and not is_valid_tid(rkey):
            raise ValidationError("must be a TID", ["rkey"])
        if key == "nsid" and not is_valid_nsid(rkey):
            raise ValidationError("must be an NSID", ["rkey"])
        if key.startswith("literal:") and rkey != (literal := key.removeprefix("literal:")):
            raise ValidationError(f'must be "{literal}"', ["rkey"])

    def validate_value(self, ref: str, value: Any) -> Any:
        """Check a value against any data definition (`nsid#name`); returns it with defaults."""
        canonical = canonical_ref(ref, "")
        if canonical is None or canonical.startswith("#"):
            raise LexiconNotFound(f"{ref!r} is not a resolvable reference")
        return _rooted(self.ref_target(canonical), canonical.partition("#")[2], value)

    def validate_params(self, nsid: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check typed XRPC parameters; returns a new dict with defaults filled in."""
        return _rooted(self._method(nsid).params, "params", params)

    def decode_params(self, nsid: str, pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Decode query-string pairs (repeated keys for arrays), then validate them."""
        method = self._method(nsid)
        return _rooted(lambda p: method.params(method.decode(p)), "params", pairs)

    def validate_input(self, nsid: str, body: Any) -> Any:
        """Check a procedure's input body (data-model form) if its lexicon gives a schema."""
        method = self._method(nsid)
        if not isinstance(method.definition, ProcedureDef):
            raise LexiconNotFound(f"{nsid} is not a procedure")
        return body if method.input is None else _rooted(method.input, "input", body)

    def validate_output(self, nsid: str, body: Any) -> Any:
        """Check a query's or procedure's output body if its lexicon gives a schema."""
        method = self._method(nsid)
        if isinstance(method.definition, SubscriptionDef):
            raise LexiconNotFound(f"{nsid} is a subscription, which has no output body")
        return body if method.output is None else _rooted(method.output, "output", body)

    def validate_message(self, nsid: str, body: Any, message_type: str | None = None) -> Any:
        """Check a subscription message; `message_type` is the frame header's `t` (`#commit`).

        Without `message_type` the body must carry `$type` like any union member.
        """
        method = self._method(nsid)
        if method.message is None:
            raise LexiconNotFound(f"{nsid} is not a subscription")
        if message_type is None:
            return _rooted(method.message, "message", body)
        assert isinstance(method.definition, SubscriptionDef)
        union = method.definition.message.schema
        ref = canonical_ref(message_type, nsid)
        if ref is None:
            raise ValidationError(f"{message_type!r} is not a message type reference", ["message"])
        if ref in union.refs:
            return _rooted(_object_body(self.variant_target(ref)), "message", body)
        if union.closed:
            raise ValidationError(f"type {message_type!r} is not one of this stream's messages")
        return body

    # -- Linker (used by the compiled validators) ----------------------------------------------
    def ref_target(self, ref: str) -> Validator:
        check = self._values.get(ref)
        if check is None:
            raise self._unusable(ref, "a ref")
        return check

    def variant_target(self, ref: str) -> Validator:
        definition = self._defs.get(ref)
        if isinstance(definition, ObjectDef):
            return self._values[ref]
        if isinstance(definition, RecordDef):
            return self._record_bodies[ref]
        raise self._unusable(ref, "a union")

    # -- internals -----------------------------------------------------------------------------
    def _compile(self, ref: str, definition: NamedDef) -> None:
        match definition:
            case RecordDef():
                nsid = ref.partition("#")[0]
                whole, body = record_validator(nsid, definition, self)
                self._values[ref], self._record_bodies[ref] = whole, body
                self._records[nsid] = whole
            case QueryDef() | ProcedureDef() | SubscriptionDef():
                self._methods[ref.partition("#")[0]] = self._compile_method(definition)
            case TokenDef() | PermissionSetDef():
                pass  # no data representation
            case _:
                self._values[ref] = compile_field(definition, self)

    def _compile_method(self, definition: MethodDef) -> _Method:
        def body(spec: BodyDef | None) -> Validator | None:
            if spec is None or spec.schema is None:
                return None
            return _object_body(compile_field(spec.schema, self))

        return _Method(
            definition=definition,
            params=params_validator(definition.parameters),
            decode=params_decoder(definition.parameters),
            input=body(definition.input) if isinstance(definition, ProcedureDef) else None,
            output=None if isinstance(definition, SubscriptionDef) else body(definition.output),
            message=(
                compile_field(definition.message.schema, self)
                if isinstance(definition, SubscriptionDef)
                else None
            ),
        )

    def _record_def(self, nsid: str) -> RecordDef:
        definition = self._defs.get(f"{nsid}#main")
        if not isinstance(definition, RecordDef):
            raise LexiconNotFound(f"no record lexicon {nsid}")
        return definition

    def _method(self, nsid: str) -> _Method:
        try:
            return self._methods[nsid]
        except KeyError:
            raise LexiconNotFound(f"no query, procedure or subscription lexicon {nsid}") from None

    def _unusable(self, ref: str, user: str) -> Exception:
        definition = self._defs.get(ref)
        if definition is None:
            return LexiconNotFound(f"no lexicon definition {short_ref(ref)}")
        return InvalidLexiconDocument(
            f"{short_ref(ref)} is a {definition.type}, which {user} can not point to"
        )


def _object_body(check: Validator) -> Validator:
    """XRPC bodies and stream messages are always objects, whatever the schema resolves to."""

    def validate_body(value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError("must be an object")
        return check(value)

    return validate_body


def _rooted(check: Callable[[_In], _Out], root: str, value: _In) -> _Out:
    try:
        return check(value)
    except ValidationError as exc:
        exc.within(root)
        raise
