"""Cross-document reference checks, possible only once every document is loaded.

A `ref` must point at a definition that holds data (never a token or a primary type other than a
record); a union member must point at an object or a record. Missing targets are reported too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from atcore.lexicon.schema import (
    ArrayDef,
    FieldDef,
    LexiconDoc,
    NamedDef,
    ObjectDef,
    ParamsDef,
    PermissionSetDef,
    ProcedureDef,
    QueryDef,
    RecordDef,
    RefDef,
    SubscriptionDef,
    TokenDef,
    UnionDef,
    short_ref,
)

_NOT_FOR_REFS = (TokenDef, QueryDef, ProcedureDef, SubscriptionDef, PermissionSetDef)


def reference_problems(docs: Iterable[LexiconDoc], defs: Mapping[str, NamedDef]) -> list[str]:
    """One message per reference that points nowhere or at a definition it can not use."""
    problems = []
    for doc in docs:
        for name, definition in doc.defs.items():
            for kind, ref in _references(definition):
                problem = _target_problem(kind, defs.get(ref))
                if problem:
                    problems.append(f"{doc.id}#{name}: {kind} {short_ref(ref)} {problem}")
    return problems


def _target_problem(kind: str, target: NamedDef | None) -> str | None:
    if target is None:
        return "is not defined in the catalog"
    if kind == "ref" and isinstance(target, _NOT_FOR_REFS):
        return f"points to a {target.type}, which holds no data"
    if kind == "union member" and not isinstance(target, ObjectDef | RecordDef):
        return f"points to a {target.type}; union members must be objects or records"
    return None


def _references(definition: NamedDef | FieldDef | ParamsDef | None) -> Iterator[tuple[str, str]]:
    """(kind, canonical ref) for every reference inside a definition, depth first."""
    match definition:
        case RefDef():
            yield "ref", definition.ref
        case UnionDef():
            for ref in definition.refs:
                yield "union member", ref
        case ArrayDef():
            yield from _references(definition.items)
        case ObjectDef() | ParamsDef():
            for prop in definition.properties.values():
                yield from _references(prop)
        case RecordDef():
            yield from _references(definition.record)
        case QueryDef() | ProcedureDef():
            yield from _references(definition.parameters)
            bodies = [definition.output]
            if isinstance(definition, ProcedureDef):
                bodies.append(definition.input)
            for body in bodies:
                if body is not None:
                    yield from _references(body.schema)
        case SubscriptionDef():
            yield from _references(definition.parameters)
            yield from _references(definition.message.schema)
        case _:
            return
