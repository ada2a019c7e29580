"""Partitioning one firehose stream by DID across N consumer processes.

A consumer started with `CONSUMER_PARTITION=i/n` reads every frame of its sources but indexes only
the repositories whose DID hashes to `i` (`partition_of(did, n) == i`); frames of other DIDs are
skipped before strict decoding, and their seqs still move its cursor. The hash is the first 8
bytes of SHA-256 over the DID's UTF-8, big-endian, modulo n: stable across processes, machines
and Python versions (unlike `hash()`), and uniform for any DID method. Because `h % n` fixes
`h % m` for every divisor `m` of `n`, a partition `i/n` lies wholly inside `(i mod m)/m`.

Cursors: each partition keeps its own `source_cursor` row, keyed `<source URL>#partition=i/n`
when n > 1 and by the bare URL when n = 1 (so a single consumer's row is the one it always had).

Where a partition resumes (`resume_seq`), given every stored row of the source - its own and
those of any earlier partitioning, which stay in the table: a row `r` at seq `c` promises that
every event of the DIDs `r` owns up to `c` is indexed. A *cover* is a set of rows that together
own every DID of the partition: its own row, a coarser row that contains it, or every row of a
complete partitioning (`0/m` .. `m-1/m`). Each cover's lowest seq is a point up to which all of
the partition's events are indexed, so the partition resumes from the highest such point; an
obsolete row (the unpartitioned cursor left behind after going from 1 to 3 consumers) therefore
never drags a later re-partitioning back. With no cover - a partitioning only partly started -
some of its DIDs were never indexed by anyone: it resumes from the lowest of `CONSUMER_START_CURSOR`
and every stored row. Replays are harmless: upserts are idempotent and stale revs are skipped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

KEY_MARK: Final = "#partition="
_SPEC: Final = re.compile(r"(\d+)/(\d+)", re.ASCII)


class PartitionError(ValueError):
    """A partition that is not `i/n` with 0 <= i < n."""


def partition_of(did: str, count: int) -> int:
    """The partition (0 .. count-1) a DID belongs to; stable everywhere."""
    digest = hashlib.sha256(did.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True, slots=True)
class Partition:
    """Partition `index` of `count`; `Partition()` is the whole stream."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise PartitionError(f"no partition {self.index}/{self.count}: need 0 <= i < n")

    @classmethod
    def parse(cls, text: str) -> Partition:
        """`"i/n"`, e.g. `"0/4"`."""
        match = _SPEC.fullmatch(text.strip())
        if match is None:
            raise PartitionError(f"expected i/n such as 0/4, got {text!r}")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    def owns(self, did: str) -> bool:
        return self.count == 1 or partition_of(did, self.count) == self.index

    def contains(self, other: Partition) -> bool:
        """Every DID of `other` is ours (same partition, or ours is coarser and holds it)."""
        return other.count % self.count == 0 and other.index % self.count == self.index

    def cursor_key(self, source: str) -> str:
        """This partition's `source_cursor` key for `source`."""
        return source if self.count == 1 else f"{source}{KEY_MARK}{self}"


WHOLE: Final = Partition()  # the whole stream: no partitioning


def partition_of_key(source: str, key: str) -> Partition | None:
    """The partition a stored cursor key of `source` belongs to; None when it is not one."""
    if key == source:
        return WHOLE
    if not key.startswith(source + KEY_MARK):
        return None
    try:
        return Partition.parse(key[len(source) + len(KEY_MARK) :])
    except PartitionError:
        return None


def resume_seq(
    partition: Partition, source: str, stored: Mapping[str, int], start: int | None
) -> int | None:
    """Where `partition` resumes `source`, given its stored cursor rows (see the module doc).

    `stored` maps cursor keys to committed seqs (keys of other sources are ignored); `start` is
    where a source without any stored cursor begins (None: live).
    """
    rows: dict[Partition, int] = {}
    for key, seq in stored.items():
        owner = partition_of_key(source, key)
        if owner is not None:
            rows[owner] = seq
    if not rows:
        return start
    covers = [seq for owner, seq in rows.items() if owner.contains(partition)]
    for count in {owner.count for owner in rows}:
        group = [seq for owner, seq in rows.items() if owner.count == count]
        if len(group) == count:  # keys are unique, so all of 0/count .. count-1/count
            covers.append(min(group))
    if covers:
        return max(covers)
    lowest = min(rows.values())
    return lowest if start is None else min(start, lowest)
