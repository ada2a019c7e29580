"""TID generation: 13-character, base32-sortable Timestamp Identifiers.

A TID packs a 64-bit integer with its top bit clear: 53 bits of microseconds since the Unix epoch,
then a 10-bit clock id. Encoded with the base32-sortable alphabet, string order equals numeric
order, which is why TIDs serve as record keys and repository revisions.

`TidClock` is the generator. It never emits a TID less than or equal to the previous one, even
when the wall clock repeats a microsecond or steps backwards (NTP adjustments, VM migration): the
timestamp is then bumped to one past the last one issued, so the clock runs slightly ahead until
real time catches up. It is thread-safe. There is deliberately no module-level instance: each
process component owns its clock (and its random clock id).

Errors: `InvalidTid` (from `atcore.syntax`) for malformed TIDs; `ValueError` for out-of-range parts.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Final

from atcore.syntax.identifiers import CLOCK_ID_BITS, CLOCK_ID_MASK, S32_ALPHABET, Tid, parse_tid

TIMESTAMP_BITS: Final = 53
MAX_TIMESTAMP_US: Final = (1 << TIMESTAMP_BITS) - 1
MAX_CLOCK_ID: Final = CLOCK_ID_MASK

# Encoding 13 characters one at a time is the hot part; the low 60 bits are 6 groups of 10 bits, so
# a table of all 1024 two-character pairs halves the work. Built once; an immutable tuple.
_PAIRS: Final = tuple(a + b for a in S32_ALPHABET for b in S32_ALPHABET)


def _encode(value: int) -> str:
    return (
        S32_ALPHABET[value >> 60]
        + _PAIRS[(value >> 50) & 1023]
        + _PAIRS[(value >> 40) & 1023]
        + _PAIRS[(value >> 30) & 1023]
        + _PAIRS[(value >> 20) & 1023]
        + _PAIRS[(value >> 10) & 1023]
        + _PAIRS[value & 1023]
    )


def tid_from_parts(timestamp_us: int, clock_id: int) -> Tid:
    """Build a TID from microseconds since the epoch and a 10-bit clock id."""
    if not 0 <= timestamp_us <= MAX_TIMESTAMP_US:
        raise ValueError(f"TID timestamp out of range: {timestamp_us}")
    if not 0 <= clock_id <= MAX_CLOCK_ID:
        raise ValueError(f"TID clock id out of range: {clock_id}")
    # The encoding is valid by construction; skip re-validating it.
    return str.__new__(Tid, _encode((timestamp_us << CLOCK_ID_BITS) | clock_id))


def tid_to_parts(tid: str) -> tuple[int, int]:
    """(timestamp_us, clock_id) of a TID; raises `InvalidTid` for a malformed one."""
    value = parse_tid(tid).to_int()
    return value >> CLOCK_ID_BITS, value & CLOCK_ID_MASK


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


class TidClock:
    """A strictly monotonic, thread-safe TID generator.

    `now_us` returns microseconds since the epoch (defaults to the wall clock); `clock_id` defaults
    to a random 10-bit value so independent generators rarely collide on the same microsecond.
    """

    __slots__ = ("_clock_id", "_last_us", "_lock", "_now_us")

    def __init__(
        self, now_us: Callable[[], int] | None = None, clock_id: int | None = None
    ) -> None:
        if clock_id is None:
            clock_id = secrets.randbelow(MAX_CLOCK_ID + 1)
        elif not 0 <= clock_id <= MAX_CLOCK_ID:
            raise ValueError(f"TID clock id out of range: {clock_id}")
        self._now_us = now_us or _wall_clock_us
        self._clock_id = clock_id
        self._last_us = -1
        self._lock = threading.Lock()

    @property
    def clock_id(self) -> int:
        return self._clock_id

    def next(self) -> Tid:
        """The next TID: greater than every TID this clock has issued."""
        with self._lock:
            timestamp = max(self._now_us(), self._last_us + 1)
            tid = tid_from_parts(timestamp, self._clock_id)  # raises before state changes
            self._last_us = timestamp
        return tid

    def next_str(self) -> str:
        """The next TID as a plain `str`."""
        return str(self.next())
