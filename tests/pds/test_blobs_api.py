"""Blobs over HTTP: the real `atproto` SDK posting an image, getBlob (headers, ranges), listBlobs,
upload limits and errors, on the disk store and on S3 (a local moto server, real HTTP)."""

from __future__ import annotations

import asyncio
import random
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from atproto import Client

from atcore import nsids
from atcore.cid import CID
from pds.blobstore import DiskBlobStore
from tests.pds.blobstore.conftest import (  # noqa: F401  (fixtures used by name)
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    new_bucket,
    s3_admin,
    s3_endpoint,
)
from tests.pds.stack import LiveAccount, Stack, create_account, start_stack

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NewAccount = Callable[..., LiveAccount]
PHOTO = "com.example.skyspot.photo"
SMALL_LIMIT = 150_000


def make_png(width: int, height: int, seed: int = 1) -> bytes:
    """A valid RGB PNG of noise (noise barely compresses, so the file is about w*h*3 bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    noise = random.Random(seed)
    rows = b"".join(b"\x00" + noise.randbytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def xrpc_url(stack: Stack, nsid: str) -> str:
    return stack.pds_url + nsids.xrpc_path(nsid)


def upload(
    http: httpx.Client, stack: Stack, account: LiveAccount, content: bytes, mime: str = "*/*"
) -> dict[str, Any]:
    response = http.post(
        xrpc_url(stack, nsids.REPO_UPLOAD_BLOB),
        content=content,
        headers={**account.bearer, "Content-Type": mime},
    )
    assert response.status_code == 200, response.text
    blob: dict[str, Any] = response.json()["blob"]
    return blob


def reference(
    http: httpx.Client, stack: Stack, account: LiveAccount, blob: dict[str, Any], rkey: str
) -> None:
    response = http.post(
        xrpc_url(stack, nsids.REPO_CREATE_RECORD),
        json={
            "repo": account.did,
            "collection": PHOTO,
            "rkey": rkey,
            "record": {"image": blob, "caption": rkey},
        },
        headers=account.bearer,
    )
    assert response.status_code == 200, response.text


def get_blob(
    http: httpx.Client, stack: Stack, did: str, cid: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return http.get(
        xrpc_url(stack, nsids.SYNC_GET_BLOB), params={"did": did, "cid": cid}, headers=headers
    )


def assert_safe_headers(response: httpx.Response, mime: str) -> None:
    assert response.headers["content-type"] == mime
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert response.headers["content-length"] == str(len(response.content))


def check_ranges(http: httpx.Client, stack: Stack, did: str, cid: str, content: bytes) -> None:
    size = len(content)
    cases = {
        "bytes=0-0": (0, 1),
        "bytes=100-299999": (100, 300_000),  # crosses the stores' 256 KiB read chunks
        f"bytes={size - 10}-": (size - 10, size),
        "bytes=-25": (size - 25, size),
        f"bytes=5-{size + 1000}": (5, size),  # an end past the blob is clipped
    }
    for header, (start, stop) in cases.items():
        response = get_blob(http, stack, did, cid, {"Range": header})
        assert response.status_code == 206, header
        assert response.content == content[start:stop], header
        assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{size}"
        assert_safe_headers(response, "image/png")
        # A browser script only sees the range headers if CORS exposes them.
        exposed = response.headers["access-control-expose-headers"].lower().split(", ")
        assert {"content-range", "accept-ranges"} <= set(exposed), header
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}"):
        response = get_blob(http, stack, did, cid, {"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{size}"
    # A malformed or multi-range header is ignored: the whole blob, 200.
    for header in ("bytes=5-1", "pages=1-2", "bytes=0-1,5-6"):
        response = get_blob(http, stack, did, cid, {"Range": header})
        assert response.status_code == 200, header
        assert response.content == content


# -- the SDK ----------------------------------------------------------------------------------
# The SDK hands httpx the upload as `data=bytes`, which httpx deprecates; not ours to fix.
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_sdk_send_image_then_get_blob(
    pds_stack: Stack, new_account: NewAccount, http: httpx.Client
) -> None:
    account = new_account()
    png = make_png(400, 300)
    client = Client(base_url=pds_stack.pds_url)
    try:
        client.login(account.handle, account.password)
        created = client.send_image(text="look", image=png, image_alt="noise")
        rkey = created.uri.rsplit("/", 1)[1]
        record = client.com.atproto.repo.get_record(
            {"repo": account.did, "collection": nsids.BSKY_FEED_POST, "rkey": rkey}
        )
        image = record.value.embed.images[0].image
        cid = image.ref.link
        assert (image.mime_type, image.size) == ("image/png", len(png))
        assert cid == str(CID.for_raw(png))
        fetched = client.com.atproto.sync.get_blob({"did": account.did, "cid": cid})
        assert fetched == png
    finally:
        client.request.close()

    response = get_blob(http, pds_stack, account.did, cid)
    assert response.status_code == 200
    assert response.content == png
    assert_safe_headers(response, "image/png")
    assert response.headers["accept-ranges"] == "bytes"
    check_ranges(http, pds_stack, account.did, cid, png)

    listed = http.get(xrpc_url(pds_stack, nsids.SYNC_LIST_BLOBS), params={"did": account.did})
    assert listed.json() == {"cids": [cid], "cursor": cid}


def test_deleting_the_only_reference_removes_the_blob(
    pds_stack: Stack, new_account: NewAccount, http: httpx.Client
) -> None:
    account = new_account()
    png = make_png(20, 20, seed=2)
    blob = upload(http, pds_stack, account, png)
    cid = blob["ref"]["$link"]
    reference(http, pds_stack, account, blob, "one")
    reference(http, pds_stack, account, blob, "two")
    assert pds_stack.settings.blobstore_disk_location is not None
    store = DiskBlobStore(pds_stack.settings.blobstore_disk_location)

    def delete(rkey: str) -> None:
        response = http.post(
            xrpc_url(pds_stack, nsids.REPO_DELETE_RECORD),
            json={"repo": account.did, "collection": PHOTO, "rkey": rkey},
            headers=account.bearer,
        )
        assert response.status_code == 200, response.text

    delete("one")
    assert get_blob(http, pds_stack, account.did, cid).content == png  # still referenced
    delete("two")
    deadline = time.monotonic() + 10
    while asyncio.run(store.exists(account.did, CID.parse(cid))):
        assert time.monotonic() < deadline, "the dereferenced blob was not deleted"
        time.sleep(0.05)
    response = get_blob(http, pds_stack, account.did, cid)
    assert (response.status_code, response.json()["error"]) == (400, "BlobNotFound")


# -- errors -----------------------------------------------------------------------------------
def test_unknown_and_unreferenced_blobs_are_not_found(
    pds_stack: Stack, new_account: NewAccount, http: httpx.Client
) -> None:
    account = new_account()
    blob = upload(http, pds_stack, account, make_png(8, 8, seed=3))
    for cid in (blob["ref"]["$link"], str(CID.for_raw(b"never uploaded"))):
        response = get_blob(http, pds_stack, account.did, cid)
        assert response.status_code == 400
        assert response.json()["error"] == "BlobNotFound"


def test_upload_needs_an_account(pds_stack: Stack, http: httpx.Client) -> None:
    url = xrpc_url(pds_stack, nsids.REPO_UPLOAD_BLOB)
    response = http.post(url, content=b"data")
    assert (response.status_code, response.json()["error"]) == (401, "AuthMissing")
    response = http.post(url, content=b"data", headers={"Authorization": "Bearer forged"})
    assert (response.status_code, response.json()["error"]) == (400, "InvalidToken")


def test_upload_keeps_a_specific_declared_type_for_unknown_content(
    pds_stack: Stack, new_account: NewAccount, http: httpx.Client
) -> None:
    account = new_account()
    blob = upload(http, pds_stack, account, b'{"hello": "world"}', "application/json")
    assert blob["mimeType"] == "application/json"
    blob = upload(http, pds_stack, account, b"plain words", "*/*")
    assert blob["mimeType"] == "application/octet-stream"
    assert blob["$type"] == "blob"
    assert blob["size"] == len(b"plain words")


def test_list_blobs_pages_and_filters_by_rev(
    pds_stack: Stack, new_account: NewAccount, http: httpx.Client
) -> None:
    account = new_account()
    cids = []
    for index in range(3):
        blob = upload(http, pds_stack, account, make_png(4, 4, seed=10 + index))
        reference(http, pds_stack, account, blob, f"p{index}")
        cids.append(blob["ref"]["$link"])
        if index == 0:
            latest = http.get(
                xrpc_url(pds_stack, nsids.SYNC_GET_LATEST_COMMIT), params={"did": account.did}
            )
            first_rev = latest.json()["rev"]
    url = xrpc_url(pds_stack, nsids.SYNC_LIST_BLOBS)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"did": account.did, "limit": "2", **({"cursor": cursor} if cursor else {})}
        body = http.get(url, params=params).json()
        seen += body["cids"]
        cursor = body.get("cursor")
        if not cursor:
            break
    assert seen == sorted(cids)
    newer = http.get(url, params={"did": account.did, "since": first_rev}).json()["cids"]
    assert newer == sorted(cids[1:])


def test_list_missing_blobs(pds_stack: Stack, new_account: NewAccount, http: httpx.Client) -> None:
    account = new_account()
    url = xrpc_url(pds_stack, nsids.REPO_LIST_MISSING_BLOBS)
    assert http.get(url, headers=account.bearer).json() == {"blobs": []}
    assert http.get(url).status_code == 401
    response = http.get(url, params={"limit": "0"}, headers=account.bearer)
    assert (response.status_code, response.json()["error"]) == (400, "InvalidRequest")


# -- limits, on disk and in S3 ----------------------------------------------------------------
@pytest.fixture(scope="module", params=["disk", "s3"])
def limited_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {"PDS_BLOB_UPLOAD_LIMIT": str(SMALL_LIMIT)}
    if request.param == "s3":
        admin: S3Client = request.getfixturevalue("s3_admin")
        env |= {
            "PDS_BLOBSTORE_S3_BUCKET": new_bucket(admin),
            "PDS_BLOBSTORE_S3_ENDPOINT": request.getfixturevalue("s3_endpoint"),
            "PDS_BLOBSTORE_S3_REGION": REGION,
            "PDS_BLOBSTORE_S3_FORCE_PATH_STYLE": "true",
            "PDS_BLOBSTORE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }
    with start_stack(tmp_path_factory.mktemp(f"blobs-{request.param}"), **env) as stack:
        yield stack


def test_blob_round_trip_and_ranges(limited_stack: Stack, http: httpx.Client) -> None:
    account = create_account(limited_stack)
    png = make_png(200, 120, seed=4)  # about 72 KB, under the limit
    blob = upload(http, limited_stack, account, png)
    assert blob["mimeType"] == "image/png"
    reference(http, limited_stack, account, blob, "pic")
    response = get_blob(http, limited_stack, account.did, blob["ref"]["$link"])
    assert response.status_code == 200
    assert response.content == png
    assert_safe_headers(response, "image/png")
    range_response = get_blob(
        http, limited_stack, account.did, blob["ref"]["$link"], {"Range": "bytes=1000-1999"}
    )
    assert range_response.status_code == 206
    assert range_response.content == png[1000:2000]


def test_blob_lands_in_the_configured_store(
    request: pytest.FixtureRequest, limited_stack: Stack, http: httpx.Client
) -> None:
    account = create_account(limited_stack)
    png = make_png(30, 30, seed=5)
    blob = upload(http, limited_stack, account, png)
    reference(http, limited_stack, account, blob, "pic")
    cid = blob["ref"]["$link"]
    disk = limited_stack.settings.blobstore_disk_location
    if disk is not None:
        assert (disk / account.did / cid).read_bytes() == png
        return
    admin: S3Client = request.getfixturevalue("s3_admin")
    bucket = limited_stack.settings.blobstore_env["PDS_BLOBSTORE_S3_BUCKET"]
    stored = admin.get_object(Bucket=bucket, Key=f"blocks/{account.did}/{cid}")
    assert stored["Body"].read() == png


def test_oversized_blob_is_413(limited_stack: Stack, http: httpx.Client) -> None:
    account = create_account(limited_stack)
    url = xrpc_url(limited_stack, nsids.REPO_UPLOAD_BLOB)
    at_limit = upload(http, limited_stack, account, bytes(SMALL_LIMIT))
    assert at_limit["size"] == SMALL_LIMIT

    # Declared too large: refused before the body is read.
    response = http.post(url, content=bytes(SMALL_LIMIT + 1), headers=account.bearer)
    assert (response.status_code, response.json()["error"]) == (413, "PayloadTooLarge")

    # Streamed without a length: cut off once it passes the limit.
    def body() -> Iterator[bytes]:
        for _ in range(SMALL_LIMIT // 10_000 + 5):
            yield bytes(10_000)

    response = http.post(url, content=body(), headers=account.bearer)
    assert (response.status_code, response.json()["error"]) == (413, "PayloadTooLarge")


def test_oversized_upload_leaves_no_temporary_file(tmp_path: Path, http: httpx.Client) -> None:
    with start_stack(tmp_path, PDS_BLOB_UPLOAD_LIMIT="1000") as stack:
        account = create_account(stack)
        url = xrpc_url(stack, nsids.REPO_UPLOAD_BLOB)

        def body() -> Iterator[bytes]:
            yield bytes(600)
            yield bytes(600)

        response = http.post(url, content=body(), headers=account.bearer)
        assert response.status_code == 413
        assert stack.settings.blobstore_disk_location is not None
        temp_dir = stack.settings.blobstore_disk_location / "tmp"
        assert not temp_dir.exists() or list(temp_dir.iterdir()) == []


def test_taken_down_blob_is_not_served(
    pds_stack: Stack, new_account: NewAccount, http: httpx.Client
) -> None:
    account = new_account()
    png = make_png(10, 10, seed=6)
    blob = upload(http, pds_stack, account, png)
    reference(http, pds_stack, account, blob, "moderated")
    cid = blob["ref"]["$link"]

    def takedown(applied: bool) -> None:
        response = http.post(
            xrpc_url(pds_stack, nsids.ADMIN_UPDATE_SUBJECT_STATUS),
            json={
                "subject": {
                    "$type": nsids.ADMIN_DEFS_REPO_BLOB_REF,
                    "did": account.did,
                    "cid": cid,
                },
                "takedown": {"applied": applied, "ref": "test"},
            },
            headers={"Authorization": pds_stack.admin_authorization},
        )
        assert response.status_code == 200, response.text

    takedown(True)
    response = get_blob(http, pds_stack, account.did, cid)
    assert (response.status_code, response.json()["error"]) == (400, "BlobNotFound")
    takedown(False)
    assert get_blob(http, pds_stack, account.did, cid).content == png
