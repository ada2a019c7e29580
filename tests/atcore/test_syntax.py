"""atproto identifier syntax against the official interop fixtures, plus properties."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# --- Accessors, typed values and the error tree ----------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        syntax.InvalidDid,
        syntax.InvalidHandle,
        syntax.InvalidNsid,
        syntax.InvalidAtUri,
        syntax.InvalidUri,
        syntax.InvalidRecordKey,
        syntax.InvalidTid,
        syntax.InvalidDatetime,
        syntax.InvalidLanguage,
        syntax.InvalidCid,
    ],
)
def test_error_tree(error: type[Exception]) -> None:
    assert issubclass(error, InvalidSyntax)
    assert issubclass(error, ValueError)


def test_typed_values_are_strings() -> None:
    did = syntax.parse_did("did:plc:7iza6de2dwap2sbkpav7c6c6")
    assert isinstance(did, str)
    assert {"did:plc:7iza6de2dwap2sbkpav7c6c6": 1}[did] == 1
    assert syntax.parse_did(did) is did  # already typed: passes through untouched
    with pytest.raises(syntax.InvalidDid):
        syntax.Did("did:plc:")  # constructing validates too


def test_did_accessors() -> None:
    did = syntax.Did("did:web:localhost%3A1234")
    assert (did.method, did.identifier) == ("web", "localhost%3A1234")
    did = syntax.Did("did:method::::val")
    assert (did.method, did.identifier) == ("method", ":::val")


def test_handle_normalization_and_tld() -> None:
    handle = syntax.normalize_handle("Alice.BSKY.Social")
    assert handle == "alice.bsky.social"
    assert type(handle) is syntax.Handle
    assert syntax.Handle("XX.LCS.MIT.EDU").tld == "edu"
    with pytest.raises(syntax.InvalidHandle):
        syntax.normalize_handle("alice")


@pytest.mark.parametrize("tld", sorted(syntax.DISALLOWED_TLDS))
def test_disallowed_tlds_are_valid_syntax_but_disallowed(tld: str) -> None:
    handle = "laptop" + tld
    assert syntax.is_valid_handle(handle)
    assert syntax.is_disallowed_handle_tld(handle)
    assert syntax.is_disallowed_handle_tld(handle.upper())


@pytest.mark.parametrize("handle", ["alice.bsky.social", "john.test", "example.com", "a.co"])
def test_allowed_tlds(handle: str) -> None:
    assert not syntax.is_disallowed_handle_tld(handle)


def test_invalid_handle_sentinel() -> None:
    assert syntax.INVALID_HANDLE == "handle.invalid"
    assert syntax.is_valid_handle(syntax.INVALID_HANDLE)
    assert syntax.is_disallowed_handle_tld(syntax.INVALID_HANDLE)


def test_nsid_accessors() -> None:
    nsid = syntax.Nsid("app.bsky.feed.post")
    assert (nsid.authority, nsid.name) == ("feed.bsky.app", "post")
    assert nsid.segments == ["app", "bsky", "feed", "post"]
    assert syntax.Nsid("COM.Example.fooBar").authority == "example.com"
    assert syntax.Nsid("COM.Example.fooBar").name == "fooBar"


def test_at_identifier_types() -> None:
    assert type(syntax.parse_at_identifier("did:plc:abc")) is syntax.Did
    assert type(syntax.parse_at_identifier("alice.test")) is syntax.Handle
    with pytest.raises(InvalidSyntax, match="not a DID or handle"):
        syntax.parse_at_identifier("did:thing.test")


def test_at_uri_accessors() -> None:
    uri = syntax.AtUri("at://did:plc:asdf123/com.atproto.feed.post/record")
    assert (uri.authority, uri.collection, uri.rkey) == (
        "did:plc:asdf123",
        "com.atproto.feed.post",
        "record",
    )
    assert type(uri.authority) is syntax.Did
    assert type(uri.collection) is syntax.Nsid
    assert type(uri.rkey) is syntax.RecordKey
    assert uri.did == "did:plc:asdf123"
    repo_only = syntax.AtUri("at://user.bsky.social")
    assert type(repo_only.authority) is syntax.Handle
    assert (repo_only.collection, repo_only.rkey, repo_only.did) == (None, None, None)
    collection_only = syntax.AtUri("at://user.bsky.social/app.bsky.feed.post")
    assert (collection_only.collection, collection_only.rkey) == ("app.bsky.feed.post", None)


@pytest.mark.parametrize(
    ("authority", "collection", "rkey"),
    [
        ("did:plc:abc", None, "self"),  # a record key needs a collection
        ("not a did", "app.bsky.feed.post", None),
        ("did:plc:abc", "app.bsky", None),
        ("did:plc:abc", "app.bsky.feed.post", ".."),
    ],
)
def test_at_uri_make_rejects_bad_parts(
    authority: str, collection: str | None, rkey: str | None
) -> None:
    with pytest.raises(syntax.InvalidAtUri):
        syntax.AtUri.make(authority, collection, rkey)


def test_uri_scheme() -> None:
    assert syntax.Uri("HTTPS://example.com").scheme == "https"
    assert syntax.Uri("dns:example.com").scheme == "dns"


def test_datetime_accessors() -> None:
    moment = syntax.Datetime("1985-04-12T23:20:50.123456789-07:00")
    as_datetime = moment.to_datetime()
    assert as_datetime.utcoffset() == dt.timedelta(hours=-7)
    assert as_datetime.microsecond == 123456
    expected = dt.datetime(1985, 4, 13, 6, 20, 50, 123456, tzinfo=dt.UTC)
    assert as_datetime == expected
    assert moment.epoch_us == (expected - EPOCH) // dt.timedelta(microseconds=1)
    assert moment.epoch_ms == (expected - EPOCH) // dt.timedelta(milliseconds=1)


def test_year_zero_is_valid_but_not_a_python_datetime() -> None:
    moment = syntax.Datetime("0000-01-01T00:00:00.000Z")
    # 0000-01-01 is 366 days (year 0 is a leap year) before 0001-01-01.
    first_ce = (dt.datetime(1, 1, 1, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(milliseconds=1)
    assert moment.epoch_ms == first_ce - 366 * 86_400_000
    with pytest.raises(syntax.InvalidDatetime, match="range"):
        moment.to_datetime()


def test_datetime_from_naive_datetime_is_refused() -> None:
    with pytest.raises(syntax.InvalidDatetime, match="naive"):
        syntax.Datetime.from_datetime(dt.datetime(2024, 1, 1))


def test_datetime_now_is_preferred_form() -> None:
    now = syntax.Datetime.now()
    assert len(now) == 24
    assert now.endswith("Z")
    assert abs(now.to_datetime() - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("sloppy", "normalized"),
    [
        ("1985-04-12T23:20:50.123", "1985-04-12T23:20:50.123Z"),
        ("1985-04-12T23:20:50", "1985-04-12T23:20:50.000Z"),
        ("1985-04-12t23:20:50.123z", "1985-04-12T23:20:50.123Z"),
        ("1985-04-12 23:20:50.123Z", "1985-04-12T23:20:50.123Z"),
        ("1985-04-12T23:20:50.123-00:00", "1985-04-12T23:20:50.123Z"),
        ("1985-04-12T23:20:50.123+0000", "1985-04-12T23:20:50.123Z"),
        ("1985-04-12T23:20:50.123+02", "1985-04-12T21:20:50.123Z"),
        ("1985-04-12T23:20:50.1239-0130", "1985-04-13T00:50:50.123Z"),
        ("2000-02-29T23:59:59.999-2359", "2000-03-01T23:58:59.999Z"),
    ],
)
def test_lenient_datetime(sloppy: str, normalized: str) -> None:
    assert not syntax.is_valid_datetime(sloppy)
    parsed = syntax.parse_datetime_lenient(sloppy)
    assert parsed == normalized
    assert type(parsed) is syntax.Datetime


@pytest.mark.parametrize(
    "garbage", ["1985-04-12", "1985-02-29T00:00:00Z", "yesterday", "1985-04-12T23:20:50+24:00"]
)
def test_lenient_datetime_still_refuses_garbage(garbage: str) -> None:
    with pytest.raises(syntax.InvalidDatetime):
        syntax.parse_datetime_lenient(garbage)


def test_language_primary() -> None:
    assert syntax.Language("pt-BR").primary == "pt"
    assert syntax.Language("X-fr-CH").primary == "x"
    assert syntax.Language("i-default").primary == "i"


# --- Properties ----------------------------------------------------------------------------------

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

label = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,12}[a-zA-Z0-9])?", fullmatch=True)
tld_label = st.from_regex(r"[a-zA-Z](?:[a-zA-Z0-9-]{0,12}[a-zA-Z0-9])?", fullmatch=True)
handles = st.builds(
    lambda labels, tld: ".".join([*labels, tld]), st.lists(label, min_size=1, max_size=6), tld_label
)
nsid_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,20}", fullmatch=True)
nsid_parts = st.tuples(tld_label, st.lists(label, min_size=1, max_size=4), nsid_names)
dids = st.builds(
    lambda method, ident: f"did:{method}:{ident}",
    st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9._:%-]{0,30}[a-zA-Z0-9._-]", fullmatch=True),
)
record_keys = st.from_regex(r"[a-zA-Z0-9_~.:-]{1,40}", fullmatch=True).filter(
    lambda key: key not in {".", ".."}
)
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
aware_datetimes = st.datetimes(
    min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=offsets
)


@given(handles)
def test_generated_handles_parse_and_normalize(handle: str) -> None:
    assert syntax.parse_handle(handle) == handle
    normalized = syntax.normalize_handle(handle)
    assert normalized == handle.lower()
    assert syntax.parse_handle(normalized) == normalized
    assert type(syntax.parse_at_identifier(handle)) is syntax.Handle


@given(nsid_parts)
def test_generated_nsids_parse(parts: tuple[str, list[str], str]) -> None:
    tld, middle, name = parts
    text = ".".join([tld, *middle, name])
    nsid = syntax.parse_nsid(text)
    assert nsid == text
    assert nsid.name == name
    assert nsid.authority == ".".join(reversed([tld, *middle])).lower()
    # The domain authority is a valid handle once un-reversed (that is what makes it resolvable).
    assert syntax.is_valid_handle(nsid.authority)


@given(nsid_parts, st.sampled_from(["-", "_", "*", "#", "0"]))
def test_nsid_name_rejects_non_letter_start(parts: tuple[str, list[str], str], bad: str) -> None:
    tld, middle, name = parts
    assert not syntax.is_valid_nsid(".".join([tld, *middle, bad + name]))


@given(dids)
def test_generated_dids_parse(text: str) -> None:
    did = syntax.parse_did(text)
    assert f"did:{did.method}:{did.identifier}" == text
    assert type(syntax.parse_at_identifier(text)) is syntax.Did


@given(
    st.one_of(dids, handles),
    st.one_of(st.none(), nsid_parts),
    st.one_of(st.none(), record_keys),
)
def test_at_uri_make_parse_round_trip(
    authority: str, collection_parts: tuple[str, list[str], str] | None, rkey: str | None
) -> None:
    collection = None
    if collection_parts is not None:
        tld, middle, name = collection_parts
        collection = ".".join([tld, *middle, name])
    if rkey is not None and collection is None:
        with pytest.raises(syntax.InvalidAtUri):
            syntax.AtUri.make(authority, collection, rkey)
        return
    uri = syntax.AtUri.make(authority, collection, rkey)
    reparsed = syntax.parse_at_uri(str(uri))
    assert (reparsed.authority, reparsed.collection, reparsed.rkey) == (
        authority,
        collection,
        rkey,
    )


@given(aware_datetimes)
def test_datetime_from_datetime_round_trip(moment: dt.datetime) -> None:
    rendered = syntax.Datetime.from_datetime(moment)
    assert syntax.is_valid_datetime(rendered)
    truncated = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert rendered.to_datetime() == truncated
    assert rendered.epoch_ms == (moment - EPOCH) // dt.timedelta(milliseconds=1)


@given(aware_datetimes, st.from_regex(r"(?:\.[0-9]{1,12})?", fullmatch=True))
def test_any_offset_and_precision_agrees_with_python(moment: dt.datetime, fraction: str) -> None:
    # Written in its own offset with an arbitrary fraction: our calendar arithmetic must agree
    # with Python's on the instant (this checks the year-0-capable day counting).
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    zone = "Z" if minutes == 0 else f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    wall = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"  # %Y is not zero-padded before 1000
    text = wall + fraction + zone
    parsed = syntax.parse_datetime(text)
    whole = moment.replace(microsecond=int((fraction[1:] + "000000")[:6]))
    assert parsed.to_datetime() == whole
    assert parsed.epoch_us == (whole - EPOCH) // dt.timedelta(microseconds=1)
    # The lenient parser returns a strict value unchanged...
    assert syntax.parse_datetime_lenient(text) == text
    # ...and a value without its timezone as the same wall-clock time in UTC.
    naive_text = text[: -len(zone)]
    as_utc = syntax.parse_datetime_lenient(naive_text)
    assert as_utc.to_datetime() == whole.replace(
        tzinfo=dt.UTC, microsecond=whole.microsecond // 1000 * 1000
    )


language_variants = st.lists(
    st.from_regex(r"[a-z]{5,8}|[0-9][a-z0-9]{3}", fullmatch=True), min_size=1, max_size=3
)


@given(
    st.from_regex(r"[a-z]{2,3}", fullmatch=True),
    st.one_of(st.just(""), st.from_regex(r"-(?:[A-Z]{2}|[0-9]{3})", fullmatch=True)),
    language_variants,
)
def test_language_variants(primary: str, region: str, variants: list[str]) -> None:
    tag = primary + region + "".join("-" + variant for variant in variants)
    distinct = len({variant.lower() for variant in variants}) == len(variants)
    assert syntax.is_valid_language_syntax(tag)
    assert syntax.is_valid_language(tag) == distinct
    repeated = f"{tag}-{variants[0].upper()}"
    assert syntax.is_valid_language_syntax(repeated)
    assert not syntax.is_valid_language(repeated)
