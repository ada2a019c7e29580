"""The S3 blob store's moving parts: boto3 calls on the store's thread pool with errors in our
tree (`run_boto`), one upload's parts (`PartUploader`), and a streamed (ranged) GetObject body
(`S3BlobReader`). `pds.blobstore.s3.S3BlobStore` puts them together.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from .contract import BlobNotFound, BlobReader, BlobStoreError
from .streaming import UploadMeter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, GetObjectOutputTypeDef

_MISSING_CODES: Final = frozenset({"NoSuchKey", "NotFound", "404"})
_T = TypeVar("_T")


class InvalidRange(BlobStoreError):
    """S3 answered 416: the requested range starts past the end of the object."""


async def run_boto(executor: ThreadPoolExecutor, call: Callable[[], _T]) -> _T:
    """Run a blocking boto3 call on `executor`, translating its failures into our error tree."""
    try:
        return await asyncio.get_running_loop().run_in_executor(executor, call)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _MISSING_CODES:
            raise BlobNotFound(f"S3 has no such object ({code})") from None
        if code == "InvalidRange":
            raise InvalidRange(str(exc)) from exc
        raise BlobStoreError(f"S3 error {code}: {error.get('Message', exc)}") from exc
    except BotoCoreError as exc:
        raise BlobStoreError(f"S3 request failed: {exc}") from exc


class PartUploader:
    """One upload's S3 side. The first batch is held back: if no second one comes, the blob goes
    up with a single PutObject. A lock orders part uploads against `discard`, which a cancelled
    upload may call while a worker thread is still sending a part."""

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self.key = key
        self._client = client
        self._bucket = bucket
        self._lock = threading.Lock()
        self._held: bytes | None = None
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._stored = False

    def absorb(self, batch: bytes, meter: UploadMeter) -> None:
        with self._lock:
            meter.digest(batch)  # hashlib releases the GIL for large updates
            if self._upload_id is None and self._held is None:
                self._held = batch
                return
            if self._upload_id is None:
                response = self._client.create_multipart_upload(Bucket=self._bucket, Key=self.key)
                self._upload_id = response["UploadId"]
            if self._held is not None:
                self._send_part(self._held)
                self._held = None
            self._send_part(batch)

    def _send_part(self, data: bytes) -> None:
        assert self._upload_id is not None
        number = len(self._parts) + 1
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    def commit(self) -> None:
        with self._lock:
            if self._upload_id is None:
                self._client.put_object(Bucket=self._bucket, Key=self.key, Body=self._held or b"")
            else:
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            self._held = None
            self._stored = True

    def discard(self) -> None:
        with self._lock:
            self._held = None
            if self._stored:
                self._client.delete_object(Bucket=self._bucket, Key=self.key)
            elif self._upload_id is not None:
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self.key, UploadId=self._upload_id
                )


class S3BlobReader(BlobReader):
    def __init__(
        self, body: Any, executor: ThreadPoolExecutor, *, size: int, start: int, end: int
    ) -> None:
        super().__init__(size=size, start=start, end=end)
        self._body = body  # botocore StreamingBody
        self._executor = executor

    @classmethod
    def from_response(
        cls, response: GetObjectOutputTypeDef, executor: ThreadPoolExecutor
    ) -> S3BlobReader:
        length = response["ContentLength"]
        served = response.get("ContentRange")  # "bytes first-last/size" for a ranged GET
        if served:
            span, _, total = served.removeprefix("bytes ").partition("/")
            first = int(span.partition("-")[0])
            size = int(total)
        else:
            first, size = 0, length
        return cls(response["Body"], executor, size=size, start=first, end=first + length)

    async def _read(self, max_bytes: int) -> bytes:
        return await run_boto(self._executor, functools.partial(self._read_locked, max_bytes))

    def _read_locked(self, max_bytes: int) -> bytes:
        with self._lock:
            return b"" if self._closed else bytes(self._body.read(max_bytes))

    async def _close(self) -> None:
        await run_boto(self._executor, self._close_locked)

    def _close_locked(self) -> None:
        with self._lock:
            self._body.close()
