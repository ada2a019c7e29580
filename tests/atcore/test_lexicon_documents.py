"""Lexicon documents: the interop fixtures, each language rule, and catalog loading."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from atcore.lexicon import (
    Catalog,
    InvalidLexiconDocument,
    LexiconError,
    LexiconNotFound,
    parse_document,
)
from atcore.lexicon.schema import ObjectDef, RecordDef, RefDef, UnionDef
from tests.interop import json_cases


@pytest.mark.parametrize("case", json_cases("lexicon/lexicon-valid.json", id_key="name"))
def test_interop_valid_lexicon(case: dict[str, Any]) -> None:
    doc = parse_document(case["lexicon"])
    assert doc.id == case["lexicon"]["id"]
    assert set(doc.defs) == set(case["lexicon"]["defs"])


@pytest.mark.parametrize("case", json_cases("lexicon/lexicon-invalid.json", id_key="name"))
def test_interop_invalid_lexicon(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidLexiconDocument):
        parse_document(case["lexicon"])


def test_interop_catalog_loads_with_only_the_external_ref_unresolved(interop: Path) -> None:
    catalog = Catalog.from_directory(interop / "lexicon" / "catalog")
    assert {doc.id for doc in catalog} == {
        "example.lexicon.permissionset",
        "example.lexicon.procedure",
        "example.lexicon.query",
        "example.lexicon.record",
        "example.lexicon.subscription",
    }
    assert catalog.reference_problems() == [
        "example.lexicon.procedure#main: ref app.bsky.actor.defs#preferences "
        "is not defined in the catalog"
    ]


# -- one document per rule -----------------------------------------------------------------------


def doc_with(defs: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"lexicon": 1, "id": "com.example.test", "defs": defs, **top}


def record_doc(properties: dict[str, Any], key_type: str = "tid", **record: Any) -> dict[str, Any]:
    body = {"type": "object", "properties": properties, **record}
    return doc_with({"main": {"type": "record", "key": key_type, "record": body}})


VALID_DOCS: dict[str, dict[str, Any]] = {
    "object main": doc_with({"main": {"type": "object", "properties": {}}}),
    "string def": doc_with({"name": {"type": "string", "maxLength": 10, "minLength": 10}}),
    "token def": doc_with({"blue": {"type": "token", "description": "a colour"}}),
    "published schema record": doc_with(
        {"main": {"type": "token"}}, **{"$type": "com.atproto.lexicon.schema"}
    ),
    "record key literal": record_doc({}, key_type="literal:self"),
    "record key nsid": record_doc({}, key_type="nsid"),
    "record key any": record_doc({}, key_type="any"),
    "nullable and required": record_doc({"a": {"type": "string"}}, required=["a"], nullable=["a"]),
    "integer default in range": record_doc(
        {"n": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3}}
    ),
    "string default in enum": record_doc(
        {"s": {"type": "string", "enum": ["a", "b"], "default": "b"}}
    ),
    "string const with format": record_doc(
        {"s": {"type": "string", "format": "nsid", "const": "com.example.x"}}
    ),
    "blob accept globs": record_doc(
        {"b": {"type": "blob", "accept": ["image/*", "video/mp4", "*/*"]}}
    ),
    "open empty union": record_doc({"u": {"type": "union", "refs": []}}),
    "local and absolute refs": doc_with(
        {
            "main": {"type": "object", "properties": {"x": {"type": "ref", "ref": "#other"}}},
            "other": {
                "type": "object",
                "properties": {
                    "y": {"type": "union", "refs": ["com.example.test", "com.example.b#c"]}
                },
            },
        }
    ),
    "query with params arrays": doc_with(
        {
            "main": {
                "type": "query",
                "parameters": {
                    "type": "params",
                    "required": ["q"],
                    "properties": {
                        "q": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}, "maxLength": 3},
                    },
                },
                "output": {"encoding": "application/json"},
                "errors": [{"name": "NotFound"}],
            }
        }
    ),
    "procedure with ref input": doc_with(
        {
            "main": {
                "type": "procedure",
                "input": {"encoding": "application/json", "schema": {"type": "ref", "ref": "#b"}},
            },
            "b": {"type": "object", "properties": {}},
        }
    ),
    "permission set with languages": doc_with(
        {
            "main": {
                "type": "permission-set",
                "title:lang": {"pt-BR": "Título"},
                "permissions": [
                    {"type": "permission", "resource": "repo", "collection": ["com.example.a"]}
                ],
            }
        }
    ),
}


@pytest.mark.parametrize("doc", VALID_DOCS.values(), ids=VALID_DOCS.keys())
def test_valid_document(doc: dict[str, Any]) -> None:
    assert parse_document(doc).id == "com.example.test"


def replace_main(**changes: Any) -> dict[str, Any]:
    doc = record_doc({"a": {"type": "string"}})
    doc["defs"]["main"].update(changes)
    return doc


INVALID_DOCS: dict[str, tuple[dict[str, Any], str]] = {
    "lexicon true": (doc_with({"a": {"type": "token"}}, lexicon=True), "lexicon must be"),
    "lexicon 2": (doc_with({"a": {"type": "token"}}, lexicon=2), "lexicon must be"),
    "no defs": (doc_with({}), "defs must be a non-empty object"),
    "id with fragment": (doc_with({"a": {"type": "token"}}, id="com.example.test#x"), "NSID"),
    "unexpected top-level field": (doc_with({"a": {"type": "token"}}, extra=1), "unexpected"),
    "wrong $type": (doc_with({"a": {"type": "token"}}, **{"$type": "com.example.x"}), "$type"),
    "bad def name": (doc_with({"a b": {"type": "token"}}), "definition name"),
    "union def": (doc_with({"a": {"type": "union", "refs": []}}), "named definition"),
    "params def": (doc_with({"a": {"type": "params", "properties": {}}}), "named definition"),
    "query not main": (doc_with({"q": {"type": "query"}}), "must be named main"),
    "permission-set not main": (
        doc_with({"p": {"type": "permission-set", "permissions": []}}),
        "must be named main",
    ),
    "unknown type": (doc_with({"a": {"type": "float"}}), "not allowed"),
    "typo field": (record_doc({"a": {"type": "string", "maxlength": 3}}), "unexpected"),
    "field of another type": (record_doc({"a": {"type": "integer", "maxLength": 3}}), "unexpected"),
    "record without key": (
        doc_with({"main": {"type": "record", "record": {"type": "object", "properties": {}}}}),
        "key",
    ),
    "record key unknown": (replace_main(key="uuid"), "key"),
    "record key bad literal": (replace_main(key="literal:a/b"), "key"),
    "record of non-object": (
        replace_main(record={"type": "string"}),
        "must have type object",
    ),
    "object without properties": (replace_main(record={"type": "object"}), "properties"),
    "required undeclared": (record_doc({"a": {"type": "string"}}, required=["b"]), "'b'"),
    "nullable undeclared": (record_doc({}, nullable=["b"]), "'b'"),
    "required twice": (record_doc({"a": {"type": "string"}}, required=["a", "a"]), "twice"),
    "min above max integer": (
        record_doc({"n": {"type": "integer", "minimum": 5, "maximum": 1}}),
        "greater than",
    ),
    "min above max string": (
        record_doc({"s": {"type": "string", "minLength": 5, "maxLength": 1}}),
        "greater than",
    ),
    "graphemes above bytes": (
        record_doc({"s": {"type": "string", "minGraphemes": 5, "maxLength": 4}}),
        "greater than",
    ),
    "negative length": (record_doc({"s": {"type": "string", "maxLength": -1}}), "at least 0"),
    "float bound": (record_doc({"n": {"type": "integer", "maximum": 1.5}}), "integer"),
    "boolean bound": (record_doc({"n": {"type": "integer", "maximum": True}}), "integer"),
    "array bounds": (
        record_doc(
            {"l": {"type": "array", "items": {"type": "string"}, "minLength": 3, "maxLength": 2}}
        ),
        "greater than",
    ),
    "array without items": (record_doc({"l": {"type": "array"}}), "items"),
    "default out of range": (
        record_doc({"n": {"type": "integer", "maximum": 5, "default": 6}}),
        "default",
    ),
    "default not in enum": (
        record_doc({"s": {"type": "string", "enum": ["a"], "default": "b"}}),
        "default",
    ),
    "const of wrong type": (record_doc({"b": {"type": "boolean", "const": "yes"}}), "boolean"),
    "const breaks format": (
        record_doc({"s": {"type": "string", "format": "did", "const": "nope"}}),
        "const",
    ),
    "const and default": (
        record_doc({"b": {"type": "boolean", "const": True, "default": True}}),
        "mutually exclusive",
    ),
    "empty enum": (record_doc({"s": {"type": "string", "enum": []}}), "empty"),
    "unknown format": (record_doc({"s": {"type": "string", "format": "email"}}), "format"),
    "partial mime glob": (record_doc({"b": {"type": "blob", "accept": ["image/p*"]}}), "MIME"),
    "bare star": (record_doc({"b": {"type": "blob", "accept": ["*"]}}), "MIME"),
    "closed empty union": (
        record_doc({"u": {"type": "union", "refs": [], "closed": True}}),
        "closed union",
    ),
    "union duplicate refs": (
        record_doc({"u": {"type": "union", "refs": ["#x", "com.example.test#x"]}}),
        "twice",
    ),
    "bad ref syntax": (record_doc({"r": {"type": "ref", "ref": "not an nsid"}}), "reference"),
    "ref with two fragments": (record_doc({"r": {"type": "ref", "ref": "a.b.c#d#e"}}), "reference"),
    "token as property": (record_doc({"t": {"type": "token"}}), "not allowed"),
    "params as property": (record_doc({"p": {"type": "params", "properties": {}}}), "not allowed"),
    "object param": (
        doc_with(
            {
                "main": {
                    "type": "query",
                    "parameters": {
                        "type": "params",
                        "properties": {"o": {"type": "object", "properties": {}}},
                    },
                }
            }
        ),
        "params hold",
    ),
    "array of bytes param": (
        doc_with(
            {
                "main": {
                    "type": "query",
                    "parameters": {
                        "type": "params",
                        "properties": {"l": {"type": "array", "items": {"type": "bytes"}}},
                    },
                }
            }
        ),
        "params arrays",
    ),
    "parameters not params": (
        doc_with({"main": {"type": "query", "parameters": {"type": "object", "properties": {}}}}),
        "type params",
    ),
    "input on query": (
        doc_with({"main": {"type": "query", "input": {"encoding": "application/json"}}}),
        "unexpected",
    ),
    "body without encoding": (doc_with({"main": {"type": "query", "output": {}}}), "encoding"),
    "body schema string": (
        doc_with(
            {
                "main": {
                    "type": "procedure",
                    "output": {"encoding": "application/json", "schema": {"type": "string"}},
                }
            }
        ),
        "object, a ref or a union",
    ),
    "error name with space": (
        doc_with({"main": {"type": "query", "errors": [{"name": "Not Found"}]}}),
        "error name",
    ),
    "subscription message object": (
        doc_with(
            {
                "main": {
                    "type": "subscription",
                    "message": {"schema": {"type": "object", "properties": {}}},
                }
            }
        ),
        "union",
    ),
    "subscription without message": (doc_with({"main": {"type": "subscription"}}), "message"),
    "permission without resource": (
        doc_with({"main": {"type": "permission-set", "permissions": [{"type": "permission"}]}}),
        "resource",
    ),
    "permission nested object": (
        doc_with(
            {
                "main": {
                    "type": "permission-set",
                    "permissions": [{"type": "permission", "resource": "repo", "x": {"a": 1}}],
                }
            }
        ),
        "must be a string",
    ),
    "bad title language": (
        doc_with(
            {"main": {"type": "permission-set", "title:lang": {"???": "x"}, "permissions": []}}
        ),
        "language",
    ),
}


@pytest.mark.parametrize(("doc", "fragment"), INVALID_DOCS.values(), ids=INVALID_DOCS.keys())
def test_invalid_document(doc: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidLexiconDocument) as info:
        parse_document(doc)
    assert fragment in str(info.value)
    assert str(info.value).startswith(("com.example.test", "lexicon document"))


def test_refs_are_stored_canonically() -> None:
    doc = parse_document(VALID_DOCS["local and absolute refs"])
    main, other = doc.defs["main"], doc.defs["other"]
    assert isinstance(main, ObjectDef)
    assert isinstance(other, ObjectDef)
    ref, union = main.properties["x"], other.properties["y"]
    assert isinstance(ref, RefDef)
    assert isinstance(union, UnionDef)
    assert ref.ref == "com.example.test#other"
    assert union.refs == ("com.example.test#main", "com.example.b#c")


def test_parsing_does_not_mutate_the_input() -> None:
    doc = VALID_DOCS["local and absolute refs"]
    before = copy.deepcopy(doc)
    parse_document(doc)
    assert doc == before


def test_error_tree() -> None:
    assert issubclass(LexiconError, ValueError)
    for cls in (InvalidLexiconDocument, LexiconNotFound):
        assert issubclass(cls, LexiconError)


# -- catalog loading -----------------------------------------------------------------------------


def write(root: Path, relpath: str, doc: object) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_from_directory_loads_the_nsid_tree_recursively(tmp_path: Path) -> None:
    write(tmp_path, "com/example/a.json", doc_with({"main": {"type": "token"}}, id="com.example.a"))
    write(
        tmp_path,
        "com/example/deep/b.json",
        record_doc({"x": {"type": "ref", "ref": "com.example.a"}}) | {"id": "com.example.deep.b"},
    )
    (tmp_path / "README.md").write_text("not a lexicon", encoding="utf-8")
    catalog = Catalog.from_directory(tmp_path)
    assert sorted(doc.id for doc in catalog) == ["com.example.a", "com.example.deep.b"]
    assert "com.example.a" in catalog
    assert len(catalog) == 2
    assert isinstance(catalog.get("com.example.deep.b").main, RecordDef)
    # A ref to a token is a problem only the whole catalog can see.
    assert catalog.reference_problems() == [
        "com.example.deep.b#main: ref com.example.a points to a token, which holds no data"
    ]


def test_from_directory_names_the_bad_file(tmp_path: Path) -> None:
    write(tmp_path, "com/example/bad.json", doc_with({"q": {"type": "query"}}))
    with pytest.raises(InvalidLexiconDocument, match=r"bad\.json: com\.example\.test"):
        Catalog.from_directory(tmp_path)


def test_from_directory_rejects_broken_json(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(InvalidLexiconDocument, match="not a JSON document"):
        Catalog.from_directory(tmp_path)


def test_from_directory_requires_a_directory(tmp_path: Path) -> None:
    with pytest.raises(LexiconNotFound):
        Catalog.from_directory(tmp_path / "missing")


def test_duplicate_ids_are_refused() -> None:
    catalog = Catalog([doc_with({"a": {"type": "token"}})])
    with pytest.raises(InvalidLexiconDocument, match="already loaded"):
        catalog.add(doc_with({"b": {"type": "token"}}))


def test_resolve_ref() -> None:
    catalog = Catalog([VALID_DOCS["local and absolute refs"]])
    other = catalog.resolve_ref("#other", "com.example.test")
    assert other is catalog.get("com.example.test").defs["other"]
    assert catalog.resolve_ref("com.example.test#other") is other
    assert catalog.resolve_ref("com.example.test") is catalog.get("com.example.test").main
    assert catalog.resolve_ref("com.example.test#main") is catalog.get("com.example.test").main
    with pytest.raises(LexiconNotFound):
        catalog.resolve_ref("#other")  # no context to resolve against
    with pytest.raises(LexiconNotFound):
        catalog.resolve_ref("com.example.test#nope")
    with pytest.raises(LexiconNotFound):
        catalog.get("com.example.nope")


def test_union_members_must_be_objects_or_records() -> None:
    catalog = Catalog(
        [
            doc_with(
                {
                    "main": {
                        "type": "object",
                        "properties": {"u": {"type": "union", "refs": ["#name"]}},
                    },
                    "name": {"type": "string"},
                }
            )
        ]
    )
    assert catalog.reference_problems() == [
        "com.example.test#main: union member com.example.test#name points to a string; "
        "union members must be objects or records"
    ]
    with pytest.raises(InvalidLexiconDocument, match="a union can not point to"):
        catalog.validate_value("com.example.test", {"u": {"$type": "com.example.test#name"}})
