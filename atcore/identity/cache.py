"""A bounded TTL cache and a single-flight helper for the identity resolvers.

`TtlCache` is a least-recently-used map whose entries also expire `ttl` seconds after they were
stored, on an injectable monotonic clock (tests move time without sleeping). `SingleFlight` makes
concurrent lookups of the same key share one in-flight fetch: the fetch runs as its own task, so
a caller that is cancelled does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Clock = Callable[[], float]


class TtlCache(Generic[K, V]):
    """LRU-bounded map with per-entry expiry (`max_size` entries, `ttl` seconds)."""

    __slots__ = ("_clock", "_entries", "_max_size", "_ttl")

    def __init__(self, *, max_size: int, ttl: float, clock: Clock = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("cache max_size must be at least 1")
        if ttl <= 0:
            raise ValueError("cache ttl must be positive")
        self._max_size = max_size
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The cached value, or None when absent or expired (expired entries are dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        # Membership ignores expiry on purpose: it is for tests and introspection only.
        return key in self._entries


class SingleFlight(Generic[K, V]):
    """Run at most one fetch per key at a time; concurrent callers await the same result."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, fetch: Callable[[], Coroutine[Any, Any, V]]) -> V:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.create_task(fetch())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: one caller's cancellation must not cancel the fetch the others are awaiting.
        return await asyncio.shield(task)

    def in_flight(self, key: K) -> bool:
        return key in self._tasks

    def _forget(self, key: K, done: asyncio.Task[V]) -> None:
        if self._tasks.get(key) is done:
            del self._tasks[key]
