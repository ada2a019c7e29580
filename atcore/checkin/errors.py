"""The check-in error: one class, naming the field at fault.

    CheckinError (ValueError)

`.path` is rooted at `record`, like the lexicon validator's paths (`record/locations/0/latitude`),
`.reason` says what is wrong (`must be at most 90`), and `str(error)` joins them: the message the
PDS hands back to clients as `InvalidRequest`. Lexicon failures met while validating a check-in
are re-raised as `CheckinError` with the lexicon's path, so callers catch one type.
"""

from __future__ import annotations


class CheckinError(ValueError):
    """A check-in record breaks the lexicon or one of Skyspot's semantic rules."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path} {reason}" if path else reason)
        self.path = path
        self.reason = reason

    @property
    def message(self) -> str:
        return str(self)
