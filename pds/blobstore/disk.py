"""Blobs as files: `<location>/<did>/<cid>`, uploads in `<location>/tmp/<key>`.

Layout (the reference PDS's, so an existing blob directory can be reused):

    <location>/<escaped did>/<cid>               permanent blobs
    <location>/quarantine/<escaped did>/<cid>    blobs hidden by a takedown
    <temp location or location/tmp>/<key>        uploads not yet referenced by a record

The DID is percent-escaped except for `:` (so `did:plc:...` names are unchanged and no DID can
climb out of its directory); no DID directory can collide with `tmp` or `quarantine`.

Durability: an upload is fsynced (file and directory) before `put_temp` returns, and
`make_permanent` moves it with an atomic rename and fsyncs the destination directory, so a blob
the PDS has acknowledged survives a crash and a reader never sees a partial file. Deletions are
not fsynced: losing one in a crash only leaves garbage. When the temp directory is on another
filesystem, `make_permanent` copies to a hidden file beside the destination, fsyncs, and renames.

Blocking file work runs in worker threads (`asyncio.to_thread`), in batches of about 1 MiB for
writes and 256 KiB for reads, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO, Final, ParamSpec, TypeVar
from urllib.parse import quote

from atcore.cid import CID

from .contract import (
    READ_CHUNK_SIZE,
    BlobNotFound,
    BlobReader,
    BlobStoreError,
    TempBlob,
    check_did,
    check_range,
    check_temp_key,
    is_temp_key,
    resolve_range,
)
from .streaming import UploadMeter, batches, new_temp_key

WRITE_BATCH_SIZE: Final = 1024 * 1024

_P = ParamSpec("_P")
_T = TypeVar("_T")


class DiskBlobStore:
    """A `BlobStore` on a local (or mounted) filesystem."""

    def __init__(
        self,
        location: Path,
        temp_location: Path | None = None,
        *,
        write_batch_size: int = WRITE_BATCH_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.location = location
        self.temp_location = temp_location if temp_location is not None else location / "tmp"
        self._quarantine = location / "quarantine"
        self._write_batch_size = write_batch_size
        self._clock = clock

    # -- uploads ---------------------------------------------------------------------------------
    async def put_temp(
        self,
        chunks: AsyncIterator[bytes],
        *,
        max_size: int,
        declared_mime: str | None = None,
    ) -> TempBlob:
        meter = UploadMeter(max_size=max_size)
        key = new_temp_key()
        writer = await _in_thread(_TempFileWriter.create, self.temp_location / key)
        try:
            async for batch in batches(chunks, meter, batch_size=self._write_batch_size):
                await _in_thread(writer.absorb, batch, meter)
            await _in_thread(writer.commit)
        except BaseException:
            # Runs even when the upload was cancelled; the thread finishes whatever happens next.
            await asyncio.to_thread(writer.discard)
            raise
        return meter.temp_blob(key, declared_mime)

    async def temp_exists(self, key: str) -> bool:
        return await _in_thread(self._temp_path(key).is_file)

    async def make_permanent(self, temp_key: str, did: str, cid: CID) -> None:
        await _in_thread(self._make_permanent, self._temp_path(temp_key), self._blob_path(did, cid))

    def _make_permanent(self, source: Path, target: Path) -> None:
        if target.is_file():
            source.unlink(missing_ok=True)
            return
        _ensure_directory(target.parent)
        try:
            os.rename(source, target)
        except FileNotFoundError:
            if target.is_file():  # a concurrent or earlier call already moved it
                return
            raise BlobNotFound(f"no temporary blob {source.name}") from None
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _copy_durably(source, target)
            source.unlink()
        _fsync_directory(target.parent)

    async def delete_temp(self, key: str) -> None:
        await _in_thread(self._temp_path(key).unlink, missing_ok=True)

    async def list_temp_older_than(self, age: timedelta) -> list[str]:
        cutoff = self._clock() - age.total_seconds()
        return await _in_thread(self._temp_keys_before, cutoff)

    def _temp_keys_before(self, cutoff: float) -> list[str]:
        try:
            entries = list(os.scandir(self.temp_location))
        except FileNotFoundError:
            return []
        return [entry.name for entry in entries if _is_temp_file_before(entry, cutoff)]

    # -- permanent blobs -------------------------------------------------------------------------
    async def get(
        self, did: str, cid: CID, *, start: int = 0, end: int | None = None
    ) -> BlobReader:
        check_range(start, end)
        return await _in_thread(_DiskBlobReader.open, self._blob_path(did, cid), start, end)

    async def size(self, did: str, cid: CID) -> int:
        return await _in_thread(_file_size, self._blob_path(did, cid))

    async def exists(self, did: str, cid: CID) -> bool:
        return await _in_thread(self._blob_path(did, cid).is_file)

    async def delete(self, did: str, cid: CID) -> None:
        await _in_thread(self._blob_path(did, cid).unlink, missing_ok=True)

    async def delete_many(self, did: str, cids: Iterable[CID]) -> None:
        paths = [self._blob_path(did, cid) for cid in cids]
        await _in_thread(_unlink_all, paths)

    async def quarantine(self, did: str, cid: CID) -> None:
        await _in_thread(_move, self._blob_path(did, cid), self._quarantine_path(did, cid))

    async def unquarantine(self, did: str, cid: CID) -> None:
        await _in_thread(_move, self._quarantine_path(did, cid), self._blob_path(did, cid))

    async def close(self) -> None:
        """Nothing to release: every file is closed when its operation ends."""

    # -- paths -----------------------------------------------------------------------------------
    def _temp_path(self, key: str) -> Path:
        return self.temp_location / check_temp_key(key)

    def _blob_path(self, did: str, cid: CID) -> Path:
        return self.location / _did_directory(did) / str(cid)

    def _quarantine_path(self, did: str, cid: CID) -> Path:
        return self._quarantine / _did_directory(did) / str(cid)


def _did_directory(did: str) -> str:
    return quote(check_did(did), safe=":")


async def _in_thread(func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking file work in a worker thread, reporting OS failures as `BlobStoreError`."""
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except OSError as exc:
        raise BlobStoreError(f"disk blob store: {exc}") from exc


