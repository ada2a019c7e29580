"""Where MST node blocks come from: a minimal read protocol plus an in-memory implementation.

The tree only ever *reads* through a `BlockStore`; writing the blocks a change creates is the
caller's job (the PDS persists `MST.new_blocks()` in its own transaction). That keeps the MST
storage-agnostic: the PDS backs it with SQLite, the firehose consumer with a commit's CAR slice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from atcore.cid import CID


@runtime_checkable
class BlockStore(Protocol):
    """Read access to content-addressed blocks."""

    def get(self, cid: CID) -> bytes | None:
        """The block with this CID, or None when the store does not hold it."""
        ...


class MemoryBlockStore:
    """A dict-backed block store (tests, CAR slices, building a repo before persisting it)."""

    __slots__ = ("_blocks",)

    def __init__(self, blocks: Mapping[CID, bytes] | None = None) -> None:
        self._blocks: dict[CID, bytes] = dict(blocks) if blocks else {}

    def get(self, cid: CID) -> bytes | None:
        return self._blocks.get(cid)

    def get_many(self, cids: Iterable[CID]) -> dict[CID, bytes]:
        """The blocks among `cids` that this store holds."""
        blocks = self._blocks
        return {cid: blocks[cid] for cid in cids if cid in blocks}

    def put(self, cid: CID, block: bytes) -> None:
        self._blocks[cid] = block

    def put_many(self, blocks: Mapping[CID, bytes]) -> None:
        self._blocks.update(blocks)

    def __contains__(self, cid: object) -> bool:
        return cid in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def __iter__(self) -> Iterator[CID]:
        return iter(self._blocks)


class OverlayBlockStore:
    """Reads `upper` first, then `lower` (e.g. a commit's blocks over the consumer's cache)."""

    __slots__ = ("_lower", "_upper")

    def __init__(self, upper: BlockStore, lower: BlockStore) -> None:
        self._upper = upper
        self._lower = lower

    def get(self, cid: CID) -> bytes | None:
        block = self._upper.get(cid)
        return block if block is not None else self._lower.get(cid)
