"""Where a check-in is, as the index stores it: microdegrees and H3 cells for the feed's bands.

Coordinates are integers in microdegrees (degrees x 10^6; the check-in lexicon allows at most six
decimals, so the conversion is exact). Each check-in also carries the ids of the H3 cells that
contain it at three resolutions, one per distance band of the "nearby" feed:

=========  ==========  ===========  ==========================  =========================
band       resolution  disk radius  always included (measured)  never beyond (measured)
=========  ==========  ===========  ==========================  =========================
near       7 (~1.4 km  k = 2        everything within ~3.0 km   ~8 km
           edges)                   of the anchor
city       5 (~9.9 km) k = 2        within ~22 km               ~57 km
region     3 (~69 km)  k = 2        within ~147 km              ~395 km
world      -           -            everything else             -
=========  ==========  ===========  ==========================  =========================

(Radii measured with `h3.grid_disk` around random anchors between 60°S and 60°N.)

**How a band query works.** For an anchor point, `band_disks(lat_e6, lon_e6)` gives, per band,
the 19 cells of `grid_disk(latlng_to_cell(anchor, res), 2)`. A check-in is in band *i* when its
cell column for band *i* is in that set, and it is not in an earlier band. The per-cell indexes
(`(h3_rN, sort_at, author_did, collection, rkey)`) make "newest first inside a band" a keyset
scan per cell: one `WHERE h3_rN = :cell AND (sort_at, ...) < :last ORDER BY sort_at DESC LIMIT
:n` per cell, merged by the caller (or a `UNION ALL` of those), never a scan of the table.

Coarse check-ins (published at neighbourhood or city precision: `atcore.checkin.Precision`
caps their H3 resolution at 7 or 5) get NULL in the columns finer than that cap
(`cells_for_point(..., precision=5)`): a city-level check-in is never "near" anyone, which is the
honest answer.

H3 ids are 64-bit with the top bit always zero, so they fit a signed BIGINT unchanged.

Errors: `GeoError` (a `ValueError`) for coordinates out of range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import h3

MICRO: Final = 1_000_000
MAX_LAT_E6: Final = 90 * MICRO
MAX_LON_E6: Final = 180 * MICRO


class GeoError(ValueError):
    """Coordinates or an H3 cell the index cannot store."""


@dataclass(frozen=True, slots=True)
class Band:
    """One distance band of the feed: the H3 resolution of its column and the disk radius k."""

    name: str
    resolution: int
    k: int
    column: str  # the `checkin` column holding the cell at `resolution`


BANDS: Final = (
    Band("near", 7, 2, "h3_r7"),
    Band("city", 5, 2, "h3_r5"),
    Band("region", 3, 2, "h3_r3"),
)
RESOLUTIONS: Final = tuple(band.resolution for band in BANDS)
FINEST_RESOLUTION: Final = RESOLUTIONS[0]


@dataclass(frozen=True, slots=True)
class Cells:
    """The cell ids of a point at each band's resolution (None when coarser than the data)."""

    r7: int | None
    r5: int | None
    r3: int | None

    def for_band(self, band: Band) -> int | None:
        value: int | None = getattr(self, f"r{band.resolution}")
        return value


@dataclass(frozen=True, slots=True)
class BandDisk:
    """The cells a band query matches: `column IN cells`."""

    band: Band
    cells: frozenset[int]


def check_microdegrees(lat_e6: int, lon_e6: int) -> None:
    if not -MAX_LAT_E6 <= lat_e6 <= MAX_LAT_E6:
        raise GeoError(f"latitude {lat_e6 / MICRO} outside [-90, 90]")
    if not -MAX_LON_E6 <= lon_e6 <= MAX_LON_E6:
        raise GeoError(f"longitude {lon_e6 / MICRO} outside [-180, 180]")


def cells_for_point(lat_e6: int, lon_e6: int, *, precision: int | None = None) -> Cells:
    """Cells of an exact point; `precision` (an H3 resolution) blanks the finer columns."""
    check_microdegrees(lat_e6, lon_e6)
    lat, lon = lat_e6 / MICRO, lon_e6 / MICRO
    limit = FINEST_RESOLUTION if precision is None else precision
    ids = {
        res: _int_cell(h3.latlng_to_cell(lat, lon, res)) if res <= limit else None
        for res in RESOLUTIONS
    }
    return Cells(r7=ids[7], r5=ids[5], r3=ids[3])


def band_disks(lat_e6: int, lon_e6: int) -> tuple[BandDisk, ...]:
    """Per band, the cell ids around an anchor; see the module docstring for the query shape."""
    check_microdegrees(lat_e6, lon_e6)
    lat, lon = lat_e6 / MICRO, lon_e6 / MICRO
    return tuple(
        BandDisk(
            band,
            frozenset(
                _int_cell(c)
                for c in h3.grid_disk(h3.latlng_to_cell(lat, lon, band.resolution), band.k)
            ),
        )
        for band in BANDS
    )


def _int_cell(cell: str) -> int:
    return int(h3.str_to_int(cell))
