"""scripts/bench/feed.py runs end to end in quick mode, so the benchmark never rots.

Only the shape of the output is checked (every phase measured for both subjects, no failed
requests): tests never assert on timings.
"""

from __future__ import annotations

import pytest

from scripts.bench import feed


def test_quick_run_measures_every_phase_of_both_subjects(
    capsys: pytest.CaptureFixture[str],
) -> None:
    phases = feed.main(["--quick"])
    measured = {(p.subject, p.name) for p in phases}
    assert measured == {
        ("skyspot", "first30"),
        ("skyspot", "deep30"),
        ("skyspot", "poll1"),
        ("skyspot", "poll1 cached"),
        ("template-pattern", "first30"),
        ("template-pattern", "deep30"),
        ("template-pattern", "poll1"),
    }
    assert all(p.requests > 0 for p in phases)
    assert all(p.errors == 0 for p in phases)
    out = capsys.readouterr().out
    assert "Targets (ours)" in out
    assert "vs template pattern" in out
