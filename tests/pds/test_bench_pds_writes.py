"""The createRecord benchmark runs end to end against our PDS, so it never rots.

Only the shape of the output is checked, plus that the firehose delivered every write: tests never
assert on timings, and none of this needs Node (the reference is skipped).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.bench import pds_writes, ts_pds
from scripts.bench._write_load import PhaseResult, post_record

ROW = re.compile(
    r"^\s+ours \(python -m pds\)\s+(?P<conc>\d+)\s+(?P<rate>[\d,.]+)\s+(?P<p50>[\d.]+)\s+"
    r"(?P<p99>[\d.]+)\s+(?P<cpu>[\d.]+|nan)\s+(?P<seen>\d+)/(?P<sent>\d+)\s+"
    r"(?P<rounds>[\d,. ]+)$"
)


def test_driver_measures_our_pds_at_each_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    pds_writes.main(["--records", "6", "--warmup", "2", "--rounds", "2", "--skip-reference"])
    out = capsys.readouterr().out
    assert "reference: skipped (--skip-reference)" in out
    rows = [match for line in out.splitlines() if (match := ROW.match(line))]
    assert [int(row["conc"]) for row in rows] == list(pds_writes.CONCURRENCIES)
    for row in rows:
        assert float(row["rate"].replace(",", "")) > 0
        assert 0 < float(row["p50"]) <= float(row["p99"])
        assert row["cpu"] == "nan" or float(row["cpu"]) >= 0  # clock ticks: 0 on tiny runs
        assert int(row["seen"]) == int(row["sent"]) == 12  # every write reached the subscriber
        assert len(row["rounds"].split(", ")) == 2
    assert "ours / reference" not in out  # no ratios without the reference


def _phase(concurrency: int, rate: float, latency_ms: float) -> PhaseResult:
    return PhaseResult(
        concurrency=concurrency,
        records=100,
        seconds=100 / rate,
        latencies=(latency_ms / 1000,) * 100,
        delivered=100,
        server_cpu_s=100 / rate / 2,
    )


def _target(
    name: str, rates: tuple[float, float], p99s: tuple[float, float]
) -> pds_writes.TargetResult:
    phases = tuple(
        _phase(c, rate, p99)
        for c, rate, p99 in zip(pds_writes.CONCURRENCIES, rates, p99s, strict=True)
    )
    return pds_writes.TargetResult(name=name, rounds=(phases,))


def test_rounds_merge_as_total_records_over_total_time() -> None:
    merged = PhaseResult.merge([_phase(8, 100.0, 5.0), _phase(8, 300.0, 20.0)])
    assert merged.records == merged.delivered == 200
    assert merged.server_cpu_s == pytest.approx((1.0 + 1 / 3) / 2)
    assert merged.records_per_s == pytest.approx(200 / (1.0 + 1 / 3))
    assert merged.p50_ms == pytest.approx(5.0)  # pooled: half the samples at each latency
    assert merged.p99_ms == pytest.approx(20.0)
    with pytest.raises(ValueError, match="one concurrency"):
        PhaseResult.merge([_phase(1, 100.0, 5.0), _phase(8, 100.0, 5.0)])


@pytest.mark.parametrize(
    ("ours_c8_rate", "ours_c8_p99", "verdict"),
    [(400.0, 10.0, "met"), (250.0, 10.0, "NOT met"), (400.0, 60.0, "NOT met")],
)
def test_ratios_judge_the_target_at_concurrency_8(
    ours_c8_rate: float, ours_c8_p99: float, verdict: str
) -> None:
    ours = _target("ours", (300.0, ours_c8_rate), (5.0, ours_c8_p99))
    reference = _target("reference", (100.0, 100.0), (20.0, 50.0))
    text = pds_writes.format_ratios(ours, reference)
    assert "concurrency 1: 3.00x records/s" in text
    assert f"concurrency 8: {ours_c8_rate / 100:.2f}x records/s" in text
    assert text.rstrip().endswith(f": {verdict}")


def test_post_record_link_facet_spans_the_link_bytes() -> None:
    record = post_record(42)
    raw = record["text"].encode()
    span = record["facets"][0]["index"]
    link = record["facets"][0]["features"][0]["uri"]
    assert raw[span["byteStart"] : span["byteEnd"]].decode() == link
    assert len(raw) > len(record["text"])  # non-ASCII text: byte offsets differ from characters


def test_reference_without_npm_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ts_pds.ReferenceUnavailable, match="npm is not on PATH"):
        ts_pds.prepare(tmp_path / "reference")
