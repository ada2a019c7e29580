"""String formats, length measures and MIME matching used by the data validators.

Formats use the most expansive syntax the identifier specs allow (any DID method, any handle TLD),
as the Lexicon spec asks; application rules (supported DID methods, reserved TLDs) are not lexicon
validation errors. Datetimes follow the strict atproto profile (RFC 3339 ∩ ISO 8601, timezone
required).

Length measures are written to skip work: a Python `str` of n code points is between n and 4n UTF-8
bytes, and never has more grapheme clusters than code points, so most bounds are settled without
encoding or segmenting the string.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

import regex

from atcore.syntax import (
    is_valid_at_identifier,
    is_valid_at_uri,
    is_valid_cid_string,
    is_valid_datetime,
    is_valid_did,
    is_valid_handle,
    is_valid_language,
    is_valid_nsid,
    is_valid_record_key,
    is_valid_tid,
    is_valid_uri,
)

FormatCheck = Callable[[str], bool]

# format name -> (predicate, what a valid value is called in error messages)
FORMATS: Final[dict[str, tuple[FormatCheck, str]]] = {
    "at-identifier": (is_valid_at_identifier, "a valid DID or handle"),
    "at-uri": (is_valid_at_uri, "a valid AT-URI"),
    "cid": (is_valid_cid_string, "a valid CID string"),
    "datetime": (is_valid_datetime, "a valid datetime (RFC 3339 and ISO 8601, with timezone)"),
    "did": (is_valid_did, "a valid DID"),
    "handle": (is_valid_handle, "a valid handle"),
    "language": (is_valid_language, "a well-formed BCP 47 language tag"),
    "nsid": (is_valid_nsid, "a valid NSID"),
    "record-key": (is_valid_record_key, "a valid record key"),
    "tid": (is_valid_tid, "a valid TID"),
    "uri": (is_valid_uri, "a valid URI"),
}

_GRAPHEME: Final = regex.compile(r"\X")


def utf8_length(value: str) -> int:
    """Length of `value` in UTF-8 bytes (`isascii` is O(1) on CPython's compact strings)."""
    return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))


def grapheme_count(value: str, stop_after: int | None = None) -> int:
    """Extended grapheme clusters in `value`; counting may stop once it exceeds `stop_after`."""
    if value.isascii() and "\r\n" not in value:
        return len(value)  # every ASCII character but CR LF is a cluster of its own
    count = 0
    for _ in _GRAPHEME.finditer(value):
        count += 1
        if stop_after is not None and count > stop_after:
            break
    return count


def length_problem(value: str, min_length: int | None, max_length: int | None) -> str | None:
    """Why `value` breaks a UTF-8 byte-length bound, or None."""
    chars = len(value)
    if max_length is not None and chars > max_length:
        return f"must not be longer than {max_length} bytes (UTF-8)"
    if min_length is not None and 4 * chars < min_length:
        return f"must not be shorter than {min_length} bytes (UTF-8)"
    needs_max = max_length is not None and 4 * chars > max_length
    needs_min = min_length is not None and chars < min_length
    if not (needs_max or needs_min):
        return None
    size = utf8_length(value)
    if max_length is not None and size > max_length:
        return f"must not be longer than {max_length} bytes (UTF-8)"
    if min_length is not None and size < min_length:
        return f"must not be shorter than {min_length} bytes (UTF-8)"
    return None


def grapheme_problem(
    value: str, min_graphemes: int | None, max_graphemes: int | None
) -> str | None:
    """Why `value` breaks a grapheme-count bound, or None."""
    chars = len(value)
    if min_graphemes is not None and chars < min_graphemes:
        return f"must not be shorter than {min_graphemes} graphemes"
    needs_max = max_graphemes is not None and chars > max_graphemes
    if not needs_max and min_graphemes is None:
        return None
    # Counting past the upper bound (or past the lower one when there is no upper) tells nothing.
    count = grapheme_count(value, max_graphemes if max_graphemes is not None else min_graphemes)
    if max_graphemes is not None and count > max_graphemes:
        return f"must not be longer than {max_graphemes} graphemes"
    if min_graphemes is not None and count < min_graphemes:
        return f"must not be shorter than {min_graphemes} graphemes"
    return None


class MimeAccept:
    """A blob `accept` list: exact MIME types, `type/*` globs and `*/*` (case-insensitive)."""

    __slots__ = ("any", "exact", "patterns", "prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        lowered = [p.lower() for p in self.patterns]
        self.any = "*/*" in lowered
        self.exact = frozenset(p for p in lowered if not p.endswith("/*"))
        self.prefixes = tuple(p[:-1] for p in lowered if p.endswith("/*") and p != "*/*")

    def accepts(self, mime_type: str) -> bool:
        if self.any:
            return True
        # Parameters (`; charset=...`) do not change the media type.
        essence = mime_type.split(";", 1)[0].strip().lower()
        return essence in self.exact or any(essence.startswith(p) for p in self.prefixes)
