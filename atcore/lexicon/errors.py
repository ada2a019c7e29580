"""The lexicon error tree.

    LexiconError (ValueError)
    ├── InvalidLexiconDocument   a lexicon document breaks the Lexicon language rules
    ├── LexiconNotFound          no document / definition for an NSID or reference
    └── ValidationError          data does not match its schema

`ValidationError` carries a JSON-path-like `.path` (`record/locations/0/latitude`) and a `.reason`
(`must be a string`); `str(error)` joins them into the message the PDS hands back to clients as an
`InvalidRequest`. Validators raise it with the reason only and every enclosing container prepends
its own segment on the way out, so the happy path never builds a path string.
"""

from __future__ import annotations

from collections.abc import Iterable


class LexiconError(ValueError):
    """Root of every lexicon error."""


class InvalidLexiconDocument(LexiconError):
    """A lexicon document (or a reference between documents) breaks the Lexicon language rules."""


class LexiconNotFound(LexiconError):
    """The catalog has no document or definition for the NSID or reference asked for."""


class ValidationError(LexiconError):
    """Data does not match its lexicon schema."""

    def __init__(self, reason: str, path: Iterable[str | int] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        # Stored innermost-first: enclosing validators append as the error propagates outwards.
        self._segments_reversed: list[str] = [str(segment) for segment in reversed(list(path))]

    def within(self, segment: str | int) -> ValidationError:
        """Record that the failing value sits under `segment` of its parent; returns self."""
        self._segments_reversed.append(str(segment))
        return self

    @property
    def segments(self) -> tuple[str, ...]:
        """Path segments from the root to the failing value."""
        return tuple(reversed(self._segments_reversed))

    @property
    def path(self) -> str:
        """The path from the root to the failing value, e.g. `record/locations/0/latitude`."""
        return "/".join(self.segments)

    @property
    def message(self) -> str:
        """Human-readable message naming the field, e.g. `record/text must be a string`."""
        path = self.path
        return f"{path} {self.reason}" if path else self.reason

    def __str__(self) -> str:
        return self.message
