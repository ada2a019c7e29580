"""The syntax error tree: one `ValueError` root, one subclass per identifier kind.

    InvalidSyntax(ValueError)
    ├── InvalidDid
    ├── InvalidHandle
    ├── InvalidNsid
    ├── InvalidAtUri
    ├── InvalidUri
    ├── InvalidRecordKey
    ├── InvalidTid
    ├── InvalidDatetime
    ├── InvalidLanguage
    └── InvalidCid

`parse_at_identifier` raises the root `InvalidSyntax` (the value is neither a DID nor a handle).
"""

from __future__ import annotations


class InvalidSyntax(ValueError):
    """A string is not a valid atproto identifier of the expected kind."""


class InvalidDid(InvalidSyntax):
    """Not a DID (`did:<method>:<identifier>`, atproto's restricted syntax)."""


class InvalidHandle(InvalidSyntax):
    """Not a handle (a DNS hostname with at least two labels)."""


class InvalidNsid(InvalidSyntax):
    """Not a Namespaced Identifier (reversed domain authority plus a name)."""


class InvalidAtUri(InvalidSyntax):
    """Not an AT URI in the restricted (record-reference) syntax."""


class InvalidUri(InvalidSyntax):
    """Not a generic URI (scheme, colon, and a non-empty body without whitespace)."""


class InvalidRecordKey(InvalidSyntax):
    """Not a record key."""


class InvalidTid(InvalidSyntax):
    """Not a Timestamp Identifier (13 characters of base32-sortable, high bit clear)."""


class InvalidDatetime(InvalidSyntax):
    """Not an atproto datetime (RFC 3339 / ISO 8601 intersection, with a timezone)."""


class InvalidLanguage(InvalidSyntax):
    """Not a BCP-47 language tag (as restricted by atproto)."""


class InvalidCid(InvalidSyntax):
    """Not even superficially a CID string (see `atcore.cid.CID.parse` for the real decode)."""
