"""What every blob store offers the PDS: the `BlobStore` protocol, its values and its errors.

Errors (one tree, rooted at `BlobStoreError`):

    BlobStoreError            the backend failed (I/O error, S3 error); the message says which
    ├── BlobNotFound          no such permanent blob (or temp key) for that DID and CID
    ├── BlobTooLarge          an upload went past `max_size`; nothing of it was kept
    ├── RangeNotSatisfiable   a byte range starts past the end of the blob (HTTP 416); has `.size`
    └── UploadTimedOut        an upload took longer than the store's upload timeout

Calling a store with arguments that can never be right (a malformed DID or temp key, an inverted
byte range) is a bug in the caller and raises a plain `ValueError`.

Byte ranges follow Python slicing rather than HTTP: `start` inclusive, `end` exclusive (`None`:
through the last byte), and a negative `start` with no `end` asks for the last `-start` bytes (an
HTTP suffix range). `parse_http_range` turns a `Range` header into those arguments.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Final, Protocol, Self

from atcore.cid import CID

READ_CHUNK_SIZE: Final = 256 * 1024

_TEMP_KEY: Final = re.compile(r"[a-z2-7]{32}")
_HTTP_RANGE: Final = re.compile(r"bytes=(\d*)-(\d*)")


class BlobStoreError(Exception):
    """The blob store could not do what was asked."""


class BlobNotFound(BlobStoreError):
    """No blob is stored under that DID and CID (or no temporary blob under that key)."""


class BlobTooLarge(BlobStoreError):
    """An upload exceeded its size limit; everything written for it has been removed."""

    def __init__(self, max_size: int) -> None:
        super().__init__(f"blob is larger than the limit of {max_size} bytes")
        self.max_size = max_size


class RangeNotSatisfiable(BlobStoreError):
    """A requested byte range lies outside the blob; `size` is the blob's length."""

    def __init__(self, size: int) -> None:
        super().__init__(f"requested range is outside the blob of {size} bytes")
        self.size = size


class UploadTimedOut(BlobStoreError):
    """An upload did not finish within the store's upload timeout; nothing of it was kept."""


@dataclass(frozen=True, slots=True)
class TempBlob:
    """An upload parked under `key` until a record references it (`make_permanent`)."""

    key: str
    cid: CID
    size: int
    mime_type: str


def check_temp_key(key: str) -> str:
    """Refuse anything but a key this package generated (it becomes a path or object name)."""
    if not _TEMP_KEY.fullmatch(key):
        raise ValueError(f"not a temporary blob key: {key!r}")
    return key


def is_temp_key(name: str) -> bool:
    return _TEMP_KEY.fullmatch(name) is not None


def check_did(did: str) -> str:
    # The PDS validates DIDs at the edge; this guard only keeps path and key building safe.
    if not did.startswith("did:") or "/" in did or "\x00" in did or len(did) > 2048:
        raise ValueError(f"not a DID: {did!r}")
    return did


def check_range(start: int, end: int | None) -> None:
    if start < 0 and end is not None:
        raise ValueError("a suffix range (negative start) cannot have an end")
    if end is not None and end <= start:
        raise ValueError(f"empty or inverted byte range: start={start}, end={end}")


def resolve_range(size: int, start: int, end: int | None) -> tuple[int, int]:
    """The concrete `[first, stop)` a request selects from a blob of `size` bytes.

    The whole blob (`start=0, end=None`) is always satisfiable, even when empty; any other range
    must start inside the blob. An `end` past the blob is clipped, as HTTP does.
    """
    check_range(start, end)
    if start == 0 and end is None:
        return 0, size
    if start < 0:
        if size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size + start), size
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, size if end is None else min(end, size)


def parse_http_range(header: str | None) -> tuple[int, int | None] | None:
    """`(start, end)` for a single-range `Range: bytes=...` header, else None (serve it whole).

    Multiple ranges and malformed headers are ignored, which RFC 9110 permits.
    """
    if not header:
        return None
    match = _HTTP_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        return (-int(last), None) if last and int(last) > 0 else None
    start = int(first)
    if not last:
        return start, None
    end = int(last) + 1
    return (start, end) if end > start else None


class BlobReader(ABC):
    """An open, possibly partial read of one blob: iterate it for chunks, then close it.

    `size` is the whole blob's length; `start`/`end` the slice being served (end exclusive).
    Use it as an async context manager so the underlying file or connection is released even
    when the consumer stops early. Reading on from a closed reader yields nothing more.
    """

    def __init__(self, *, size: int, start: int, end: int) -> None:
        self.size = size
        self.start = start
        self.end = end
        self._remaining = end - start
        # Serialises the backend's blocking read and close: a cancelled consumer may close the
        # reader while a worker thread is still inside a read.
        self._lock = threading.Lock()
        self._closed = False

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def is_partial(self) -> bool:
        return self.start > 0 or self.end < self.size

    @property
    def content_range(self) -> str:
        """The HTTP `Content-Range` value for this slice."""
        return f"bytes {self.start}-{self.end - 1}/{self.size}"

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while self._remaining > 0 and not self._closed:
            chunk = await self._read(min(READ_CHUNK_SIZE, self._remaining))
            if not chunk:
                raise BlobStoreError(f"blob ended {self._remaining} bytes early")
            self._remaining -= len(chunk)
            yield chunk

    async def read_all(self) -> bytes:
        """The whole selected slice (only for small blobs: it is held in memory)."""
        return b"".join([chunk async for chunk in self])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._close()

    @abstractmethod
    async def _read(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` more bytes of the slice (b"" only at an unexpected end)."""

    @abstractmethod
    async def _close(self) -> None:
        """Release the file or connection."""


class BlobStore(Protocol):
    """Blob storage for the PDS: temporary uploads, then permanent blobs per DID and CID."""

    async def put_temp(
        self,
        chunks: AsyncIterator[bytes],
        *,
        max_size: int,
        declared_mime: str | None = None,
    ) -> TempBlob:
        """Stream an upload to a temporary blob, hashing it on the way; durable on return."""
        ...

    async def temp_exists(self, key: str) -> bool: ...

    async def make_permanent(self, temp_key: str, did: str, cid: CID) -> None:
        """Move a temporary blob under `did`/`cid`; a no-op if that blob is already stored."""
        ...

    async def get(
        self, did: str, cid: CID, *, start: int = 0, end: int | None = None
    ) -> BlobReader:
        """Open a blob (or a byte range of it) for streaming; raises before any byte is sent."""
        ...

    async def size(self, did: str, cid: CID) -> int: ...

    async def exists(self, did: str, cid: CID) -> bool: ...

    async def delete(self, did: str, cid: CID) -> None:
        """Remove a blob; removing one that is absent is not an error."""
        ...

    async def delete_many(self, did: str, cids: Iterable[CID]) -> None: ...

    async def delete_temp(self, key: str) -> None: ...

    async def list_temp_older_than(self, age: timedelta) -> list[str]:
        """Keys of temporary blobs last written more than `age` ago (for garbage collection)."""
        ...

    async def quarantine(self, did: str, cid: CID) -> None:
        """Hide a blob (takedown) without deleting it; `get` then raises `BlobNotFound`."""
        ...

    async def unquarantine(self, did: str, cid: CID) -> None: ...

    async def close(self) -> None:
        """Release clients and worker threads."""
        ...
