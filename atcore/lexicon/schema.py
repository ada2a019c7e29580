"""Typed model of lexicon documents (Lexicon language version 1).

Documents are parsed into these frozen dataclasses by `atcore.lexicon.documents`, which enforces the
language rules; everything downstream (the catalog, the validator compiler) works on this model and
never on raw dicts. Every reference (`ref`, union `refs`) is stored in canonical absolute form
`<nsid>#<name>`, with an explicit `#main`, whatever the document wrote (`#local`, bare `nsid`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

STRING_FORMATS: Final = frozenset(
    {
        "at-identifier",
        "at-uri",
        "cid",
        "datetime",
        "did",
        "handle",
        "language",
        "nsid",
        "record-key",
        "tid",
        "uri",
    }
)

# -- field types ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BooleanDef:
    description: str | None = None
    default: bool | None = None
    const: bool | None = None
    type: Literal["boolean"] = "boolean"


@dataclass(frozen=True, slots=True)
class IntegerDef:
    description: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[int, ...] | None = None
    default: int | None = None
    const: int | None = None
    type: Literal["integer"] = "integer"


@dataclass(frozen=True, slots=True)
class StringDef:
    description: str | None = None
    format: str | None = None
    min_length: int | None = None  # UTF-8 bytes
    max_length: int | None = None  # UTF-8 bytes
    min_graphemes: int | None = None
    max_graphemes: int | None = None
    known_values: tuple[str, ...] | None = None  # informative only, never enforced
    enum: tuple[str, ...] | None = None
    default: str | None = None
    const: str | None = None
    type: Literal["string"] = "string"


@dataclass(frozen=True, slots=True)
class BytesDef:
    description: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    type: Literal["bytes"] = "bytes"


@dataclass(frozen=True, slots=True)
class CidLinkDef:
    description: str | None = None
    type: Literal["cid-link"] = "cid-link"


@dataclass(frozen=True, slots=True)
class BlobDef:
    description: str | None = None
    accept: tuple[str, ...] | None = None  # MIME types, `type/*` or `*/*` globs
    max_size: int | None = None
    type: Literal["blob"] = "blob"


@dataclass(frozen=True, slots=True)
class UnknownDef:
    description: str | None = None
    type: Literal["unknown"] = "unknown"


@dataclass(frozen=True, slots=True)
class RefDef:
    ref: str  # canonical `nsid#name`
    description: str | None = None
    type: Literal["ref"] = "ref"


@dataclass(frozen=True, slots=True)
class UnionDef:
    refs: tuple[str, ...]  # canonical `nsid#name`
    closed: bool = False
    description: str | None = None
    type: Literal["union"] = "union"


@dataclass(frozen=True, slots=True)
class ArrayDef:
    items: FieldDef
    description: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    type: Literal["array"] = "array"


@dataclass(frozen=True, slots=True)
class ObjectDef:
    properties: Mapping[str, FieldDef]
    required: tuple[str, ...] = ()
    nullable: tuple[str, ...] = ()
    description: str | None = None
    type: Literal["object"] = "object"


FieldDef = (
    BooleanDef
    | IntegerDef
    | StringDef
    | BytesDef
    | CidLinkDef
    | BlobDef
    | UnknownDef
    | RefDef
    | UnionDef
    | ArrayDef
    | ObjectDef
)
"""Anything that may describe a property, an array item or a body schema."""

# -- sub-types -----------------------------------------------------------------------------------

ParamDef = BooleanDef | IntegerDef | StringDef | ArrayDef
"""A query parameter: boolean, integer, string, or an array of one of those."""


@dataclass(frozen=True, slots=True)
class ParamsDef:
    properties: Mapping[str, ParamDef]
    required: tuple[str, ...] = ()
    description: str | None = None
    type: Literal["params"] = "params"


@dataclass(frozen=True, slots=True)
class PermissionDef:
    resource: str
    fields: Mapping[str, Any] = field(default_factory=dict)  # resource-specific, kept verbatim
    type: Literal["permission"] = "permission"


# -- primary types -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BodyDef:
    """An XRPC request or response body."""

    encoding: str
    schema: ObjectDef | RefDef | UnionDef | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class MessageDef:
    """The messages of a subscription: always a union of refs."""

    schema: UnionDef
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorDef:
    name: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RecordDef:
    key: str  # `tid`, `nsid`, `any` or `literal:<record-key>`
    record: ObjectDef
    description: str | None = None
    type: Literal["record"] = "record"


@dataclass(frozen=True, slots=True)
class QueryDef:
    parameters: ParamsDef | None = None
    output: BodyDef | None = None
    errors: tuple[ErrorDef, ...] = ()
    description: str | None = None
    type: Literal["query"] = "query"


@dataclass(frozen=True, slots=True)
class ProcedureDef:
    parameters: ParamsDef | None = None
    input: BodyDef | None = None
    output: BodyDef | None = None
    errors: tuple[ErrorDef, ...] = ()
    description: str | None = None
    type: Literal["procedure"] = "procedure"


@dataclass(frozen=True, slots=True)
class SubscriptionDef:
    message: MessageDef
    parameters: ParamsDef | None = None
    errors: tuple[ErrorDef, ...] = ()
    description: str | None = None
    type: Literal["subscription"] = "subscription"


@dataclass(frozen=True, slots=True)
class PermissionSetDef:
    permissions: tuple[PermissionDef, ...]
    title: str | None = None
    title_lang: Mapping[str, str] = field(default_factory=dict)
    detail: str | None = None
    detail_lang: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    type: Literal["permission-set"] = "permission-set"


@dataclass(frozen=True, slots=True)
class TokenDef:
    description: str | None = None
    type: Literal["token"] = "token"


PrimaryDef = RecordDef | QueryDef | ProcedureDef | SubscriptionDef | PermissionSetDef
MethodDef = QueryDef | ProcedureDef | SubscriptionDef

NamedDef = (
    PrimaryDef
    | TokenDef
    | ObjectDef
    | ArrayDef
    | StringDef
    | IntegerDef
    | BooleanDef
    | BytesDef
    | CidLinkDef
    | BlobDef
)
"""What a document may declare under `defs` (never ref, union, unknown, params or permission)."""


@dataclass(frozen=True, slots=True)
class LexiconDoc:
    id: str
    defs: Mapping[str, NamedDef]
    description: str | None = None
    revision: int | None = None

    @property
    def main(self) -> NamedDef | None:
        return self.defs.get("main")


def split_ref(ref: str) -> tuple[str, str]:
    """Split a canonical `nsid#name` reference into (nsid, name)."""
    nsid, _, name = ref.partition("#")
    return nsid, name or "main"


def short_ref(ref: str) -> str:
    """The form data uses in `$type`: `nsid` for main definitions, else `nsid#name`."""
    return ref[: -len("#main")] if ref.endswith("#main") else ref
