"""TID generation: encoding, parts round trip, strict monotonicity and thread safety."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore.syntax import InvalidTid, Tid, is_valid_tid
from atcore.tid import MAX_CLOCK_ID, MAX_TIMESTAMP_US, TidClock, tid_from_parts, tid_to_parts

timestamps = st.integers(min_value=0, max_value=MAX_TIMESTAMP_US)
clock_ids = st.integers(min_value=0, max_value=MAX_CLOCK_ID)


class ScriptedClock:
    """A fake time source replaying a list of readings (then repeating the last one)."""

    def __init__(self, readings: list[int]) -> None:
        self._readings: Iterator[int] = iter(readings)
        self._last = readings[-1]

    def __call__(self) -> int:
        return next(self._readings, self._last)


def test_known_encoding() -> None:
    # 2**63 - 1 is the largest TID value: 13 x 5 bits = 65, so the first digit carries the top
    # 5 bits, of which only the low 3 can be set ('b' = 7); every other digit is 'z' (31).
    assert tid_from_parts(MAX_TIMESTAMP_US, MAX_CLOCK_ID) == "bzzzzzzzzzzzz"
    assert tid_from_parts(0, 0) == "2222222222222"
    assert tid_from_parts(0, 1) == "2222222222223"
    assert tid_from_parts(1, 0) == "2222222222322"  # one microsecond = 1 << 10 = 32 * 32


def test_parts_of_fixture_tid() -> None:
    # "3jzfcijpj2z2a" decodes to a mid-2023 timestamp and a 10-bit clock id.
    timestamp_us, clock_id = tid_to_parts("3jzfcijpj2z2a")
    assert 1_672_531_200_000_000 <= timestamp_us < 1_704_067_200_000_000  # within 2023
    assert 0 <= clock_id <= MAX_CLOCK_ID
    assert Tid("3jzfcijpj2z2a").timestamp_us == timestamp_us
    assert Tid("3jzfcijpj2z2a").clock_id == clock_id
    assert tid_from_parts(timestamp_us, clock_id) == "3jzfcijpj2z2a"


@given(timestamps, clock_ids)
def test_parts_round_trip(timestamp_us: int, clock_id: int) -> None:
    tid = tid_from_parts(timestamp_us, clock_id)
    assert is_valid_tid(tid)
    assert Tid(tid) == tid
    assert tid_to_parts(tid) == (timestamp_us, clock_id)
    assert (tid.timestamp_us, tid.clock_id) == (timestamp_us, clock_id)


@given(timestamps, clock_ids, timestamps, clock_ids)
def test_string_order_is_numeric_order(t1: int, c1: int, t2: int, c2: int) -> None:
    a, b = tid_from_parts(t1, c1), tid_from_parts(t2, c2)
    assert (a < b) == ((t1, c1) < (t2, c2))


@pytest.mark.parametrize(
    ("timestamp_us", "clock_id"),
    [(-1, 0), (MAX_TIMESTAMP_US + 1, 0), (0, -1), (0, MAX_CLOCK_ID + 1)],
)
def test_out_of_range_parts(timestamp_us: int, clock_id: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        tid_from_parts(timestamp_us, clock_id)


def test_tid_to_parts_rejects_malformed() -> None:
    with pytest.raises(InvalidTid):
        tid_to_parts("3JZFCIJPJ2Z2A")


# Readings stay far enough below the 53-bit ceiling that bumping past repeats cannot overflow.
readings_strategy = st.lists(
    st.integers(min_value=0, max_value=MAX_TIMESTAMP_US - 100), min_size=1, max_size=60
)


@given(readings_strategy, clock_ids)
def test_monotonic_under_arbitrary_clock(readings: list[int], clock_id: int) -> None:
    # Readings jump forwards, backwards and repeat in any order the strategy finds.
    clock = TidClock(now_us=ScriptedClock(readings), clock_id=clock_id)
    previous = ""
    for reading in readings:
        tid = clock.next()
        assert tid > previous
        assert tid.clock_id == clock_id
        assert tid.timestamp_us >= reading  # never behind the clock, only ahead when forced to
        previous = tid


def test_backwards_step_runs_ahead_then_catches_up() -> None:
    clock = TidClock(now_us=ScriptedClock([1000, 400, 400, 1001, 5000]), clock_id=7)
    stamps = [clock.next().timestamp_us for _ in range(5)]
    assert stamps == [1000, 1001, 1002, 1003, 5000]


def test_failed_tid_does_not_advance_clock() -> None:
    clock = TidClock(now_us=ScriptedClock([10, MAX_TIMESTAMP_US + 1, 5]), clock_id=0)
    assert clock.next().timestamp_us == 10
    with pytest.raises(ValueError, match="out of range"):
        clock.next()
    assert clock.next().timestamp_us == 11


def test_clock_id_is_validated_and_defaults_randomly() -> None:
    with pytest.raises(ValueError, match="clock id"):
        TidClock(clock_id=MAX_CLOCK_ID + 1)
    ids = {TidClock().clock_id for _ in range(50)}
    assert all(0 <= clock_id <= MAX_CLOCK_ID for clock_id in ids)
    assert len(ids) > 1  # 50 draws from 1024 values all equal: probability ~1e-148


def test_wall_clock_tids_are_unique_and_current() -> None:
    import time

    clock = TidClock()
    before = time.time_ns() // 1000
    tids = [clock.next_str() for _ in range(5000)]
    assert type(tids[0]) is str
    assert tids == sorted(set(tids))
    assert Tid(tids[0]).timestamp_us >= before


def test_unique_and_monotonic_across_threads() -> None:
    # A frozen clock forces every call through the "bump past the last one" path concurrently.
    clock = TidClock(now_us=lambda: 1_700_000_000_000_000, clock_id=3)
    per_thread = 2000
    results: list[list[Tid]] = [[] for _ in range(4)]
    barrier = threading.Barrier(len(results))

    def work(out: list[Tid]) -> None:
        barrier.wait()
        out.extend(clock.next() for _ in range(per_thread))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [tid for out in results for tid in out]
    assert len(set(everything)) == len(results) * per_thread
    for out in results:
        assert out == sorted(out)  # each thread sees its own TIDs strictly increasing
    stamps = sorted(tid.timestamp_us for tid in everything)
    assert stamps == list(range(stamps[0], stamps[0] + len(everything)))
