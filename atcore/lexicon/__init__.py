"""Lexicon: loading schema documents, checking them, and validating data against them.

    catalog = Catalog.from_directory("lexicons")
    catalog.validate_record("app.skyspot.checkin", record)      # raises ValidationError
    params = catalog.decode_params("app.skyspot.getFeed", request.query.items())

Data is in the data-model form (`atcore.cid.CID` links, `bytes`, blob dicts with a `CID` ref);
convert JSON with `atcore.dagcbor.json_to_data` first.

Errors (module `errors`): `LexiconError(ValueError)` > `InvalidLexiconDocument`, `LexiconNotFound`,
`ValidationError` (with `.path` such as `record/locations/0/latitude` and a message naming the
field, fit to return to clients as `InvalidRequest`).
"""

from atcore.lexicon.catalog import Catalog
from atcore.lexicon.documents import parse_document
from atcore.lexicon.errors import (
    InvalidLexiconDocument,
    LexiconError,
    LexiconNotFound,
    ValidationError,
)
from atcore.lexicon.schema import LexiconDoc

__all__ = [
    "Catalog",
    "InvalidLexiconDocument",
    "LexiconDoc",
    "LexiconError",
    "LexiconNotFound",
    "ValidationError",
    "parse_document",
]
