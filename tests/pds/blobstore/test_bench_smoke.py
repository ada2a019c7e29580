from __future__ import annotations

from scripts.bench import _blobstore


def test_blobstore_benchmark_runs_on_tiny_inputs() -> None:
    rows = _blobstore.run(quick=True)
    assert {(row.task, row.subject) for row in rows} == {
        ("upload 256 KiB (uploads/s)", "DiskBlobStore"),
        ("upload 256 KiB (uploads/s)", "naive"),
        ("download 256 KiB (reads/s)", "DiskBlobStore"),
        ("download 256 KiB (reads/s)", "naive"),
    }
    assert all(row.ops_per_s > 0 for row in rows)
