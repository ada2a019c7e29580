"""The consumer benchmark runs end to end in quick mode, so it never rots.

Only the shape of the output is checked (every section measured, the peers present, positive
throughput): tests never assert on timings.
"""

from __future__ import annotations

import pytest

from scripts.bench import consumer


@pytest.mark.slow
def test_quick_benchmark_measures_every_section_and_peer() -> None:
    rows = consumer.main(["--quick"])
    assert all(row.ops_per_s > 0 for row in rows)
    subjects = {row.subject for row in rows}
    assert {"ours: decode_frame", "ours", "atproto SDK", "atproto SDK client (peer)"} <= subjects
    assert {"ours, sqlite, signatures on", "ours, sqlite, signatures off"} <= subjects
    assert {"ours, signatures on", "ours, signatures off"} <= subjects


@pytest.mark.slow
def test_quick_benchmark_runs_partitioned_consumers() -> None:
    rows = consumer.main(["--quick", "--sections", "index", "--skip-peer", "--partitions", "2"])
    assert all(row.ops_per_s > 0 for row in rows)
    assert {row.subject for row in rows} == {
        "ours, sqlite, signatures on, 2 partitions",
        "ours, sqlite, signatures off, 2 partitions",
    }
    assert all("sum over 2 processes" in row.note for row in rows)
