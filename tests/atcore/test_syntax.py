"""atproto identifier syntax against the official interop fixtures, plus properties."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from atcore import syntax
from atcore.syntax import InvalidSyntax
from tests.interop import lines

# kind -> (typed parser, boolean twin, the specific error it raises)
PARSERS: dict[str, tuple[Callable[[str], str], Callable[[str], bool], type[InvalidSyntax]]] = {
    "atidentifier": (syntax.parse_at_identifier, syntax.is_valid_at_identifier, InvalidSyntax),
    "aturi": (syntax.parse_at_uri, syntax.is_valid_at_uri, syntax.InvalidAtUri),
    "cid": (syntax.parse_cid_string, syntax.is_valid_cid_string, syntax.InvalidCid),
    "datetime": (syntax.parse_datetime, syntax.is_valid_datetime, syntax.InvalidDatetime),
    "did": (syntax.parse_did, syntax.is_valid_did, syntax.InvalidDid),
    "handle": (syntax.parse_handle, syntax.is_valid_handle, syntax.InvalidHandle),
    "language": (syntax.parse_language, syntax.is_valid_language, syntax.InvalidLanguage),
    "nsid": (syntax.parse_nsid, syntax.is_valid_nsid, syntax.InvalidNsid),
    "recordkey": (syntax.parse_record_key, syntax.is_valid_record_key, syntax.InvalidRecordKey),
    "tid": (syntax.parse_tid, syntax.is_valid_tid, syntax.InvalidTid),
    "uri": (syntax.parse_uri, syntax.is_valid_uri, syntax.InvalidUri),
}


def _cases(kind: str, mode: str, expect: str) -> list[object]:
    return lines(f"syntax/{kind}_{mode}_{expect}.txt")


def _check_valid(kind: str, value: str) -> None:
    parse, is_valid, _ = PARSERS[kind]
    parsed = parse(value)
    assert parsed == value
    assert is_valid(value)


def _check_invalid(kind: str, value: str) -> None:
    parse, is_valid, error = PARSERS[kind]
    assert not is_valid(value)
    with pytest.raises(error):
        parse(value)


@pytest.mark.parametrize("value", _cases("atidentifier", "syntax", "valid"))
def test_atidentifier_valid(value: str) -> None:
    _check_valid("atidentifier", value)


@pytest.mark.parametrize("value", _cases("atidentifier", "syntax", "invalid"))
def test_atidentifier_invalid(value: str) -> None:
    _check_invalid("atidentifier", value)


@pytest.mark.parametrize("value", _cases("aturi", "syntax", "valid"))
def test_aturi_valid(value: str) -> None:
    _check_valid("aturi", value)


@pytest.mark.parametrize("value", _cases("aturi", "syntax", "invalid"))
def test_aturi_invalid(value: str) -> None:
    _check_invalid("aturi", value)


@pytest.mark.parametrize("value", _cases("cid", "syntax", "valid"))
def test_cid_valid(value: str) -> None:
    _check_valid("cid", value)


@pytest.mark.parametrize("value", _cases("cid", "syntax", "invalid"))
def test_cid_invalid(value: str) -> None:
    _check_invalid("cid", value)


@pytest.mark.parametrize("value", _cases("datetime", "syntax", "valid"))
def test_datetime_valid(value: str) -> None:
    _check_valid("datetime", value)
    assert syntax.is_valid_datetime_syntax(value)
    assert syntax.parse_datetime_lenient(value) == value


@pytest.mark.parametrize("value", _cases("datetime", "syntax", "invalid"))
def test_datetime_syntax_invalid(value: str) -> None:
    _check_invalid("datetime", value)
    assert not syntax.is_valid_datetime_syntax(value)


@pytest.mark.parametrize("value", _cases("datetime", "parse", "invalid"))
def test_datetime_parse_invalid(value: str) -> None:
    # Superficially datetime-shaped, but semantically impossible: even the lenient parse refuses.
    _check_invalid("datetime", value)
    with pytest.raises(syntax.InvalidDatetime):
        syntax.parse_datetime_lenient(value)


@pytest.mark.parametrize("value", _cases("did", "syntax", "valid"))
def test_did_valid(value: str) -> None:
    _check_valid("did", value)


@pytest.mark.parametrize("value", _cases("did", "syntax", "invalid"))
def test_did_invalid(value: str) -> None:
    _check_invalid("did", value)


@pytest.mark.parametrize("value", _cases("handle", "syntax", "valid"))
def test_handle_valid(value: str) -> None:
    _check_valid("handle", value)
    assert syntax.normalize_handle(value) == value.lower()


@pytest.mark.parametrize("value", _cases("handle", "syntax", "invalid"))
def test_handle_invalid(value: str) -> None:
    _check_invalid("handle", value)


@pytest.mark.parametrize("value", _cases("language", "syntax", "valid"))
def test_language_valid(value: str) -> None:
    _check_valid("language", value)
    assert syntax.is_valid_language_syntax(value)


@pytest.mark.parametrize("value", _cases("language", "syntax", "invalid"))
def test_language_syntax_invalid(value: str) -> None:
    _check_invalid("language", value)
    assert not syntax.is_valid_language_syntax(value)


@pytest.mark.parametrize("value", _cases("language", "parse", "invalid"))
def test_language_parse_invalid(value: str) -> None:
    # Well-formed BCP 47 (the syntax check passes) but repeats a variant or extension singleton.
    assert syntax.is_valid_language_syntax(value)
    _check_invalid("language", value)


@pytest.mark.parametrize("value", _cases("nsid", "syntax", "valid"))
def test_nsid_valid(value: str) -> None:
    _check_valid("nsid", value)


@pytest.mark.parametrize("value", _cases("nsid", "syntax", "invalid"))
def test_nsid_invalid(value: str) -> None:
    _check_invalid("nsid", value)


@pytest.mark.parametrize("value", _cases("recordkey", "syntax", "valid"))
def test_recordkey_valid(value: str) -> None:
    _check_valid("recordkey", value)


@pytest.mark.parametrize("value", _cases("recordkey", "syntax", "invalid"))
def test_recordkey_invalid(value: str) -> None:
    _check_invalid("recordkey", value)


@pytest.mark.parametrize("value", _cases("tid", "syntax", "valid"))
def test_tid_valid(value: str) -> None:
    _check_valid("tid", value)


@pytest.mark.parametrize("value", _cases("tid", "syntax", "invalid"))
def test_tid_invalid(value: str) -> None:
    _check_invalid("tid", value)


@pytest.mark.parametrize("value", _cases("uri", "syntax", "valid"))
def test_uri_valid(value: str) -> None:
    _check_valid("uri", value)


@pytest.mark.parametrize("value", _cases("uri", "syntax", "invalid"))
def test_uri_invalid(value: str) -> None:
    _check_invalid("uri", value)
