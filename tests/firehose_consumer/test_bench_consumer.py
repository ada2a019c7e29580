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
