"""Record-level operations: what a commit did to one repo path.

The same shape serves three places: writes applied to a tree (`MST.apply`), the output of `diff`,
and the `ops` of a firehose `#commit` (which Sync 1.1 inverts). `cid` is the value after the op
(None for a delete); `prev` is the value before it (None for a create).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from atcore.cid import CID
from atcore.mst.errors import KeyExistsError, KeyNotFoundError, MSTError, OpMismatchError

Action: TypeAlias = Literal["create", "update", "delete"]
ACTIONS: Final[frozenset[str]] = frozenset(("create", "update", "delete"))


@dataclass(frozen=True, slots=True)
class RecordOp:
    """One operation on one path. For writes, a non-None `prev` on update/delete is a swap check."""

    action: Action
    path: str
    cid: CID | None
    prev: CID | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise MSTError(f"unknown op action {self.action!r}")
        if (self.cid is None) != (self.action == "delete"):
            raise MSTError(f"{self.action} op on {self.path!r}: 'cid' must be set unless deleting")
        if self.action == "create" and self.prev is not None:
            raise MSTError(f"create op on {self.path!r} cannot have a 'prev'")

    @classmethod
    def create(cls, path: str, cid: CID) -> RecordOp:
        return cls("create", path, cid, None)

    @classmethod
    def update(cls, path: str, cid: CID, prev: CID | None = None) -> RecordOp:
        return cls("update", path, cid, prev)

    @classmethod
    def delete(cls, path: str, prev: CID | None = None) -> RecordOp:
        return cls("delete", path, None, prev)


# What a write expects to find at its key: anything (ANY_VALUE), nothing (None), some value
# (SOME_VALUE), or exactly a given CID.
ANY_VALUE: Final = object()
SOME_VALUE: Final = object()


def check_expected(key: bytes, prev: CID | None, expect: object) -> None:
    """Raise before mutating when the current value `prev` is not what the write expects."""
    if expect is ANY_VALUE:
        return
    if expect is None:
        if prev is not None:
            raise KeyExistsError(f"key {key.decode()!r} already exists")
    elif prev is None:
        raise KeyNotFoundError(f"key {key.decode()!r} does not exist")
    elif expect is not SOME_VALUE and prev != expect:
        raise OpMismatchError(f"key {key.decode()!r} holds {prev}, expected {expect}")
