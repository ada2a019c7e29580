"""A clock the test moves, for the mailed-code tests (their migrated `db` is in conftest)."""

from __future__ import annotations

T0 = 1_800_000_000.0  # the clock's start, epoch seconds


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: int) -> None:
        self.now += ms / 1000
