"""Blobs in an S3 bucket (AWS or any S3-compatible service), through boto3.

Key layout (the reference PDS's, so an existing bucket can be reused):

    tmp/<key>                 uploads not yet referenced by a record
    blocks/<did>/<cid>        permanent blobs
    quarantine/<did>/<cid>    blobs hidden by a takedown

Uploads stream in parts of `part_size` (8 MiB): the first part is held back, so a blob that fits in
it is sent with one PutObject; a larger one becomes a multipart upload and memory stays at about
two parts per upload. A failed, cancelled or timed-out upload is aborted; a lifecycle rule that
aborts incomplete multipart uploads after a day is still advisable for crashes.
`upload_timeout` bounds a whole upload, as in the reference PDS (default 20 s).

`make_permanent` is CopyObject then DeleteObject (CopyObject handles blobs up to 5 GiB, far above
any PDS upload limit). Reads are (ranged) GetObject calls streamed in 256 KiB chunks.

boto3 blocks, so every call runs on the store's own thread pool, keeping the event loop free and
blob traffic from starving other users of the default executor. Checksums are only sent when S3
requires them, which keeps S3-compatible services that predate CRC checksums working.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar

import boto3
from botocore.config import Config

from atcore.cid import CID

from .contract import (
    BlobNotFound,
    BlobReader,
    BlobStoreError,
    TempBlob,
    UploadTimedOut,
    check_did,
    check_range,
    check_temp_key,
    resolve_range,
)
from .s3_io import InvalidRange, PartUploader, S3BlobReader, run_boto
from .streaming import UploadMeter, batches, new_temp_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PART_SIZE: Final = 8 * 1024 * 1024
DEFAULT_UPLOAD_TIMEOUT: Final = timedelta(seconds=20)
DEFAULT_MAX_WORKERS: Final = 16
_DELETE_BATCH: Final = 1000  # DeleteObjects accepts at most this many keys

_P = ParamSpec("_P")
_T = TypeVar("_T")
_log = logging.getLogger(__name__)


class S3BlobStore:
    """A `BlobStore` on an S3 bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        force_path_style: bool = False,
        upload_timeout: timedelta = DEFAULT_UPLOAD_TIMEOUT,
        part_size: int = PART_SIZE,
        max_workers: int = DEFAULT_MAX_WORKERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Without explicit keys, boto3's usual credential chain (environment, profile, instance
        role) applies; `part_size` must be at least 5 MiB for real S3."""
        self.bucket = bucket
        self._client = _make_client(
            region=region,
            endpoint=endpoint,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            force_path_style=force_path_style,
            max_connections=max_workers,
        )
        self._upload_timeout = upload_timeout.total_seconds()
        self._part_size = part_size
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="blobstore-s3")

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
        upload = PartUploader(self._client, self.bucket, _temp_key(key))
        deadline = asyncio.timeout(self._upload_timeout)
        try:
            async with deadline:
                async for batch in batches(chunks, meter, batch_size=self._part_size):
                    await self._call(upload.absorb, batch, meter)
                await self._call(upload.commit)
        except BaseException as exc:
            await self._discard(upload)
            if isinstance(exc, TimeoutError) and deadline.expired():
                raise UploadTimedOut(f"upload took longer than {self._upload_timeout}s") from exc
            raise
        return meter.temp_blob(key, declared_mime)

    async def _discard(self, upload: PartUploader) -> None:
        # Cleanup must not hide the original failure; leftovers are reclaimed by temp GC and the
        # bucket's lifecycle rule.
        try:
            await self._call(upload.discard)
        except BlobStoreError:
            _log.warning("could not clean up a failed upload to %s", upload.key, exc_info=True)

    async def temp_exists(self, key: str) -> bool:
        return await self._object_exists(_temp_key(key))

    async def make_permanent(self, temp_key: str, did: str, cid: CID) -> None:
        source, target = _temp_key(temp_key), _blob_key(did, cid)
        if not await self._object_exists(target):
            try:
                await self._copy(source, target)
            except BlobNotFound:
                if await self._object_exists(target):  # a concurrent or earlier call moved it
                    return
                raise
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=source)

    async def delete_temp(self, key: str) -> None:
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=_temp_key(key))

    async def list_temp_older_than(self, age: timedelta) -> list[str]:
        cutoff = self._clock() - age.total_seconds()
        return await self._call(self._temp_keys_before, cutoff)

    def _temp_keys_before(self, cutoff: float) -> list[str]:
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix="tmp/"):
            keys.extend(
                entry["Key"].removeprefix("tmp/")
                for entry in page.get("Contents", [])
                if entry["LastModified"].timestamp() < cutoff
            )
        return keys

    # -- permanent blobs -------------------------------------------------------------------------
    async def get(
        self, did: str, cid: CID, *, start: int = 0, end: int | None = None
    ) -> BlobReader:
        check_range(start, end)
        key = _blob_key(did, cid)
        header = _range_header(start, end)
        try:
            if header is None:
                response = await self._call(self._client.get_object, Bucket=self.bucket, Key=key)
            else:
                response = await self._call(
                    self._client.get_object, Bucket=self.bucket, Key=key, Range=header
                )
        except InvalidRange:
            # S3 refuses a range starting past the end; report the size as HTTP 416 needs.
            resolve_range(await self.size(did, cid), start, end)
            raise BlobStoreError(f"S3 refused range {header} of {key}") from None
        reader = S3BlobReader.from_response(response, self._executor)
        if header is not None:
            await self._check_served_range(reader, start, end)
        return reader

    @staticmethod
    async def _check_served_range(reader: S3BlobReader, start: int, end: int | None) -> None:
        """Hold S3-compatible services to the range semantics the contract promises (some serve
        an empty object in full where S3 answers 416)."""
        try:
            expected = resolve_range(reader.size, start, end)
            if expected != (reader.start, reader.end):
                raise BlobStoreError(
                    f"S3 served bytes {reader.start}-{reader.end} instead of {expected}"
                )
        except BlobStoreError:
            await reader.aclose()
            raise

    async def size(self, did: str, cid: CID) -> int:
        head = await self._call(
            self._client.head_object, Bucket=self.bucket, Key=_blob_key(did, cid)
        )
        return head["ContentLength"]

    async def exists(self, did: str, cid: CID) -> bool:
        return await self._object_exists(_blob_key(did, cid))

    async def delete(self, did: str, cid: CID) -> None:
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=_blob_key(did, cid))

    async def delete_many(self, did: str, cids: Iterable[CID]) -> None:
        keys = [_blob_key(did, cid) for cid in cids]
        for first in range(0, len(keys), _DELETE_BATCH):
            await self._call(self._delete_keys, keys[first : first + _DELETE_BATCH])

    def _delete_keys(self, keys: Sequence[str]) -> None:
        response = self._client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        if errors := response.get("Errors"):
            raise BlobStoreError(f"S3 could not delete {len(errors)} blobs, e.g. {errors[0]}")

    async def quarantine(self, did: str, cid: CID) -> None:
        await self._move(_blob_key(did, cid), _quarantine_key(did, cid))

    async def unquarantine(self, did: str, cid: CID) -> None:
        await self._move(_quarantine_key(did, cid), _blob_key(did, cid))

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    # -- helpers ---------------------------------------------------------------------------------
    async def _move(self, source: str, target: str) -> None:
        try:
            await self._copy(source, target)
        except BlobNotFound:
            if await self._object_exists(target):  # already moved
                return
            raise
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=source)

    async def _copy(self, source: str, target: str) -> None:
        await self._call(
            self._client.copy_object,
            Bucket=self.bucket,
            Key=target,
            CopySource={"Bucket": self.bucket, "Key": source},
        )

    async def _object_exists(self, key: str) -> bool:
        try:
            await self._call(self._client.head_object, Bucket=self.bucket, Key=key)
        except BlobNotFound:
            return False
        return True

    async def _call(self, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await run_boto(self._executor, functools.partial(func, *args, **kwargs))


def _make_client(
    *,
    region: str | None,
    endpoint: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    force_path_style: bool,
    max_connections: int,
) -> S3Client:
    config = Config(
        region_name=region,
        s3={"addressing_style": "path" if force_path_style else "auto"},
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=max_connections,
        connect_timeout=10,
        read_timeout=60,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # A session per store: boto3's default session is shared module state and not thread-safe.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


def _range_header(start: int, end: int | None) -> str | None:
    if start == 0 and end is None:
        return None
    if start < 0:
        return f"bytes={start}"  # suffix: "bytes=-N"
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def _temp_key(key: str) -> str:
    return f"tmp/{check_temp_key(key)}"


def _blob_key(did: str, cid: CID) -> str:
    return f"blocks/{check_did(did)}/{cid}"


def _quarantine_key(did: str, cid: CID) -> str:
    return f"quarantine/{check_did(did)}/{cid}"
