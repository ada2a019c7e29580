"""All of the feed generator's SQL: the viewer's anchor and one page of candidates per band.

Read only, on the index tables of `atcore.index.schema`; the same statements run on SQLite,
PostgreSQL and CockroachDB.

**One band's page** (`band_statement`) is one statement returning up to `limit` rows after the
band's keyset bound, ordered by `(sort_at, author_did, collection, rkey)` descending. A near band's
statement is a `UNION ALL` of one keyset scan per cell of the band's disk (`h3_rN = :cell ...
ORDER BY sort_at DESC LIMIT :n`, served by the per-cell index `(h3_rN, sort_at, author_did,
collection, rkey)`), so its work is bounded by cells x limit whatever the size of the index; the
world band is one scan of the global keyset index. Every statement keeps only servable rows
(visible account, companion post present), excludes the nearer bands' disks (`col IS NULL OR col
NOT IN (...)`: a NULL cell means "published coarser than this band", never "in it"), and applies
its keyset bound, among rows indexed no later than page 1. Which bands are asked at all, and in
which order, is the ranking's decision (`RankingPlan.search`); the readers only run its requests.

Three readers run the statements, each compiling a shape once: `pg_reader.PgReader` (PostgreSQL
and CockroachDB on asyncpg: `array_band_statement`, near bands in rounds), `sqlite_reader.
SqliteReader` (a SQLite file on the `sqlite3` driver: `merged_cells_statement`, the per-cell scans
as one compound statement SQLite merges lazily) and the portable `engine_reader.EngineReader`
(any SQLAlchemy engine: `band_statement`).

Statements are built once per *shape* (first enabled band, band, kind of bound) and then only
re-bound: every disk has `DISK_SLOTS` cell parameters, padded with a cell id that matches nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Select,
    all_,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from atcore.index.geo import BANDS
from atcore.index.schema import checkin
from feedgen.algos.bands import DISK_SLOTS, NO_CELL, WORLD, Anchor, BandDisks
from feedgen.algos.order import BandBound, CheckinKey, FeedRow, Position, RankingPlan

BoundKind = Literal["le", "lt", "tie"]
Shape = tuple[int, int, BoundKind]  # (first enabled band, band, kind of keyset bound)

ARRAY_DIALECTS: Final = frozenset({"postgresql", "cockroachdb"})
_C: Final = checkin.c
_CELL_COLUMNS: Final = tuple(_C[band.column] for band in BANDS)
_KEYSET: Final = (_C.sort_at, _C.author_did, _C.collection, _C.rkey)
OUTPUT: Final = (_C.post_uri, *_KEYSET, _C.lat_e6, _C.lon_e6)
CELL: Final = "cell"  # the extra column of a near band's rows in `array_band_statement`


@dataclass(frozen=True, slots=True)
class PageResult:
    """A page's rows in feed order, and the bands that were asked for it."""

    rows: list[FeedRow]
    bands_asked: tuple[int, ...]


class IndexReader(Protocol):
    """What the ranking needs from the index (`PgReader`, `SqliteReader`, `EngineReader`)."""

    async def latest_anchor(self, did: str) -> Anchor | None: ...

    async def page(self, plan: RankingPlan, last: Position | None, limit: int) -> PageResult: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def anchor_of(row: tuple[Any, ...]) -> Anchor:
    lat_e6, lon_e6, *cells = row
    return Anchor.from_cells(lat_e6, lon_e6, tuple(cells))


def feed_rows(rows: Sequence[Sequence[Any]], band: int) -> list[FeedRow]:
    """Rows of a band statement (`OUTPUT` columns) as `FeedRow`s."""
    return [
        FeedRow(post_uri, sort_at, CheckinKey(did, collection, rkey), lat_e6, lon_e6, band)
        for post_uri, sort_at, did, collection, rkey, lat_e6, lon_e6 in rows
    ]


def ping_statement() -> Select[Any]:
    return select(_C.sort_at).limit(1)


