"""The blocks the MST reads while the writer (or a proof builder) works on a repository.

`atcore.mst.MST` reads nodes through a synchronous `BlockStore.get`, while the PDS's blocks sit
in SQLite behind an async driver. Rather than fetching a tree up front, tree work runs
optimistically against memory and faults blocks in:

1. `BlockCache` is a process-wide LRU of block bytes by CID (content addressed, so one cache
   serves every repository). Recently written repos keep their hot path (root, right edge, the
   commit) in it, so the usual write reads nothing from SQL.
2. `RepoView` is one piece of work's view: pending blocks of the current write batch over the
   cache. It records every CID the tree asked for, which is how the writer learns which old
   nodes a commit may have replaced (see `RepoWriter`).
3. `with_blocks(fn, fetch)` runs `fn`; when the tree hits a block that is not in memory
   (`MissingBlockError`), the block is fetched from SQL and `fn` runs again from the start on a
   freshly loaded tree (a tree interrupted mid-operation may be half-modified). A cold path costs
   one round trip per tree level once; after that the cache holds it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final, TypeVar

from atcore.cid import CID
from atcore.mst import MissingBlockError

DEFAULT_CACHE_BYTES: Final = 64 * 1024 * 1024
# A tree deeper than this would be astronomically large; more faults than this means a bug.
MAX_FAULTS: Final = 64

_T = TypeVar("_T")


class BlockCache:
    """A byte-bounded LRU of blocks by CID (not thread-safe: use from the event loop)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._blocks: OrderedDict[CID, bytes] = OrderedDict()
        self._size = 0
        self.max_bytes = max_bytes

    def get(self, cid: CID) -> bytes | None:
        block = self._blocks.get(cid)
        if block is not None:
            self._blocks.move_to_end(cid)
        return block

    def put(self, cid: CID, block: bytes) -> None:
        old = self._blocks.pop(cid, None)
        if old is not None:
            self._size -= len(old)
        self._blocks[cid] = block
        self._size += len(block)
        while self._size > self.max_bytes and self._blocks:
            _, evicted = self._blocks.popitem(last=False)
            self._size -= len(evicted)

    def put_many(self, blocks: Mapping[CID, bytes] | Iterable[tuple[CID, bytes]]) -> None:
        items = blocks.items() if isinstance(blocks, Mapping) else blocks
        for cid, block in items:
            self.put(cid, block)

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def size(self) -> int:
        return self._size


class RepoView:
    """Pending blocks over the cache, remembering every CID asked for (a `BlockStore`)."""

    __slots__ = ("_cache", "_pending", "touched")

    def __init__(self, cache: BlockCache, pending: Mapping[CID, bytes] | None = None) -> None:
        self._cache = cache
        self._pending = pending if pending is not None else {}
        self.touched: set[CID] = set()

    def get(self, cid: CID) -> bytes | None:
        self.touched.add(cid)
        block = self._pending.get(cid)
        return block if block is not None else self._cache.get(cid)


async def with_blocks(
    fn: Callable[[], _T], fetch: Callable[[CID], Awaitable[bytes | None]], cache: BlockCache
) -> _T:
    """Run `fn`, faulting missing blocks into `cache` through `fetch` and retrying.

    `fetch` returning None means the block is not stored at all: the repository is corrupt (or
    the caller's root is stale), and the `MissingBlockError` propagates.
    """
    for _ in range(MAX_FAULTS):
        try:
            return fn()
        except MissingBlockError as exc:
            block = await fetch(exc.cid)
            if block is None:
                raise
            cache.put(exc.cid, block)
    raise RuntimeError(f"tree work faulted more than {MAX_FAULTS} blocks in; giving up")
