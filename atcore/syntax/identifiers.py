"""DIDs, handles, NSIDs, record keys, TIDs, AT identifiers and CID strings.

Every typed value here is a `str` subclass: cheap, hashable, equal to the plain string, and usable
anywhere a `str` is. Constructing one (`Did("did:plc:...")`) validates, so holding a `Did` means
holding a syntactically valid DID; `parse_*` functions are the named entry points and return an
already-typed value unchanged. Rules follow the atproto specs (did, handle, nsid, record-key, tid)
and the interop fixtures. Errors are the `InvalidSyntax` subclasses from `atcore.syntax.errors`.

The regexes are anchored with `fullmatch` (so a trailing newline never sneaks through `$`) and have
no ambiguous nested repetition, keeping them linear-time: they run for every record field validated.
"""

from __future__ import annotations

import re
from typing import Final, Self, TypeAlias

from atcore.syntax._common import shown
from atcore.syntax.errors import (
    InvalidCid,
    InvalidDid,
    InvalidHandle,
    InvalidNsid,
    InvalidRecordKey,
    InvalidSyntax,
    InvalidTid,
)

# --- DID ------------------------------------------------------------------------------------------

DID_MAX_LENGTH: Final = 2048
_DID_MATCH: Final = re.compile(r"did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]").fullmatch


class Did(str):
    """`did:<method>:<method-specific-id>`; the method is lowercase letters only."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        if len(value) > DID_MAX_LENGTH or _DID_MATCH(value) is None:
            raise InvalidDid(f"invalid DID: {shown(value)}")
        return super().__new__(cls, value)

    @property
    def method(self) -> str:
        """The DID method, e.g. `plc` or `web`."""
        return self[4 : self.index(":", 4)]

    @property
    def identifier(self) -> str:
        """The method-specific identifier (everything after the second colon)."""
        return self[self.index(":", 4) + 1 :]


def parse_did(value: str) -> Did:
    return value if type(value) is Did else Did(value)


def is_valid_did(value: str) -> bool:
    return len(value) <= DID_MAX_LENGTH and _DID_MATCH(value) is not None


# --- Handle ---------------------------------------------------------------------------------------

HANDLE_MAX_LENGTH: Final = 253
INVALID_HANDLE: Final = "handle.invalid"
"""Sentinel shown in place of a handle whose bidirectional verification failed."""

DISALLOWED_TLDS: Final = frozenset(
    (".alt", ".arpa", ".example", ".internal", ".invalid", ".local", ".localhost", ".onion")
)
"""TLDs that are syntactically fine in a handle but must never be registered or resolved."""

# Labels are 1-63 chars of letters, digits and inner hyphens; the TLD must start with a letter
# (which also rules out bare IPv4 addresses). At least two labels.
_HANDLE_MATCH: Final = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
).fullmatch


class Handle(str):
    """A DNS hostname used as an account handle. Case is preserved; see `normalize_handle`."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        if len(value) > HANDLE_MAX_LENGTH or _HANDLE_MATCH(value) is None:
            raise InvalidHandle(f"invalid handle: {shown(value)}")
        return super().__new__(cls, value)

    @property
    def tld(self) -> str:
        """The last label, lowercased (e.g. `social`)."""
        return self[self.rindex(".") + 1 :].lower()


def parse_handle(value: str) -> Handle:
    return value if type(value) is Handle else Handle(value)


def is_valid_handle(value: str) -> bool:
    return len(value) <= HANDLE_MAX_LENGTH and _HANDLE_MATCH(value) is not None


def normalize_handle(value: str) -> Handle:
    """Parse and lowercase: handles are case-insensitive and stored/compared in lowercase."""
    return Handle(parse_handle(value).lower())


def is_disallowed_handle_tld(handle: str) -> bool:
    """True when the handle ends in a TLD that is valid syntax but not allowed for accounts."""
    dot = handle.rfind(".")
    return dot >= 0 and handle[dot:].lower() in DISALLOWED_TLDS


# --- NSID -----------------------------------------------------------------------------------------

NSID_MAX_LENGTH: Final = 317
# Reversed domain authority (first segment = TLD, so it cannot start with a digit), at least two
# segments, then a name: a letter followed by letters/digits (the newer rules allow digits).
_NSID_MATCH: Final = re.compile(
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+"
    r"\.[a-zA-Z][a-zA-Z0-9]{0,62}"
).fullmatch


