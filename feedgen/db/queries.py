"""All of the feed generator's SQL: the viewer's anchor and one page of candidates per band.

Read only, on the index tables of `atcore.index.schema`; the same statements run on SQLite,
PostgreSQL and CockroachDB.

**One band's page** (`band_page`) is one statement returning up to `limit` rows after the band's
keyset bound, ordered by `(sort_at, author_did, collection, rkey)` descending. A near band's
statement is a `UNION ALL` of one keyset scan per cell of the band's disk (`h3_rN = :cell ...
ORDER BY sort_at DESC LIMIT :n`, served by the per-cell index `(h3_rN, sort_at, author_did,
collection, rkey)`), so its work is bounded by cells x limit whatever the size of the index; the
world band is one scan of the global keyset index. Every statement keeps only servable rows
(visible account, companion post present), excludes the nearer bands' disks (`col IS NULL OR col
NOT IN (...)`: a NULL cell means "published coarser than this band", never "in it"), and applies
its keyset bound, among rows indexed no later than page 1. Which bands are asked at all is the
ranking's decision (`algos.nearby`).

Statements are built once per *shape* (first enabled band, band, kind of bound) and then only
re-bound: every disk has `DISK_SLOTS` cell parameters, padded with a cell id that matches nothing.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from atcore.index.geo import BANDS
from atcore.index.schema import checkin
from feedgen.algos.bands import DISK_SLOTS, WORLD, Anchor, BandDisks
from feedgen.algos.order import BandBound, CheckinKey, FeedRow

BoundKind = Literal["le", "lt", "tie"]
Shape = tuple[int, int, BoundKind]  # (first enabled band, band, kind of keyset bound)

_C: Final = checkin.c
_CELL_COLUMNS: Final = tuple(_C[band.column] for band in BANDS)
_KEYSET: Final = (_C.sort_at, _C.author_did, _C.collection, _C.rkey)
_OUTPUT: Final = (_C.post_uri, *_KEYSET, _C.lat_e6, _C.lon_e6)


class FeedQueries:
    """The feed's reads, on a read-only engine; compiled statement shapes are kept per instance."""

    __slots__ = ("_engine", "_shapes")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._shapes: dict[Shape, Select[Any]] = {}

    async def ping(self) -> None:
        """Fail unless the index answers (health checks)."""
        async with self._engine.connect() as conn:
            await conn.execute(select(_C.sort_at).limit(1))

    async def latest_anchor(self, did: str) -> Anchor | None:
        """The viewer's latest visible check-in as an anchor, or None."""
        statement = (
            select(_C.lat_e6, _C.lon_e6, *_CELL_COLUMNS)
            .where(_C.author_did == did, _C.visible)
            .order_by(_C.sort_at.desc(), _C.collection.desc(), _C.rkey.desc())  # deterministic
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            return None
        lat_e6, lon_e6, *cells = row
        return Anchor.from_cells(lat_e6, lon_e6, tuple(cells))

    async def band_page(
        self, disks: BandDisks | None, bound: BandBound, limit: int, *, snapshot_ms: int
    ) -> list[FeedRow]:
        """Up to `limit` servable rows of one band after its bound, in the band's keyset order,
        among the rows indexed by `snapshot_ms` (the time of page 1)."""
        first_band = _first_enabled(disks)
        shape: Shape = (first_band, bound.band, _kind(bound))
        statement = self._shapes.get(shape)
        if statement is None:
            statement = self._shapes[shape] = _band_statement(*shape)
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(statement, _parameters(disks, bound, limit, snapshot_ms))
            ).all()
        band = bound.band
        return [
            FeedRow(post_uri, sort_at, CheckinKey(did, collection, rkey), lat_e6, lon_e6, band)
            for post_uri, sort_at, did, collection, rkey, lat_e6, lon_e6 in rows
        ]


def _first_enabled(disks: BandDisks | None) -> int:
    if disks is None:
        return WORLD
    return next((i for i, disk in enumerate(disks.disks) if disk is not None), WORLD)


def _kind(bound: BandBound) -> BoundKind:
    if bound.tie is not None:
        return "tie"
    return "le" if bound.inclusive else "lt"


def _parameters(
    disks: BandDisks | None, bound: BandBound, limit: int, snapshot_ms: int
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "lim": limit,
        "lo": bound.lower_exclusive,
        "up": bound.upper,
        "snap": snapshot_ms,
    }
    if disks is not None:
        for band, disk in enumerate(disks.disks[: bound.band + 1]):
            for slot, cell in enumerate(disk or ()):
                params[f"c{band}_{slot}"] = cell
    if bound.tie is not None:
        params.update(td=bound.tie.author_did, tc=bound.tie.collection, tr=bound.tie.rkey)
    return params


# -- statement construction (once per shape) -------------------------------------------------------
def _band_statement(first_band: int, band: int, kind: BoundKind) -> Select[Any]:
    """Up to :lim servable rows of one band after its bound, in keyset order."""
    filters = [*_servable(), *_outside_disks(range(first_band, band)), *_bound(kind)]
    if WORLD in (band, first_band):  # the world band, or the global feed's only band
        return _keyset_page(select(*_OUTPUT).where(*filters))
    column = _CELL_COLUMNS[band]
    per_cell = [
        _keyset_page(select(*_OUTPUT).where(column == bindparam(f"c{band}_{slot}"), *filters))
        for slot in range(DISK_SLOTS)
    ]
    merged = union_all(*(select(*page.subquery().c) for page in per_cell)).subquery("cells")
    return _keyset_page(select(*merged.c), merged.c)


def _keyset_page(statement: Select[Any], columns: Any = _C) -> Select[Any]:
    """Order by the keyset descending and keep the first :lim rows."""
    return statement.order_by(*(columns[c.name].desc() for c in _KEYSET)).limit(bindparam("lim"))


def _servable() -> list[ColumnElement[bool]]:
    # `indexed_at <= :snap`: rows (re)indexed after page 1 stay out of the pages that follow it,
    # so an insert or an update can never make a row appear twice or shift the order.
    return [
        _C.visible,
        _C.post_exists,
        _C.post_uri.is_not(None),
        _C.indexed_at <= bindparam("snap"),
    ]


def _outside_disks(bands: range) -> list[ColumnElement[bool]]:
    """Not in any of these (nearer) bands' disks; a NULL cell is outside by definition."""
    return [
        or_(
            _CELL_COLUMNS[band].is_(None),
            _CELL_COLUMNS[band].not_in([bindparam(f"c{band}_{s}") for s in range(DISK_SLOTS)]),
        )
        for band in bands
    ]


def _bound(kind: BoundKind) -> list[ColumnElement[bool]]:
    lower = _C.sort_at > bindparam("lo")
    upper: BindParameter[int] = bindparam("up")
    if kind == "le":
        return [lower, _C.sort_at <= upper]
    if kind == "lt":
        return [lower, _C.sort_at < upper]
    tie: tuple[BindParameter[Any], ...] = (upper, bindparam("td"), bindparam("tc"), bindparam("tr"))
    # The plain `sort_at <= :up` lets every backend see the index range; the row value decides.
    return [lower, and_(_C.sort_at <= upper, tuple_(*_KEYSET) < tuple_(*tie))]
