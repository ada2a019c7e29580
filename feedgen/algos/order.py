"""The feed's total order and its keyset arithmetic: pure functions, no SQL, no I/O.

A read is fixed by a `RankingPlan`, frozen when page 1 is served and carried by the cursor:
the time of page 1 (`t0_ms`), the freshness window, the anchor (None for the global feed) and
one penalty per band. Times are the index's `sort_at` (min(createdAt, indexedAt): a check-in
cannot date itself into the future). Only items with `t0 - window < sort_at <= t0` take part, so
check-ins indexed after page 1 never shift the pages being walked.

Each item gets a score `sort_at - penalty[band]`; the order is score descending, then band
ascending, then the check-in's key `(author_did, collection, rkey)` descending (unique, and the
tail of every keyset index). With strict penalties (band b's penalty is `b * (window + 1)`) every
score of band b beats every score of band b+1, so the feed is band by band, newest first; smaller
penalties let a fresh far item overtake a stale near one.

Pagination is keyset, per band: after the last served item `(band*, sort_at*, key*)` with score
`s*`, band b continues with the items whose `sort_at` is below `s* + penalty[b]` (equal allowed
when b > band*, and for b == band* equal needs a smaller key). Each band's next page is then an
index range scan, and merging the bands' pages by `(score desc, band)` restores the order. Keys
are only ever compared by the database (inside one band), so its collation decides them
consistently for both ORDER BY and the keyset predicate.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from feedgen.algos.bands import BAND_COUNT, Anchor


@dataclass(frozen=True, slots=True)
class Position:
    """The sort tuple of the last item served (the cursor's resume point)."""

    band: int
    sort_at: int
    key: CheckinKey


@dataclass(frozen=True, slots=True)
class CheckinKey:
    """The index's primary key of a check-in: the unique tie-break of the order."""

    author_did: str
    collection: str
    rkey: str


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One candidate from the index, tagged with its band by the query."""

    post_uri: str
    sort_at: int
    key: CheckinKey
    lat_e6: int
    lon_e6: int
    band: int

    @property
    def position(self) -> Position:
        return Position(self.band, self.sort_at, self.key)


@dataclass(frozen=True, slots=True)
class BandBound:
    """One band's keyset predicate: `lower < sort_at` and the upper bound below.

    `tie` None: `sort_at < upper`, or `<= upper` when `inclusive`.
    `tie` set: `(sort_at, author_did, collection, rkey) < (upper, *tie)`.
    """

    band: int
    lower_exclusive: int
    upper: int
    inclusive: bool
    tie: CheckinKey | None = None


PageSearch = Generator["BandBound", Sequence["FeedRow"], list["FeedRow"]]


@dataclass(frozen=True, slots=True)
class RankingPlan:
    """Everything that fixes a paginated read (see the module docstring)."""

    t0_ms: int
    window_ms: int
    anchor: Anchor | None
    penalties: tuple[int, ...]

    def __post_init__(self) -> None:
        expected = BAND_COUNT if self.anchor is not None else 1
        if len(self.penalties) != expected:
            raise ValueError(f"a plan needs {expected} band penalties, got {len(self.penalties)}")
        if self.penalties[0] != 0 or any(a > b for a, b in itertools.pairwise(self.penalties)):
            raise ValueError("band penalties must start at 0 and never decrease")
        if self.window_ms <= 0:
            raise ValueError("the freshness window must be positive")

    @classmethod
    def build(
        cls,
        *,
        t0_ms: int,
        window_ms: int,
        anchor: Anchor | None,
        penalties: Sequence[int] | None,
    ) -> RankingPlan:
        """A plan; `penalties` None means strict banding (and is ignored without an anchor)."""
        if anchor is None:
            return cls(t0_ms, window_ms, None, (0,))
        chosen = strict_penalties(window_ms) if penalties is None else tuple(penalties)
        return cls(t0_ms, window_ms, anchor, chosen)

    @property
    def band_count(self) -> int:
        return len(self.penalties)

    @property
    def first_band(self) -> int:
        return self.anchor.first_band if self.anchor is not None else 0

    @property
    def window_start_exclusive(self) -> int:
        return self.t0_ms - self.window_ms

    def score(self, band: int, sort_at: int) -> int:
        return sort_at - self.penalties[band]

    def in_window(self, sort_at: int) -> bool:
        return self.window_start_exclusive < sort_at <= self.t0_ms

    def bounds_after(self, last: Position | None) -> list[BandBound]:
        """The keyset predicate of every band that can still yield items."""
        lower = self.window_start_exclusive
        bands = range(self.first_band, self.band_count)
        if last is None:
            return [BandBound(b, lower, self.t0_ms, True) for b in bands]
        last_score = self.score(last.band, last.sort_at)
        bounds = []
        for band in bands:
            upper = last_score + self.penalties[band]
            if band == last.band:
                bound = BandBound(band, lower, upper, False, last.key)
            else:
                bound = BandBound(band, lower, upper, band > last.band)
            bound = _clamped_to_t0(bound, self.t0_ms)
            if _can_match(bound):
                bounds.append(bound)
        return bounds

    def merge_key(self, row: FeedRow) -> tuple[int, int]:
        """Orders rows of different bands (rows of one band keep the database's order)."""
        return (-self.score(row.band, row.sort_at), row.band)

    def best_possible_key(self, bound: BandBound) -> tuple[int, int]:
        """The merge key of the best row a band could still yield under its bound."""
        top = bound.upper if bound.inclusive or bound.tie is not None else bound.upper - 1
        return (-self.score(bound.band, top), bound.band)

    def by_promise(self, bounds: Sequence[BandBound]) -> list[BandBound]:
        """The bands in the order to ask them: the one that could rank highest first."""
        return sorted(bounds, key=self.best_possible_key)

    def merge(self, pages: Sequence[Sequence[FeedRow]], limit: int) -> list[FeedRow]:
        """Merge per-band pages (each in the database's band order) into the feed's order."""
        return list(itertools.islice(heapq.merge(*pages, key=self.merge_key), limit))

    def search(self, last: Position | None, limit: int) -> PageSearch:
        """The bands to ask for the page after `last`, one at a time, most promising first.

        A generator: it yields a band's bound, is sent that band's rows (up to `limit`, in the
        database's order), and returns the merged page once it is full and no band left could
        place a row in it (`is_settled`), or every band has been asked. Drivers (sync or async)
        run the queries; the decisions stay here.
        """
        best: list[FeedRow] = []
        pages: list[Sequence[FeedRow]] = []
        for bound in self.by_promise(self.bounds_after(last)):
            if self.is_settled(best, limit, bound):
                break
            pages.append((yield bound))
            best = self.merge(pages, limit)
        return best

    def is_settled(self, best: Sequence[FeedRow], limit: int, bound: BandBound) -> bool:
        """True when `best` (the merged page so far) is full and the band under `bound` cannot
        place a row in it, so that band need not be asked."""
        if len(best) < limit:
            return False
        return self.merge_key(best[limit - 1]) < self.best_possible_key(bound)


def strict_penalties(window_ms: int) -> tuple[int, ...]:
    """Penalties that keep bands apart: band b's scores all fall below band b-1's."""
    return tuple(band * (window_ms + 1) for band in range(BAND_COUNT))


def _clamped_to_t0(bound: BandBound, t0_ms: int) -> BandBound:
    # Nothing after page 1's time takes part: an upper bound past t0 becomes "<= t0".
    if bound.upper > t0_ms:
        return BandBound(bound.band, bound.lower_exclusive, t0_ms, True)
    return bound


def _can_match(bound: BandBound) -> bool:
    if bound.inclusive or bound.tie is not None:
        return bound.upper > bound.lower_exclusive
    return bound.upper - 1 > bound.lower_exclusive