class Nsid(str):
    """Namespaced Identifier: `<reversed domain authority>.<name>`, e.g. `app.bsky.feed.post`."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        if not _nsid_ok(value):
            raise InvalidNsid(f"invalid NSID: {shown(value)}")
        return super().__new__(cls, value)

    @property
    def name(self) -> str:
        """The final segment (case-sensitive), e.g. `post`."""
        return self[self.rindex(".") + 1 :]

    @property
    def authority(self) -> str:
        """The domain authority as a lowercase hostname, e.g. `feed.bsky.app`."""
        return ".".join(reversed(self[: self.rindex(".")].split("."))).lower()

    @property
    def segments(self) -> list[str]:
        return self.split(".")


def _nsid_ok(value: str) -> bool:
    # The spec text also caps the authority at 253 chars, but the interop fixtures accept a
    # 283-char authority (as the reference implementations do), so only the overall cap applies.
    return len(value) <= NSID_MAX_LENGTH and _NSID_MATCH(value) is not None


def parse_nsid(value: str) -> Nsid:
    return value if type(value) is Nsid else Nsid(value)


def is_valid_nsid(value: str) -> bool:
    return _nsid_ok(value)


# --- Record key -----------------------------------------------------------------------------------

RECORD_KEY_MAX_LENGTH: Final = 512
_DOT_RECORD_KEYS: Final = frozenset((".", ".."))  # would be path traversal in a URL
_RECORD_KEY_MATCH: Final = re.compile(r"[a-zA-Z0-9_~.:-]{1,512}").fullmatch


class RecordKey(str):
    """A record key: 1-512 chars of `A-Za-z0-9 . - _ : ~`, never `.` or `..`."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        if not is_valid_record_key(value):
            raise InvalidRecordKey(f"invalid record key: {shown(value)}")
        return super().__new__(cls, value)


def parse_record_key(value: str) -> RecordKey:
    return value if type(value) is RecordKey else RecordKey(value)


def is_valid_record_key(value: str) -> bool:
    return _RECORD_KEY_MATCH(value) is not None and value not in _DOT_RECORD_KEYS


# --- TID ------------------------------------------------------------------------------------------

TID_LENGTH: Final = 13
S32_ALPHABET: Final = "234567abcdefghijklmnopqrstuvwxyz"
"""base32-sortable: digits ordered so that string order equals numeric order."""

# The 64-bit value has its top bit clear, so the first character carries only 4 bits (2..j).
_TID_MATCH: Final = re.compile(
    r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}"
).fullmatch
# Map base32-sortable digits onto the digits `int(..., 32)` understands (0-9a-v).
_S32_TO_INT_DIGITS: Final = str.maketrans(S32_ALPHABET, "0123456789abcdefghijklmnopqrstuv")
CLOCK_ID_BITS: Final = 10
CLOCK_ID_MASK: Final = (1 << CLOCK_ID_BITS) - 1


class Tid(str):
    """Timestamp Identifier: 53-bit microsecond timestamp and 10-bit clock id, base32-sortable.

    The syntax (spec regex and fixtures) admits first characters up to `j`, i.e. any value that
    fits 64 bits; generators only ever produce `2`-`b` (top bit clear). For a TID beyond that,
    `timestamp_us` is simply larger than 53 bits.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        if _TID_MATCH(value) is None:
            raise InvalidTid(f"invalid TID: {shown(value)}")
        return super().__new__(cls, value)

    def to_int(self) -> int:
        return int(self.translate(_S32_TO_INT_DIGITS), 32)

    @property
    def timestamp_us(self) -> int:
        """Microseconds since the Unix epoch."""
        return self.to_int() >> CLOCK_ID_BITS

    @property
    def clock_id(self) -> int:
        return self.to_int() & CLOCK_ID_MASK


def parse_tid(value: str) -> Tid:
    return value if type(value) is Tid else Tid(value)


def is_valid_tid(value: str) -> bool:
    return _TID_MATCH(value) is not None


# --- AT identifier --------------------------------------------------------------------------------

AtIdentifier: TypeAlias = Did | Handle
"""The authority of an AT URI and the `at-identifier` Lexicon format: a DID or a handle."""


def parse_at_identifier(value: str) -> AtIdentifier:
    """A DID when it starts with `did:`, otherwise a handle; raises the root `InvalidSyntax`."""
    if type(value) is Did or type(value) is Handle:
        return value
    try:
        return Did(value) if value.startswith("did:") else Handle(value)
    except InvalidSyntax as err:
        raise InvalidSyntax(f"not a DID or handle: {shown(value)}") from err


def is_valid_at_identifier(value: str) -> bool:
    return is_valid_did(value) if value.startswith("did:") else is_valid_handle(value)


# --- CID string -----------------------------------------------------------------------------------

# Loose, syntax-level only: any multibase-looking token of 8-256 chars. CIDv0 is not allowed in
# atproto; its text form (base58btc of a sha-256 multihash) always starts with `Qm`, and `Q` is no
# multibase prefix, so that prefix alone identifies it.
_CID_MATCH: Final = re.compile(r"[a-zA-Z0-9+=]{8,256}").fullmatch


def parse_cid_string(value: str) -> str:
    """Check that `value` looks like a CID string and return it (`CID.parse` does the decode)."""
    if not is_valid_cid_string(value):
        raise InvalidCid(f"invalid CID string: {shown(value)}")
    return value


def is_valid_cid_string(value: str) -> bool:
    return _CID_MATCH(value) is not None and not value.startswith("Qm")
