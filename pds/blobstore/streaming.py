"""Streaming an upload through a store: size limit, sha-256, sniffing prefix, batching.

An upload arrives as many small chunks (an HTTP body read piecewise). The stores write it in
larger batches so each hop to a worker thread moves a useful amount of data, and hash each batch
in that same worker call: the event loop only counts bytes and copies them into the batch, so it
stays responsive, and memory per upload is bounded by about one batch (plus one chunk).

The size limit is checked as each chunk arrives, before it is buffered, so an oversized upload is
refused as soon as it passes the limit rather than after it has been stored.
"""

from __future__ import annotations

import hashlib
import secrets
from base64 import b32encode
from collections.abc import AsyncIterator
from typing import Final

from atcore.cid import CID

from .contract import BlobTooLarge, TempBlob
from .sniff import SNIFF_BYTES, sniff_mime_type


def new_temp_key() -> str:
    """A fresh unguessable temp key: 32 lowercase base32 characters (160 random bits)."""
    return b32encode(secrets.token_bytes(20)).decode("ascii").lower()


class UploadMeter:
    """Counts, hashes and samples one upload's bytes.

    `admit` runs on the event loop for each incoming chunk; `digest` runs in the worker thread
    that writes the batch. Batches are written one after another, so the hash sees them in order.
    """

    def __init__(self, *, max_size: int) -> None:
        if max_size < 0:
            raise ValueError(f"max_size must not be negative, got {max_size}")
        self.max_size: Final = max_size
        self.size = 0
        self._hash = hashlib.sha256()
        self._head = bytearray()

    def admit(self, chunk: bytes) -> None:
        """Account for a chunk; raises `BlobTooLarge` once the upload passes the limit."""
        self.size += len(chunk)
        if self.size > self.max_size:
            raise BlobTooLarge(self.max_size)
        if len(self._head) < SNIFF_BYTES:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]

    def digest(self, batch: bytes | bytearray) -> None:
        self._hash.update(batch)

    def temp_blob(self, key: str, declared_mime: str | None) -> TempBlob:
        """The finished upload's description (call after every batch was digested)."""
        cid = CID(CID.CIDV1_RAW_SHA256_32_PFX + self._hash.digest())
        mime_type = sniff_mime_type(bytes(self._head), declared_mime)
        return TempBlob(key=key, cid=cid, size=self.size, mime_type=mime_type)


async def batches(
    chunks: AsyncIterator[bytes], meter: UploadMeter, *, batch_size: int
) -> AsyncIterator[bytes]:
    """Regroup `chunks` into batches of at least `batch_size` bytes (the last may be smaller).

    Every chunk passes through `meter.admit` first, so the limit is enforced as data arrives.
    An empty upload yields nothing.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    pending = bytearray()
    async for chunk in chunks:
        if not chunk:
            continue
        meter.admit(chunk)
        if not pending and len(chunk) >= batch_size:
            yield chunk  # already big enough: pass it on without copying
            continue
        pending += chunk
        if len(pending) >= batch_size:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)
