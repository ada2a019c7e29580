"""Every primitives benchmark section runs in quick mode, so the benchmarks never rot.

Only the shape of the output is checked (rows with positive throughput for the peers compared):
tests never assert on timings.
"""

from __future__ import annotations

import pytest

from scripts.bench import primitives


@pytest.mark.parametrize("section", sorted(primitives.SECTIONS))
def test_section_measures_every_subject(section: str) -> None:
    run, baseline = primitives.SECTIONS[section]
    rows = run(True)
    assert rows
    assert all(row.ops_per_s > 0 for row in rows)
    assert baseline in {row.subject for row in rows}
    assert len({row.subject for row in rows}) >= 2


def test_driver_prints_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    primitives.main(["--quick", "--only", "crypto"])
    out = capsys.readouterr().out
    assert "== crypto" in out
    assert "coincurve" in out
