"""Retrying whole transactions on serialization failures, for every index backend.

Under SERIALIZABLE isolation (PostgreSQL when asked, CockroachDB always) the database may abort a
transaction with SQLSTATE 40001 (`serialization_failure`; CockroachDB's "restart transaction") or
40P01 (deadlock). The only correct response is to run the *whole* transaction again, from its
first statement, on a fresh transaction: a savepoint retry (what `sqlalchemy-cockroachdb`'s
synchronous `run_transaction` does) fails on PostgreSQL and does not exist on SQLite. SQLite's
equivalent is SQLITE_BUSY / SQLITE_LOCKED once the busy timeout has expired.

`run_transaction(engine, work)` calls `work(connection)` inside `engine.begin()`; when the attempt
fails with a retryable error - raised by any statement or by the COMMIT itself - it waits
(exponential backoff with full jitter, capped) and calls `work` again on a new transaction, up to
`RetryPolicy.max_attempts`. `work` must therefore be safe to re-run: derive everything it writes
from its inputs, never from state a failed attempt left behind in Python objects.

With `policy.idempotent=True` CockroachDB's 40003 (`statement_completion_unknown`: the COMMIT may
or may not have applied) is retried too - correct only when applying the work twice is harmless.

Errors: the last database error is re-raised when attempts run out or the error is not
retryable; `RetryPolicy` raises `RetryPolicyError` (a `ValueError`) for nonsensical settings.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

SERIALIZATION_FAILURE: Final = "40001"
DEADLOCK_DETECTED: Final = "40P01"
STATEMENT_COMPLETION_UNKNOWN: Final = "40003"
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6

T = TypeVar("T")


class RetryPolicyError(ValueError):
    """A retry policy with impossible settings."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 10
    base_delay: float = 0.005  # seconds; attempt n waits up to base * 2**(n-1)
    max_delay: float = 1.0
    idempotent: bool = False

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise RetryPolicyError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise RetryPolicyError("need 0 <= base_delay <= max_delay")

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**(attempt-1))]."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(0.0, ceiling)  # noqa: S311 - spreading retries, not security


DEFAULT_POLICY: Final = RetryPolicy()


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE a PostgreSQL/CockroachDB error carries (asyncpg or psycopg), if any."""
    original = error.orig if isinstance(error, DBAPIError) else error
    for attribute in ("sqlstate", "pgcode"):
        value = getattr(original, attribute, None)
        if isinstance(value, str):
            return value
    return None


def is_sqlite_busy(error: BaseException) -> bool:
    original = error.orig if isinstance(error, DBAPIError) else error
    code = getattr(original, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


def is_retryable(error: BaseException, *, idempotent: bool = False) -> bool:
    """True for errors after which re-running the whole transaction is the right move."""
    if is_sqlite_busy(error):
        return True
    state = sqlstate_of(error)
    if state in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED):
        return True
    return idempotent and state == STATEMENT_COMPLETION_UNKNOWN


OnRetry = Callable[[BaseException, int], None]


async def run_transaction(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_retry: OnRetry | None = None,
) -> T:
    """Run `work` in a transaction, re-running the whole transaction on retryable failures.

    `on_retry(error, attempt)` is called before each wait (for metrics and logs).
    """
    attempt = 1
    while True:
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except DBAPIError as error:
            if attempt >= policy.max_attempts or not is_retryable(
                error, idempotent=policy.idempotent
            ):
                raise
            if on_retry is not None:
                on_retry(error, attempt)
            await asyncio.sleep(policy.delay(attempt))
            attempt += 1
