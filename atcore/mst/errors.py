"""The MST error tree: every failure in `atcore.mst` raises an `MSTError` (a `ValueError`).

MSTError
├── InvalidKeyError        a key is not a valid repo path (`collection/rkey`, <= 1024 bytes)
├── MalformedNodeError     a node block is not a canonical, well-formed MST node at its place
├── MissingBlockError      a node the operation needs is absent from the block store
├── KeyExistsError         `add` of a key that is already present
├── KeyNotFoundError       `update`/`delete` of an absent key
├── OpMismatchError        an op's expected current value disagrees with the tree
├── ProofError             a proof's blocks do not establish what was asked of them
└── InversionError         a Sync 1.1 commit cannot be inverted (bad ops or an incomplete slice)
"""

from __future__ import annotations

from atcore.cid import CID


class MSTError(ValueError):
    """Root of every error raised by `atcore.mst`."""


class InvalidKeyError(MSTError):
    """A key is not a valid MST key (repo path)."""


class MalformedNodeError(MSTError):
    """A node block does not decode to a canonical MST node valid at its position in the tree."""


class MissingBlockError(MSTError):
    """A node block needed by the operation is not in the block store."""

    def __init__(self, cid: CID) -> None:
        super().__init__(f"MST node block {cid} is not available")
        self.cid = cid


class KeyExistsError(MSTError):
    """`add` was asked to create a key that already exists."""


class KeyNotFoundError(MSTError):
    """`update` or `delete` was asked to change a key that does not exist."""


class OpMismatchError(MSTError):
    """An operation's expected value disagrees with the value in the tree."""


class ProofError(MSTError):
    """Proof blocks are missing, inconsistent with the root, or prove something else."""


class InversionError(MSTError):
    """A commit's ops cannot be inverted against the blocks it carries."""
