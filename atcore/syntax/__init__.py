"""atproto identifier syntax: typed, validated string values parsed at the edge.

Every type is a `str` subclass that validates when constructed, so it is hashable, compares equal
to the plain string and can be used wherever a `str` is:

    Did, Handle, Nsid, RecordKey, Tid, AtIdentifier (= Did | Handle)   -> identifiers.py
    AtUri (restricted record-reference syntax), Uri (generic)            -> uri.py
    Datetime                                                             -> datetimes.py
    Language                                                             -> language.py

Each kind has `parse_<kind>(str) -> <Kind>` (raises) and `is_valid_<kind>(str) -> bool`; an
already-typed value passes through `parse_<kind>` unchanged. `parse_cid_string` is a syntax-level
check only; `atcore.cid.CID.parse` decodes.

Error tree (all in `atcore.syntax.errors`):

    InvalidSyntax(ValueError)
    ├── InvalidDid, InvalidHandle, InvalidNsid, InvalidAtUri, InvalidUri
    ├── InvalidRecordKey, InvalidTid, InvalidDatetime, InvalidLanguage
    └── InvalidCid

`parse_at_identifier` raises the root `InvalidSyntax`.
"""

from __future__ import annotations

from atcore.syntax.datetimes import (
    Datetime,
    is_valid_datetime,
    is_valid_datetime_syntax,
    parse_datetime,
    parse_datetime_lenient,
)
from atcore.syntax.errors import (
    InvalidAtUri,
    InvalidCid,
    InvalidDatetime,
    InvalidDid,
    InvalidHandle,
    InvalidLanguage,
    InvalidNsid,
    InvalidRecordKey,
    InvalidSyntax,
    InvalidTid,
    InvalidUri,
)
from atcore.syntax.identifiers import (
    DISALLOWED_TLDS,
    INVALID_HANDLE,
    AtIdentifier,
    Did,
    Handle,
    Nsid,
    RecordKey,
    Tid,
    is_disallowed_handle_tld,
    is_valid_at_identifier,
    is_valid_cid_string,
    is_valid_did,
    is_valid_handle,
    is_valid_nsid,
    is_valid_record_key,
    is_valid_tid,
    normalize_handle,
    parse_at_identifier,
    parse_cid_string,
    parse_did,
    parse_handle,
    parse_nsid,
    parse_record_key,
    parse_tid,
)
from atcore.syntax.language import (
    Language,
    is_valid_language,
    is_valid_language_syntax,
    parse_language,
)
from atcore.syntax.uri import AtUri, Uri, is_valid_at_uri, is_valid_uri, parse_at_uri, parse_uri

__all__ = [
    "DISALLOWED_TLDS",
    "INVALID_HANDLE",
    "AtIdentifier",
    "AtUri",
    "Datetime",
    "Did",
    "Handle",
    "InvalidAtUri",
    "InvalidCid",
    "InvalidDatetime",
    "InvalidDid",
    "InvalidHandle",
    "InvalidLanguage",
    "InvalidNsid",
    "InvalidRecordKey",
    "InvalidSyntax",
    "InvalidTid",
    "InvalidUri",
    "Language",
    "Nsid",
    "RecordKey",
    "Tid",
    "Uri",
    "is_disallowed_handle_tld",
    "is_valid_at_identifier",
    "is_valid_at_uri",
    "is_valid_cid_string",
    "is_valid_datetime",
    "is_valid_datetime_syntax",
    "is_valid_did",
    "is_valid_handle",
    "is_valid_language",
    "is_valid_language_syntax",
    "is_valid_nsid",
    "is_valid_record_key",
    "is_valid_tid",
    "is_valid_uri",
    "normalize_handle",
    "parse_at_identifier",
    "parse_at_uri",
    "parse_cid_string",
    "parse_datetime",
    "parse_datetime_lenient",
    "parse_did",
    "parse_handle",
    "parse_language",
    "parse_nsid",
    "parse_record_key",
    "parse_tid",
    "parse_uri",
]
