"""Periodic maintenance jobs that run beside the server (blob GC, firehose history pruning).

`repeat` runs a job after a first delay and then at a fixed interval, until cancelled; a failing
pass is logged and the job simply runs again at the next tick, so one bad pass (a locked
database, a store hiccup) never ends the schedule. `in_background` is the `cleanup_ctx` half: the
task starts with the application and is cancelled, and awaited, when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

log = logging.getLogger(__name__)
R = TypeVar("R")


async def repeat(
    job: Callable[[], Awaitable[R]],
    *,
    interval: timedelta,
    first_delay: timedelta,
    what: str,
    worth_logging: Callable[[R], bool],
) -> None:
    """Run `job` after `first_delay`, then every `interval`, until cancelled."""
    if interval <= timedelta(0) or first_delay < timedelta(0):
        raise ValueError("interval must be positive and first_delay >= 0")
    await asyncio.sleep(first_delay.total_seconds())
    while True:
        try:
            report = await job()
        except Exception:
            log.exception("%s failed", what)
        else:
            if worth_logging(report):
                log.info("%s: %s", what, report)
        await asyncio.sleep(interval.total_seconds())


@contextlib.asynccontextmanager
async def in_background(job: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run `job` as a task for the duration of the block; cancel and await it afterwards."""
    task = asyncio.create_task(job, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
