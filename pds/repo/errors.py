"""The repository error tree (see `pds.repo`); messages are safe to return to clients.

`error` is the XRPC error name the API answers with (`InvalidRequest` unless a lexicon or the
reference implementation names a more specific one, such as `InvalidSwap` or `BlobNotFound`).
"""

from __future__ import annotations

from typing import ClassVar


class RepoError(ValueError):
    """Root of every repository error."""

    default_error: ClassVar[str] = "InvalidRequest"

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error or self.default_error


class InvalidWrite(RepoError):
    """A write cannot be applied as asked: bad input, or an op the repo state does not allow."""


class BlobNotFound(InvalidWrite):
    """A record references a blob that was never uploaded to this repository."""

    default_error = "BlobNotFound"


class InvalidSwap(RepoError):
    """A compare-and-swap precondition (`swapCommit` or `swapRecord`) did not hold."""

    default_error = "InvalidSwap"


class RepoNotFound(RepoError):
    """The DID has no repository on this PDS."""


class AccountUnavailable(RepoError):
    """The account is taken down or deactivated: its repository accepts no writes."""
