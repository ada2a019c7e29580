"""The firehose benchmark runs end to end on tiny inputs, so it never rots (no timing asserts)."""

from __future__ import annotations

import re

import pytest

from scripts.bench import firehose

ROW = re.compile(
    r"^(?P<phase>replay|live)\s+(?P<subs>\d+)\s+(?P<events>\d+)\s+[\d,]+\s+[\d,]+\s+"
    r"(?P<p50>[\d.]+|-)\s+(?P<p99>[\d.]+|-)\s+[\d.]+$"
)


def test_the_benchmark_measures_replay_and_live_for_each_subscriber_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    firehose.main(["--events", "30", "--live", "10", "--subscribers", "1,3"])
    rows = [m for line in capsys.readouterr().out.splitlines() if (m := ROW.match(line))]
    assert [(r["phase"], int(r["subs"])) for r in rows] == [
        ("replay", 1),
        ("replay", 3),
        ("live", 1),
        ("live", 3),
    ]
    assert all(int(r["events"]) == 30 for r in rows[:2])
    assert all(int(r["events"]) == 10 and r["p50"] != "-" for r in rows[2:])
