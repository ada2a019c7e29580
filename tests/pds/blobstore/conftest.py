"""Fixtures for the blob store tests.

Every contract test runs against the disk store and against the S3 store talking HTTP to a real
local S3 endpoint (moto in server mode; boto3 is not patched).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from moto.server import ThreadedMotoServer

from pds.blobstore import BlobStore, DiskBlobStore
from pds.blobstore.s3 import DEFAULT_UPLOAD_TIMEOUT, S3BlobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BACKENDS = ("disk", "s3")
REGION = "us-east-1"
ACCESS_KEY = SECRET_KEY = "testing"  # moto accepts any credentials


class Clock:
    """Wall-clock time plus an adjustable offset: lets a test make every blob look old."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint: str) -> Iterator[S3Client]:
    """A plain boto3 client for creating buckets and looking behind the store's back."""
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    yield client
    client.close()


def new_bucket(s3_admin: S3Client) -> str:
    name = f"blobs-{uuid.uuid4().hex[:16]}"
    s3_admin.create_bucket(Bucket=name)
    return name


def make_s3_store(
    endpoint: str,
    bucket: str,
    clock: Clock | None = None,
    upload_timeout: timedelta = DEFAULT_UPLOAD_TIMEOUT,
) -> S3BlobStore:
    return S3BlobStore(
        bucket,
        region=REGION,
        endpoint=endpoint,
        force_path_style=True,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        clock=clock or time.time,
        upload_timeout=upload_timeout,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(
    backend: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> AsyncIterator[BlobStore]:
    if backend == "disk":
        made: BlobStore = DiskBlobStore(tmp_path / "blobs", clock=clock)
    else:
        # Only S3 runs need the server; disk-only selections never start it.
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = new_bucket(request.getfixturevalue("s3_admin"))
        made = make_s3_store(endpoint, bucket, clock)
    yield made
    await made.close()
