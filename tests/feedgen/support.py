"""Test support for the feed generator: an index on disk, check-in rows, and the oracle.

The oracle is an independent statement of the feed's order, written without the code under test:
a check-in's band comes from `h3.grid_distance` between its cell and the anchor's cell (the
feed itself compares cells with `grid_disk` sets in SQL), and the whole order is one Python sort
over all servable rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import h3
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from atcore.index import checkin, create_index_engine, migrate
from atcore.index.geo import BANDS, MICRO, cells_for_point

CHECKIN = "app.skyspot.checkin"
WORLD = len(BANDS)


@dataclass(frozen=True)
class Checkin:
    """One row of the index as a test describes it."""

    did: str
    rkey: str
    lat_e6: int
    lon_e6: int
    sort_at: int
    indexed_at: int | None = None  # defaults to sort_at
    precision: int | None = None  # an H3 resolution: published coarser than exact
    visible: bool = True
    post_exists: bool = True
    has_post: bool = True

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.did, CHECKIN, self.rkey)

    @property
    def post_uri(self) -> str:
        return f"at://{self.did}/app.bsky.feed.post/{self.rkey}"

    @property
    def indexed(self) -> int:
        return self.sort_at if self.indexed_at is None else self.indexed_at

    def row(self) -> dict[str, object]:
        cells = cells_for_point(self.lat_e6, self.lon_e6, precision=self.precision)
        return {
            "author_did": self.did,
            "collection": CHECKIN,
            "rkey": self.rkey,
            "cid": "bafyreih",
            "rev": "3l2abcdefgh22",
            "lat_e6": self.lat_e6,
            "lon_e6": self.lon_e6,
            "h3_r7": cells.r7,
            "h3_r5": cells.r5,
            "h3_r3": cells.r3,
            "place_name": "somewhere",
            "post_uri": self.post_uri if self.has_post else None,
            "post_exists": self.post_exists,
            "created_at": self.sort_at,
            "indexed_at": self.indexed,
            "sort_at": self.sort_at,
            "visible": self.visible,
        }


@dataclass
class Index:
    """A migrated SQLite index: a writer engine for the test, a read-only one for the feed."""

    writer: AsyncEngine
    reader: AsyncEngine
    url: str

    async def insert(self, checkins: Iterable[Checkin]) -> None:
        rows = [c.row() for c in checkins]
        if rows:
            async with self.writer.begin() as conn:
                await conn.execute(insert(checkin), rows)

    async def clear(self) -> None:
        async with self.writer.begin() as conn:
            await conn.execute(delete(checkin))

    async def close(self) -> None:
        await self.reader.dispose()
        await self.writer.dispose()


async def open_index(path: Path, url: str | None = None) -> Index:
    url = url or f"sqlite+aiosqlite:///{path / 'index.sqlite'}"
    writer = create_index_engine(url)
    await migrate(writer)
    return Index(writer=writer, reader=create_index_engine(url, read_only=True), url=url)


# -- the oracle ------------------------------------------------------------------------------------
def oracle_band(anchor: tuple[int, int, int], item: Checkin) -> int:
    """The first band whose ring (grid distance <= k at its resolution) holds the item."""
    lat_e6, lon_e6, first_band = anchor
    item_cells = cells_for_point(item.lat_e6, item.lon_e6, precision=item.precision)
    for index, band in enumerate(BANDS):
        cell = item_cells.for_band(band)
        if index < first_band or cell is None:
            continue
        centre = h3.str_to_int(h3.latlng_to_cell(lat_e6 / MICRO, lon_e6 / MICRO, band.resolution))
        try:
            steps = h3.grid_distance(h3.int_to_str(centre), h3.int_to_str(cell))
        except h3.H3BaseException:
            continue  # too far apart (or across a pentagon) for a grid distance: not near
        if steps <= band.k:
            return index
    return WORLD


def servable(item: Checkin, t0: int, window: int) -> bool:
    return (
        item.visible
        and item.post_exists
        and item.has_post
        and t0 - window < item.sort_at <= t0
        and item.indexed <= t0
    )


def oracle_order(
    items: Sequence[Checkin],
    *,
    anchor: tuple[int, int, int] | None,
    t0: int,
    window: int,
    penalties: Sequence[int] | None,
) -> list[tuple[Checkin, int]]:
    """Every servable item with its band, in feed order."""
    # Strict banding spelled out independently: each band's scores sit below the previous one's.
    chosen = list(penalties) if penalties is not None else [b * (window + 1) for b in range(4)]
    ranked = []
    for item in items:
        if not servable(item, t0, window):
            continue
        band = oracle_band(anchor, item) if anchor is not None else 0
        score = item.sort_at - (chosen[band] if anchor is not None else 0)
        ranked.append(((score, -band, item.key), item, band))
    ranked.sort(key=lambda entry: entry[0], reverse=True)
    return [(item, band) for _, item, band in ranked]


def moved(item: Checkin, **changes: object) -> Checkin:
    return replace(item, **changes)  # type: ignore[arg-type]
