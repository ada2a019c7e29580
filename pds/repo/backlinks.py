"""Backlinks: which records point at which subject, for the four record types that must be unique.

The reference PDS keeps, beside its record index, a `backlink` index of the links that make a
record a duplicate of another: a follow or a block links to its subject DID (path `subject`), a
like or a repost to its subject's AT URI (path `subject.uri`). createRecord uses it to remove the
caller's older records of the same collection with the same link in the very commit that creates
the new one (`pds.repo.conflicts`), so a double-tapped like or a repeated follow leaves exactly
one record, even when both requests race.

The rules read the record's `$type` (the prepared record always carries one equal to its
collection) and index only well-formed links: a subject that is not a DID, or a `subject.uri`
that is not an AT URI, gives no backlink, as in the reference. Records written with
`validate: false` are indexed too; only the clean-up on create looks at the flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from atcore import nsids
from atcore.syntax import is_valid_at_uri, is_valid_did

SUBJECT: Final = "subject"
SUBJECT_URI: Final = "subject.uri"

# Collections whose records link to an account (their `subject` is a DID).
ACCOUNT_LINKS: Final = frozenset((nsids.BSKY_GRAPH_FOLLOW, nsids.BSKY_GRAPH_BLOCK))
# Collections whose records link to a record (their `subject` is a strong ref).
RECORD_LINKS: Final = frozenset((nsids.BSKY_FEED_LIKE, nsids.BSKY_FEED_REPOST))
BACKLINK_COLLECTIONS: Final = ACCOUNT_LINKS | RECORD_LINKS


@dataclass(frozen=True, slots=True)
class Backlink:
    """One link of a record: the field it sits in (`path`) and what it points at."""

    path: str
    link_to: str


def backlinks_of(record: Mapping[str, Any]) -> tuple[Backlink, ...]:
    """The backlinks of a record (data model form), empty for every other kind of record."""
    record_type = record.get("$type")
    subject = record.get("subject")
    if record_type in ACCOUNT_LINKS:
        if isinstance(subject, str) and is_valid_did(subject):
            return (Backlink(SUBJECT, subject),)
        return ()
    if record_type in RECORD_LINKS and isinstance(subject, Mapping):
        uri = subject.get("uri")
        if isinstance(uri, str) and is_valid_at_uri(uri):
            return (Backlink(SUBJECT_URI, uri),)
    return ()
