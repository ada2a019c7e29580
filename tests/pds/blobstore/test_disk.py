"""Disk-specific behaviour: the on-disk layout, separate temp directories, leftovers of crashes."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pds.blobstore import BlobStoreError, DiskBlobStore
from pds.blobstore.streaming import new_temp_key

from .test_contract import ALICE, BOB, chunked, random_bytes

MIB = 1024 * 1024


async def test_layout_matches_the_reference_pds(tmp_path: Path) -> None:
    store = DiskBlobStore(tmp_path)
    blob = await store.put_temp(chunked(b"layout"), max_size=MIB)
    assert sorted(os.listdir(tmp_path / "tmp")) == [blob.key]
    await store.make_permanent(blob.key, ALICE, blob.cid)
    assert (tmp_path / ALICE / str(blob.cid)).read_bytes() == b"layout"
    assert os.listdir(tmp_path / "tmp") == []
    await store.quarantine(ALICE, blob.cid)
    assert (tmp_path / "quarantine" / ALICE / str(blob.cid)).is_file()
    assert not (tmp_path / ALICE / str(blob.cid)).exists()


async def test_did_characters_are_escaped_into_one_directory(tmp_path: Path) -> None:
    store = DiskBlobStore(tmp_path)
    blob = await store.put_temp(chunked(b"bob"), max_size=MIB)
    await store.make_permanent(blob.key, BOB, blob.cid)
    # did:web:bob.example.com%3A8443 keeps its colons; its "%" is escaped so names stay unique.
    assert (tmp_path / "did:web:bob.example.com%253A8443" / str(blob.cid)).is_file()


async def test_separate_temp_location(tmp_path: Path) -> None:
    store = DiskBlobStore(tmp_path / "blobs", tmp_path / "uploads")
    blob = await store.put_temp(chunked(b"elsewhere"), max_size=MIB)
    assert (tmp_path / "uploads" / blob.key).is_file()
    await store.make_permanent(blob.key, ALICE, blob.cid)
    assert (tmp_path / "blobs" / ALICE / str(blob.cid)).read_bytes() == b"elsewhere"
    assert not (tmp_path / "blobs" / "tmp").exists()


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory on a filesystem other than tmp_path's (tmpfs at /dev/shm)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to move blobs across")
    directory = shm / f"blobstore-test-{new_temp_key()}"
    directory.mkdir()
    yield directory
    shutil.rmtree(directory)


async def test_temp_location_on_another_filesystem(tmp_path: Path, other_filesystem: Path) -> None:
    uploads = other_filesystem
    store = DiskBlobStore(tmp_path / "blobs", uploads)
    content = random_bytes(3 * MIB)
    blob = await store.put_temp(chunked(content), max_size=4 * MIB)
    assert os.listdir(uploads) == [blob.key]
    await store.make_permanent(blob.key, ALICE, blob.cid)
    assert os.listdir(uploads) == []
    assert os.listdir(tmp_path / "blobs" / ALICE) == [str(blob.cid)]  # no partial copy left over
    assert (tmp_path / "blobs" / ALICE / str(blob.cid)).read_bytes() == content


async def test_files_left_by_a_crash_are_collected(tmp_path: Path) -> None:
    store = DiskBlobStore(tmp_path)
    await store.put_temp(chunked(b"fresh"), max_size=MIB)  # creates the temp directory
    stale = tmp_path / "tmp" / new_temp_key()
    stale.write_bytes(b"half an upload")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    foreign = tmp_path / "tmp" / "operator-notes.txt"
    foreign.write_text("not ours")
    os.utime(foreign, (hour_ago, hour_ago))
    assert await store.list_temp_older_than(timedelta(minutes=10)) == [stale.name]


async def test_gc_listing_without_any_upload_yet(tmp_path: Path) -> None:
    assert await DiskBlobStore(tmp_path / "never-used").list_temp_older_than(timedelta(0)) == []


async def test_os_failures_are_blob_store_errors(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_bytes(b"")
    store = DiskBlobStore(not_a_directory)
    with pytest.raises(BlobStoreError, match="disk blob store"):
        await store.put_temp(chunked(b"data"), max_size=MIB)


async def test_small_write_batches_keep_the_content(tmp_path: Path) -> None:
    store = DiskBlobStore(tmp_path, write_batch_size=1000)
    content = random_bytes(123_457)
    blob = await store.put_temp(chunked(content, 777), max_size=MIB)
    await store.make_permanent(blob.key, ALICE, blob.cid)
    assert (tmp_path / ALICE / str(blob.cid)).read_bytes() == content