def anchor_statement() -> Select[Any]:
    """The viewer's latest visible check-in (`:did`): coordinates and cells."""
    return (
        select(_C.lat_e6, _C.lon_e6, *_CELL_COLUMNS)
        .where(_C.author_did == bindparam("did"), _C.visible)
        .order_by(_C.sort_at.desc(), _C.collection.desc(), _C.rkey.desc())  # deterministic
        .limit(1)
    )


def band_shape(disks: BandDisks | None, bound: BandBound) -> Shape:
    return (_first_enabled(disks), bound.band, _kind(bound))


def _first_enabled(disks: BandDisks | None) -> int:
    if disks is None:
        return WORLD
    return next((i for i, disk in enumerate(disks.disks) if disk is not None), WORLD)


def _kind(bound: BandBound) -> BoundKind:
    if bound.tie is not None:
        return "tie"
    return "le" if bound.inclusive else "lt"


def band_parameters(
    disks: BandDisks | None, bound: BandBound, limit: int, snapshot_ms: int
) -> dict[str, Any]:
    """The parameters of a band statement: bounds, the disks' cells, the snapshot time."""
    params = _bound_parameters(bound, limit, snapshot_ms)
    if disks is not None:
        for band, disk in enumerate(disks.disks[: bound.band + 1]):
            for slot, cell in enumerate(disk or ()):
                params[f"c{band}_{slot}"] = cell
    return params


def _bound_parameters(bound: BandBound, limit: int, snapshot_ms: int) -> dict[str, Any]:
    """What every band statement binds: page size, keyset bounds, snapshot time, tie-breaker."""
    params: dict[str, Any] = {
        "lim": limit,
        "lo": bound.lower_exclusive,
        "up": bound.upper,
        "snap": snapshot_ms,
    }
    if bound.tie is not None:
        params.update(td=bound.tie.author_did, tc=bound.tie.collection, tr=bound.tie.rkey)
    return params


# -- statement construction (once per shape) -------------------------------------------------------
def band_statement(shape: Shape) -> Select[Any]:
    """Up to :lim servable rows of one band after its bound, in keyset order."""
    first_band, band, kind = shape
    filters = [*_servable(), *_outside_disks(range(first_band, band)), *_bound(kind)]
    if WORLD in (band, first_band):  # the world band, or the global feed's only band
        return _keyset_page(select(*OUTPUT).where(*filters))
    column = _CELL_COLUMNS[band]
    per_cell = [
        _keyset_page(select(*OUTPUT).where(column == bindparam(f"c{band}_{slot}"), *filters))
        for slot in range(DISK_SLOTS)
    ]
    merged = union_all(*(select(*page.subquery().c) for page in per_cell)).subquery("cells")
    return _keyset_page(select(*merged.c), merged.c)


def array_band_statement(shape: Shape) -> Select[Any]:
    """The band statement for PostgreSQL and CockroachDB: disks as array parameters.

    The nearer disks' exclusions are `col <> ALL(:dN)`: a short statement these databases plan
    once, instead of nineteen unioned copies with hundreds of parameters. A near band's cells
    come as two `BIGINT[]`s, each cell driving a LATERAL keyset scan of its own: `:cells`, read
    up to `:per_cell` rows each, and `:more`, read up to `:lim` rows each. The page is the first
    `:lim` rows of their union, with each row's cell in the column `CELL` - so a reader can
    start with a few rows per cell and re-read only the cells that filled their share
    (`feedgen.db.pg_reader`): these databases cannot merge the cells' index scans lazily,
    and reading `:lim` rows from every cell of a dense disk costs ten times as much.
    Parameters: `array_band_parameters` (every cell read in full until a reader says otherwise).
    """
    first_band, band, kind = shape
    filters = [*_servable(), *_outside_arrays(range(first_band, band)), *_bound(kind)]
    if WORLD in (band, first_band):
        return _keyset_page(select(*OUTPUT).where(*filters))
    groups = [
        _cell_scans(band, filters, cells, cap)
        for cells, cap in (("cells", "per_cell"), ("more", "lim"))
    ]
    merged = union_all(*groups).subquery("merged")
    return _keyset_page(select(*merged.c), merged.c)