class _TempFileWriter:
    """One upload's file. A lock orders writes against `discard`, which a cancelled upload may
    call while a worker thread is still writing."""

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self._path = path
        self._file = file
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path) -> _TempFileWriter:
        _ensure_directory(path.parent)
        return cls(path, path.open("xb"))

    def absorb(self, batch: bytes, meter: UploadMeter) -> None:
        with self._lock:
            meter.digest(batch)  # hashlib releases the GIL for large updates
            self._file.write(batch)

    def commit(self) -> None:
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        _fsync_directory(self._path.parent)

    def discard(self) -> None:
        with self._lock:
            self._file.close()
            self._path.unlink(missing_ok=True)


class _DiskBlobReader(BlobReader):
    """Reads with as few thread hops as possible: opening also reads the first chunk, and the
    read that reaches the end closes the file, so a blob of up to one chunk costs a single hop."""

    def __init__(
        self, file: BinaryIO, first_chunk: bytes, *, size: int, start: int, end: int
    ) -> None:
        super().__init__(size=size, start=start, end=end)
        self._file = file
        self._prefetched: bytes | None = first_chunk or None

    @classmethod
    def open(cls, path: Path, start: int, end: int | None) -> _DiskBlobReader:
        try:
            file = path.open("rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no blob at {path.parent.name}/{path.name}") from None
        try:
            size = os.fstat(file.fileno()).st_size
            first, stop = resolve_range(size, start, end)
            file.seek(first)
            reader = cls(file, b"", size=size, start=first, end=stop)
            reader._prefetched = reader._read_locked(min(READ_CHUNK_SIZE, stop - first)) or None
        except BaseException:
            file.close()
            raise
        return reader

    async def _read(self, max_bytes: int) -> bytes:
        if self._prefetched is not None:
            chunk, self._prefetched = self._prefetched, None
            return chunk
        return await _in_thread(self._read_locked, max_bytes)

    def _read_locked(self, max_bytes: int) -> bytes:
        with self._lock:
            if self._file.closed:
                return b""
            chunk = self._file.read(max_bytes)
            if self._file.tell() >= self.end:
                self._file.close()
            return chunk

    async def _close(self) -> None:
        self._prefetched = None
        if not self._file.closed:
            await _in_thread(self._close_locked)

    def _close_locked(self) -> None:
        with self._lock:
            self._file.close()


def _is_temp_file_before(entry: os.DirEntry[str], cutoff: float) -> bool:
    if not is_temp_key(entry.name):
        return False
    try:
        stat = entry.stat(follow_symlinks=False)
    except FileNotFoundError:  # deleted since the directory was listed
        return False
    return S_ISREG(stat.st_mode) and stat.st_mtime < cutoff


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise BlobNotFound(f"no blob at {path.parent.name}/{path.name}") from None


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _move(source: Path, target: Path) -> None:
    """Move a stored blob between the live and quarantine trees (idempotent)."""
    _ensure_directory(target.parent)
    try:
        os.rename(source, target)
    except FileNotFoundError:
        if not target.is_file():
            raise BlobNotFound(f"no blob at {source.parent.name}/{source.name}") from None
        return
    _fsync_directory(target.parent)


def _copy_durably(source: Path, target: Path) -> None:
    """Copy across filesystems so that `target` appears complete or not at all."""
    partial = target.with_name(f".{target.name}.{source.name}.partial")
    try:
        shutil.copyfile(source, partial)
        with partial.open("rb+") as file:
            os.fsync(file.fileno())
        os.rename(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _ensure_directory(path: Path) -> None:
    """Create `path` and missing parents, fsyncing each parent so the new entries persist."""
    if path.is_dir():
        return
    _ensure_directory(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    _fsync_directory(path.parent)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
