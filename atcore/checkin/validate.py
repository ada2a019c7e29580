"""Full validation of check-in records: the lexicon first, then the semantic rules.

`validate_checkin` is for any check-in from outside (an XRPC write, a firehose commit).
`check_record` is the PDS's hook: Skyspot's own record types are validated on every write,
whatever the client's `validate` flag says, and refused when the catalog lacks their lexicon
(fail closed), so no invalid check-in ever reaches a repository this PDS hosts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from atcore import nsids
from atcore.checkin.errors import CheckinError
from atcore.checkin.model import Checkin
from atcore.checkin.parse import parse_checkin
from atcore.lexicon import Catalog, LexiconNotFound, ValidationError

ALWAYS_VALIDATED: Final = frozenset({nsids.SKYSPOT_CHECKIN})


def validate_checkin(
    catalog: Catalog,
    record: Mapping[str, Any],
    *,
    author: str | None = None,
    rkey: str | None = None,
) -> Checkin:
    """Check a data-model record against the lexicon and the rules; return the typed check-in.

    `author` is the repository's DID and `rkey` the record key, when known: they enable the
    companion-post checks (same repository, same record key) and, for `rkey`, the TID key rule.
    """
    try:
        if rkey is not None:
            catalog.validate_record_key(nsids.SKYSPOT_CHECKIN, rkey)
        catalog.validate_record(nsids.SKYSPOT_CHECKIN, record)
    except ValidationError as exc:
        raise CheckinError(exc.path, exc.reason) from None
    except LexiconNotFound as exc:
        raise CheckinError("", f"cannot validate {nsids.SKYSPOT_CHECKIN}: {exc}") from None
    return parse_checkin(record, author=author, rkey=rkey)


def check_record(
    catalog: Catalog, collection: str, rkey: str, record: Mapping[str, Any], *, author: str
) -> bool:
    """Validate a write if `collection` is always validated; False (nothing done) otherwise."""
    if collection not in ALWAYS_VALIDATED:
        return False
    validate_checkin(catalog, record, author=author, rkey=rkey)
    return True