def _cell_scans(
    band: int, filters: list[ColumnElement[bool]], cells_param: str, cap_param: str
) -> Select[Any]:
    """One LATERAL keyset scan, of up to `:cap_param` rows, per cell of the array parameter."""
    cells = (
        func.unnest(bindparam(cells_param, type_=ARRAY(BigInteger)))
        .table_valued("id")
        .render_derived(name=f"{cells_param}_cell")
    )
    scan = _keyset_page(
        select(*OUTPUT).where(_CELL_COLUMNS[band] == cells.c.id, *filters), cap=cap_param
    ).lateral(f"{cells_param}_scan")
    return select(*scan.c, cells.c.id.label(CELL)).select_from(cells).join(scan, true())


def array_band_parameters(
    disks: BandDisks | None, bound: BandBound, limit: int, snapshot_ms: int
) -> dict[str, Any]:
    """The parameters of `array_band_statement`."""
    params = _bound_parameters(bound, limit, snapshot_ms)
    if disks is not None:
        for band, disk in enumerate(disks.disks[: bound.band + 1]):
            real = [cell for cell in disk or () if cell != NO_CELL]
            params["cells" if band == bound.band else f"d{band}"] = real
    params.update(per_cell=limit, more=[])  # every cell read in full; see `array_band_statement`
    return params


def _outside_arrays(bands: range) -> list[ColumnElement[bool]]:
    return [
        or_(
            _CELL_COLUMNS[band].is_(None),
            _CELL_COLUMNS[band] != all_(bindparam(f"d{band}", type_=ARRAY(BigInteger))),
        )
        for band in bands
    ]


def merged_cells_statement(shape: Shape, cells: int) -> CompoundSelect[Any]:
    """A near band's page as one compound statement: `cells` keyset scans merged (SQLite).

    Each arm is one cell's scan (`:cell0`, `:cell1`, ...) with the band's filters; the compound's
    ORDER BY is the keyset, which every arm's index already yields in order, so SQLite plans a
    lazy merge of the arms (`MERGE (UNION ALL)` in EXPLAIN QUERY PLAN) and stops after `:lim`
    rows: a page reads about `limit + cells` index entries, in one prepared statement. (Unioned
    subqueries with a LIMIT each, as in `band_statement`, are instead materialised and sorted.)
    Parameters: `band_parameters` plus `cellN` for each arm.
    """
    first_band, band, kind = shape
    if not is_cell_band(shape):
        raise ValueError("only near bands have cells")
    if not 1 <= cells <= DISK_SLOTS:
        raise ValueError(f"a disk has 1..{DISK_SLOTS} cells, not {cells}")
    filters = [*_servable(), *_outside_disks(range(first_band, band)), *_bound(kind)]
    column = _CELL_COLUMNS[band]
    arms = [select(*OUTPUT).where(column == bindparam(f"cell{i}"), *filters) for i in range(cells)]
    merged = union_all(*arms)
    keyset = (merged.selected_columns[c.name].desc() for c in _KEYSET)
    return merged.order_by(*keyset).limit(bindparam("lim"))


def is_cell_band(shape: Shape) -> bool:
    first_band, band, _kind = shape
    return WORLD not in (band, first_band)


def _keyset_page(statement: Select[Any], columns: Any = _C, cap: str = "lim") -> Select[Any]:
    """Order by the keyset descending and keep the first `:cap` rows."""
    return statement.order_by(*(columns[c.name].desc() for c in _KEYSET)).limit(bindparam(cap))


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
    """Not in any of these (nearer) bands' disks; a NULL cell is outside by definition.

    Spelled as `col <> :c0 AND col <> :c1 ...` rather than `col NOT IN (...)`: SQLite builds an
    ephemeral index for every NOT IN list on each execution, and a merged-cells statement has
    one list per cell, which cost six times the scan itself. (Same meaning: no cell is NULL.)
    """
    return [
        or_(
            _CELL_COLUMNS[band].is_(None),
            and_(*(_CELL_COLUMNS[band] != bindparam(f"c{band}_{s}") for s in range(DISK_SLOTS))),
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
