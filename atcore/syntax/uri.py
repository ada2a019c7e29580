"""AT URIs (the restricted, record-reference syntax) and generic URIs (Lexicon `uri` format).

An `AtUri` is `at://<authority>[/<collection>[/<rkey>]]` where the authority is a DID or handle,
the collection an NSID and the rkey a record key. Unlike the full AT URI grammar there is no query,
no fragment, no trailing slash and no deeper path: this is the form Lexicon's `at-uri` format and
record references (`strongRef.uri`) use, and what the interop fixtures require.

Both types are `str` subclasses that validate on construction. Errors: `InvalidAtUri`, `InvalidUri`.
"""

from __future__ import annotations

import re
from typing import Final, Self

from atcore.syntax._common import shown
from atcore.syntax.errors import InvalidAtUri, InvalidUri
from atcore.syntax.identifiers import (
    AtIdentifier,
    Did,
    Nsid,
    RecordKey,
    is_valid_at_identifier,
    is_valid_nsid,
    is_valid_record_key,
    parse_at_identifier,
    parse_nsid,
    parse_record_key,
)

URI_MAX_BYTES: Final = 8192
AT_URI_MAX_LENGTH: Final = 8192
_AT_PREFIX: Final = "at://"
_AT_PREFIX_LEN: Final = len(_AT_PREFIX)


def _at_uri_parts(value: str) -> list[str] | None:
    """Split and validate; None when `value` is not a restricted AT URI."""
    if len(value) > AT_URI_MAX_LENGTH or not value.startswith(_AT_PREFIX):
        return None
    parts = value[_AT_PREFIX_LEN:].split("/", 3)
    if len(parts) > 3 or not is_valid_at_identifier(parts[0]):
        return None
    if len(parts) > 1 and not is_valid_nsid(parts[1]):
        return None
    if len(parts) > 2 and not is_valid_record_key(parts[2]):
        return None
    return parts


class AtUri(str):
    """A restricted AT URI. Accessors re-split the (short) string rather than caching parts."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        if _at_uri_parts(value) is None:
            raise InvalidAtUri(f"invalid AT URI: {shown(value)}")
        return super().__new__(cls, value)

    @classmethod
    def make(cls, authority: str, collection: str | None = None, rkey: str | None = None) -> AtUri:
        """Build from parts, validating each (`rkey` needs a `collection`)."""
        try:
            text = _AT_PREFIX + parse_at_identifier(authority)
            if collection is not None:
                text += "/" + parse_nsid(collection)
            if rkey is not None:
                if collection is None:
                    raise InvalidAtUri("an AT URI with a record key needs a collection")
                text += "/" + parse_record_key(rkey)
        except ValueError as err:
            raise InvalidAtUri(f"invalid AT URI part: {err}") from err
        return cls(text)

    def _parts(self) -> list[str]:
        return self[_AT_PREFIX_LEN:].split("/", 2)

    @property
    def authority(self) -> AtIdentifier:
        return parse_at_identifier(self._parts()[0])

    @property
    def collection(self) -> Nsid | None:
        parts = self._parts()
        return Nsid(parts[1]) if len(parts) > 1 else None

    @property
    def rkey(self) -> RecordKey | None:
        parts = self._parts()
        return RecordKey(parts[2]) if len(parts) > 2 else None

    @property
    def did(self) -> Did | None:
        """The authority when it is a DID (records are canonically addressed by DID)."""
        authority = self.authority
        return authority if isinstance(authority, Did) else None


def parse_at_uri(value: str) -> AtUri:
    return value if type(value) is AtUri else AtUri(value)


def is_valid_at_uri(value: str) -> bool:
    return _at_uri_parts(value) is not None


# Generic URI: an RFC 3986 scheme, a colon, then a non-empty body without whitespace. The body is
# not restricted to ASCII because real records carry IRIs; the reference implementation is as lax.
_URI_MATCH: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+").fullmatch


class Uri(str):
    """A generic URI (Lexicon `uri` format), at most 8 KiB of UTF-8."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        if not is_valid_uri(value):
            raise InvalidUri(f"invalid URI: {shown(value)}")
        return super().__new__(cls, value)

    @property
    def scheme(self) -> str:
        return self[: self.index(":")].lower()


def parse_uri(value: str) -> Uri:
    return value if type(value) is Uri else Uri(value)


def is_valid_uri(value: str) -> bool:
    if len(value) > URI_MAX_BYTES:
        return False
    if not value.isascii() and len(value.encode("utf-8", "surrogatepass")) > URI_MAX_BYTES:
        return False
    return _URI_MATCH(value) is not None
