from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pds.blobstore import (
    BlobStoreConfig,
    BlobStoreConfigError,
    DiskBlobStore,
    DiskBlobStoreConfig,
    S3BlobStoreConfig,
    blobstore_from_config,
)
from pds.blobstore.s3 import S3BlobStore


def test_disk_from_env() -> None:
    config = BlobStoreConfig.from_env(
        {
            "PDS_BLOBSTORE_DISK_LOCATION": "/var/pds/blobs",
            "PDS_BLOBSTORE_DISK_TMP_LOCATION": "/var/pds/tmp",
        }
    )
    assert config.backend == DiskBlobStoreConfig(Path("/var/pds/blobs"), Path("/var/pds/tmp"))


def test_default_disk_location_applies_when_nothing_is_set() -> None:
    config = BlobStoreConfig.from_env({}, default_disk_location=Path("data/blocks"))
    assert config.backend == DiskBlobStoreConfig(Path("data/blocks"))


def test_nothing_configured_is_an_error() -> None:
    with pytest.raises(BlobStoreConfigError, match="PDS_BLOBSTORE_DISK_LOCATION"):
        BlobStoreConfig.from_env({"PDS_BLOBSTORE_DISK_LOCATION": "  "})


def test_s3_from_env() -> None:
    config = BlobStoreConfig.from_env(
        {
            "PDS_BLOBSTORE_S3_BUCKET": "blobs",
            "PDS_BLOBSTORE_S3_REGION": "eu-west-3",
            "PDS_BLOBSTORE_S3_ENDPOINT": "http://127.0.0.1:9000",
            "PDS_BLOBSTORE_S3_FORCE_PATH_STYLE": "true",
            "PDS_BLOBSTORE_S3_ACCESS_KEY_ID": "key",
            "PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY": "secret",
            "PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS": "45000",
        },
        default_disk_location=Path("ignored"),
    )
    assert config.backend == S3BlobStoreConfig(
        bucket="blobs",
        region="eu-west-3",
        endpoint="http://127.0.0.1:9000",
        access_key_id="key",
        secret_access_key="secret",
        force_path_style=True,
        upload_timeout=timedelta(seconds=45),
    )
    assert "secret" not in repr(config)


def test_s3_defaults() -> None:
    backend = BlobStoreConfig.from_env({"PDS_BLOBSTORE_S3_BUCKET": "blobs"}).backend
    assert backend == S3BlobStoreConfig(bucket="blobs")
    assert isinstance(backend, S3BlobStoreConfig)
    assert backend.upload_timeout == timedelta(seconds=20)
    assert backend.force_path_style is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"PDS_BLOBSTORE_DISK_LOCATION": "/b", "PDS_BLOBSTORE_S3_BUCKET": "b"},
            "not both",
        ),
        (
            {"PDS_BLOBSTORE_S3_BUCKET": "b", "PDS_BLOBSTORE_S3_ACCESS_KEY_ID": "k"},
            "both",
        ),
        (
            {"PDS_BLOBSTORE_S3_BUCKET": "b", "PDS_BLOBSTORE_S3_FORCE_PATH_STYLE": "maybe"},
            "true or false",
        ),
        (
            {"PDS_BLOBSTORE_S3_BUCKET": "b", "PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS": "20s"},
            "integer",
        ),
        (
            {"PDS_BLOBSTORE_S3_BUCKET": "b", "PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS": "0"},
            "positive",
        ),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(BlobStoreConfigError, match=message):
        BlobStoreConfig.from_env(env)


async def test_factory_builds_the_configured_store(tmp_path: Path) -> None:
    disk = blobstore_from_config(BlobStoreConfig(DiskBlobStoreConfig(tmp_path)))
    assert isinstance(disk, DiskBlobStore)
    assert disk.temp_location == tmp_path / "tmp"
    s3 = blobstore_from_config(
        BlobStoreConfig(S3BlobStoreConfig(bucket="blobs", endpoint="http://127.0.0.1:9"))
    )
    assert isinstance(s3, S3BlobStore)
    assert s3.bucket == "blobs"
    await s3.close()
    await disk.close()
