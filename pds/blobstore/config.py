"""Which blob store the PDS uses, read from the reference PDS's environment variables.

    PDS_BLOBSTORE_DISK_LOCATION         directory for blobs on disk
    PDS_BLOBSTORE_DISK_TMP_LOCATION     directory for uploads (default: <disk location>/tmp)
    PDS_BLOBSTORE_S3_BUCKET             bucket for blobs in S3 (selects the S3 store)
    PDS_BLOBSTORE_S3_REGION             region (default: boto3's configuration)
    PDS_BLOBSTORE_S3_ENDPOINT           endpoint URL of an S3-compatible service
    PDS_BLOBSTORE_S3_FORCE_PATH_STYLE   true for path-style URLs (MinIO and most self-hosted S3)
    PDS_BLOBSTORE_S3_ACCESS_KEY_ID      access key (set both or neither; neither: boto3's chain)
    PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY  secret key
    PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS  longest a whole upload may take (default 20000)

Setting both a disk location and a bucket is an error, as in the reference PDS. With neither, the
caller's `default_disk_location` is used (the PDS passes `<data directory>/blocks`).

Errors: `BlobStoreConfigError` (a `ValueError`) for any missing, conflicting or malformed value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Final

_DEFAULT_UPLOAD_TIMEOUT_MS: Final = 20_000
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class BlobStoreConfigError(ValueError):
    """The blob store settings are missing, contradictory or malformed."""


@dataclass(frozen=True, slots=True)
class DiskBlobStoreConfig:
    location: Path
    temp_location: Path | None = None


@dataclass(frozen=True, slots=True)
class S3BlobStoreConfig:
    bucket: str
    region: str | None = None
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    force_path_style: bool = False
    upload_timeout: timedelta = timedelta(milliseconds=_DEFAULT_UPLOAD_TIMEOUT_MS)

    def __post_init__(self) -> None:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise BlobStoreConfigError(
                "set both PDS_BLOBSTORE_S3_ACCESS_KEY_ID and PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY,"
                " or neither"
            )
        if self.upload_timeout <= timedelta(0):
            raise BlobStoreConfigError("the S3 upload timeout must be positive")


@dataclass(frozen=True, slots=True)
class BlobStoreConfig:
    """The chosen backend and its settings (embedded in the PDS's settings object)."""

    backend: DiskBlobStoreConfig | S3BlobStoreConfig

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, default_disk_location: Path | None = None
    ) -> BlobStoreConfig:
        disk_location = _text(environ, "PDS_BLOBSTORE_DISK_LOCATION")
        bucket = _text(environ, "PDS_BLOBSTORE_S3_BUCKET")
        if disk_location and bucket:
            raise BlobStoreConfigError(
                "set PDS_BLOBSTORE_DISK_LOCATION or PDS_BLOBSTORE_S3_BUCKET, not both"
            )
        if bucket:
            return cls(_s3_from_env(environ, bucket))
        location = Path(disk_location) if disk_location else default_disk_location
        if location is None:
            raise BlobStoreConfigError("set PDS_BLOBSTORE_DISK_LOCATION or PDS_BLOBSTORE_S3_BUCKET")
        temp = _text(environ, "PDS_BLOBSTORE_DISK_TMP_LOCATION")
        return cls(DiskBlobStoreConfig(location, Path(temp) if temp else None))


def _s3_from_env(environ: Mapping[str, str], bucket: str) -> S3BlobStoreConfig:
    timeout_ms = _text(environ, "PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS")
    return S3BlobStoreConfig(
        bucket=bucket,
        region=_text(environ, "PDS_BLOBSTORE_S3_REGION"),
        endpoint=_text(environ, "PDS_BLOBSTORE_S3_ENDPOINT"),
        access_key_id=_text(environ, "PDS_BLOBSTORE_S3_ACCESS_KEY_ID"),
        secret_access_key=_text(environ, "PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY"),
        force_path_style=_flag(environ, "PDS_BLOBSTORE_S3_FORCE_PATH_STYLE"),
        upload_timeout=timedelta(
            milliseconds=_milliseconds(timeout_ms) if timeout_ms else _DEFAULT_UPLOAD_TIMEOUT_MS
        ),
    )


def _text(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = (_text(environ, name) or "false").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BlobStoreConfigError(f"{name} must be true or false, got {value!r}")


def _milliseconds(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BlobStoreConfigError(
            f"PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS must be an integer, got {value!r}"
        ) from None
