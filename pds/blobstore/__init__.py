"""Blob storage for the PDS: uploads land as temporary blobs, records make them permanent.

The flow the PDS drives:

1. `com.atproto.repo.uploadBlob` streams the request body into `put_temp`, which hashes it on the
   way (CIDv1, raw codec, sha-256), enforces the size limit as bytes arrive, sniffs the MIME type
   from the first bytes, and returns a `TempBlob` once the bytes are durable.
2. When a record referencing the CID is written, the PDS calls `make_permanent(key, did, cid)`.
3. `com.atproto.sync.getBlob` opens a `BlobReader` with `get` (optionally a byte range; see
   `parse_http_range`) and streams it; errors surface before the first byte is sent.
4. Temporary blobs never referenced are collected with `list_temp_older_than` + `delete_temp`.

Two backends implement the `BlobStore` protocol: `DiskBlobStore` (`pds.blobstore.disk`) and
`S3BlobStore` (`pds.blobstore.s3`, imported on demand so a disk-only PDS never loads boto3).
`blobstore_from_config` builds the one the settings name. The error tree is documented in
`pds.blobstore.contract`; the settings in `pds.blobstore.config`.
"""

from __future__ import annotations

from .config import BlobStoreConfig, BlobStoreConfigError, DiskBlobStoreConfig, S3BlobStoreConfig
from .contract import (
    BlobNotFound,
    BlobReader,
    BlobStore,
    BlobStoreError,
    BlobTooLarge,
    RangeNotSatisfiable,
    TempBlob,
    UploadTimedOut,
    parse_http_range,
)
from .disk import DiskBlobStore
from .sniff import sniff_mime_type

__all__ = [
    "BlobNotFound",
    "BlobReader",
    "BlobStore",
    "BlobStoreConfig",
    "BlobStoreConfigError",
    "BlobStoreError",
    "BlobTooLarge",
    "DiskBlobStore",
    "DiskBlobStoreConfig",
    "RangeNotSatisfiable",
    "S3BlobStoreConfig",
    "TempBlob",
    "UploadTimedOut",
    "blobstore_from_config",
    "parse_http_range",
    "sniff_mime_type",
]


def blobstore_from_config(config: BlobStoreConfig) -> BlobStore:
    """The store the settings describe (call `close()` on it at shutdown)."""
    backend = config.backend
    if isinstance(backend, DiskBlobStoreConfig):
        return DiskBlobStore(backend.location, backend.temp_location)
    from .s3 import S3BlobStore

    return S3BlobStore(
        backend.bucket,
        region=backend.region,
        endpoint=backend.endpoint,
        access_key_id=backend.access_key_id,
        secret_access_key=backend.secret_access_key,
        force_path_style=backend.force_path_style,
        upload_timeout=backend.upload_timeout,
    )
