"""Blob store throughput on disk, and how long the event loop stalls while blobs stream.

Compares `DiskBlobStore` (streamed in 64 KiB request-sized chunks, hashed and written in ~1 MiB
batches on worker threads, fsynced, renamed into place) with the simplest correct alternative:
the whole blob in memory, hashed and written with fsync in one worker-thread call. The note on
each streaming row gives the event loop's worst stall, measured by a 1 ms ticker running
alongside; the naive upload holds the whole blob in memory, which the store never does.

S3 is not measured: against a local moto server the numbers would describe moto.

Run: `.venv/bin/python -m scripts.bench._blobstore [--quick]`
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from atcore.cid import CID
from pds.blobstore import DiskBlobStore
from scripts.bench._util import Measurement, print_table

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
REQUEST_CHUNK = 64 * 1024


async def _chunks(content: bytes) -> AsyncIterator[bytes]:
    for offset in range(0, len(content), REQUEST_CHUNK):
        yield content[offset : offset + REQUEST_CHUNK]
        await asyncio.sleep(0)  # as a socket read would yield between chunks


class _LagMonitor:
    """Worst delay of a 1 ms ticker: how long the loop was unable to run anything else."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - before - 0.001)

    def __enter__(self) -> _LagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def _rate(op: Callable[[], Awaitable[object]], min_seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or count == 0:
        await op()
        count += 1
    return count / elapsed


def _naive_put(directory: Path, content: bytes) -> None:
    cid = CID(CID.CIDV1_RAW_SHA256_32_PFX + hashlib.sha256(content).digest())
    temp = directory / f".{cid}.partial"
    with temp.open("wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    temp.rename(directory / str(cid))


async def _measure(root: Path, size: int, min_seconds: float) -> list[Measurement]:
    content = os.urandom(size)
    store = DiskBlobStore(root / "store")
    label = f"{size // 1024} KiB"

    async def put() -> None:
        blob = await store.put_temp(_chunks(content), max_size=size)
        await store.make_permanent(blob.key, DID, blob.cid)

    with _LagMonitor() as put_lag:
        put_rate = await _rate(put, min_seconds)
    naive_dir = root / "naive"
    naive_dir.mkdir()
    naive_rate = await _rate(lambda: asyncio.to_thread(_naive_put, naive_dir, content), min_seconds)

    cid = CID.for_raw(content)

    async def get() -> None:
        async with await store.get(DID, cid) as reader:
            async for _ in reader:
                pass

    with _LagMonitor() as get_lag:
        get_rate = await _rate(get, min_seconds)
    naive_path = naive_dir / str(cid)
    read_rate = await _rate(lambda: asyncio.to_thread(naive_path.read_bytes), min_seconds)

    def mib_s(rate: float) -> str:
        return f"{rate * size / 2**20:,.0f} MiB/s"

    return [
        Measurement(
            f"upload {label} (uploads/s)",
            "DiskBlobStore",
            put_rate,
            f"{mib_s(put_rate)}, worst loop stall {put_lag.worst * 1000:.1f} ms",
        ),
        Measurement(f"upload {label} (uploads/s)", "naive", naive_rate, mib_s(naive_rate)),
        Measurement(
            f"download {label} (reads/s)",
            "DiskBlobStore",
            get_rate,
            f"{mib_s(get_rate)}, worst loop stall {get_lag.worst * 1000:.1f} ms",
        ),
        Measurement(f"download {label} (reads/s)", "naive", read_rate, mib_s(read_rate)),
    ]


def run(quick: bool) -> list[Measurement]:
    sizes = (256 * 1024,) if quick else (1024 * 1024, 16 * 1024 * 1024)
    min_seconds = 0.05 if quick else 2.0
    rows: list[Measurement] = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-blobstore-") as root:
            rows.extend(asyncio.run(_measure(Path(root), size, min_seconds)))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny inputs, for a smoke run")
    args = parser.parse_args(argv)
    print_table(run(args.quick), baseline="naive")


if __name__ == "__main__":
    main()
