"""The anchor of a ranking and its distance bands, from the index's H3 cell columns.

The geometry is the index's (`atcore.index.geo`): per band an H3 resolution, a disk radius `k`
and the `checkin` column holding each check-in's cell at that resolution. Around an anchor,
`band_disks` gives each band's disk: the cells a band query matches with `column IN (...)`, so
the database compares integer columns with short lists instead of computing distances.

    band 0  near    about 3 km      band 2  region  about 150 km
    band 1  city    about 20 km     band 3  world   everything else

A check-in belongs to the FIRST band whose disk holds its cell (H3 resolutions do not nest
exactly, so the queries exclude the nearer disks explicitly). A cell column is NULL when the
check-in was published coarser than that resolution, so it is never in that band.

An anchor can be coarse too (the viewer's latest check-in was published at city precision): its
`first_band` skips the bands finer than its precision, whose disks would only be "near the
centre of a city", not near the viewer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import h3

from atcore.index.geo import BANDS, MICRO, band_disks, check_microdegrees

DISK_SLOTS: Final = 19  # cells in grid_disk(cell, 2) away from pentagons (1 + 6 + 12)
NO_CELL: Final = -1  # pads a disk to DISK_SLOTS: H3 ids are never negative, so it matches nothing
WORLD: Final = len(BANDS)
BAND_COUNT: Final = WORLD + 1
BAND_NAMES: Final = (*(band.name for band in BANDS), "world")
GLOBAL_NAME: Final = "global"


@dataclass(frozen=True, slots=True)
class Anchor:
    """The point a ranking is centred on, in microdegrees, and the first band it can fill."""

    lat_e6: int
    lon_e6: int
    first_band: int = 0

    def __post_init__(self) -> None:
        check_microdegrees(self.lat_e6, self.lon_e6)
        if not 0 <= self.first_band <= WORLD:
            raise ValueError(f"anchor first band out of range: {self.first_band}")

    @property
    def latlng(self) -> tuple[float, float]:
        return (self.lat_e6 / MICRO, self.lon_e6 / MICRO)

    @classmethod
    def from_cells(cls, lat_e6: int, lon_e6: int, cells: tuple[int | None, ...]) -> Anchor:
        """An anchor from an indexed check-in: its NULL finer cells make it coarse."""
        first = next((i for i, cell in enumerate(cells) if cell is not None), WORLD)
        return cls(lat_e6, lon_e6, first)


@dataclass(frozen=True, slots=True)
class BandDisks:
    """Per near band (near, city, region): the disk's cells padded to `DISK_SLOTS`, or None
    when the anchor is too coarse for that band."""

    disks: tuple[tuple[int, ...] | None, ...]

    @classmethod
    def around(cls, anchor: Anchor) -> BandDisks:
        computed = band_disks(anchor.lat_e6, anchor.lon_e6)
        return cls(
            tuple(
                _padded(disk.cells) if index >= anchor.first_band else None
                for index, disk in enumerate(computed)
            )
        )


class DiskCache:
    """A bounded LRU of `BandDisks` by anchor: anchors repeat (region feeds, polling viewers,
    every later page of a read), and the disks cost three H3 `grid_disk` calls to compute.
    Safe to share between threads (the SQLite reader's pool)."""

    __slots__ = ("_entries", "_lock", "_max_size")

    def __init__(self, max_size: int = 4096) -> None:
        self._max_size = max_size
        self._entries: OrderedDict[Anchor, BandDisks] = OrderedDict()
        self._lock = threading.Lock()

    def around(self, anchor: Anchor) -> BandDisks:
        with self._lock:
            disks = self._entries.get(anchor)
            if disks is not None:
                self._entries.move_to_end(anchor)
                return disks
        disks = BandDisks.around(anchor)  # outside the lock: other threads keep reading
        with self._lock:
            self._entries[anchor] = disks
            if len(self._entries) > self._max_size:
                self._entries.popitem(last=False)
        return disks


def _padded(cells: frozenset[int]) -> tuple[int, ...]:
    ordered = sorted(cells)
    if len(ordered) > DISK_SLOTS:
        raise ValueError(f"a band disk has {len(ordered)} cells, more than {DISK_SLOTS}")
    return (*ordered, *([NO_CELL] * (DISK_SLOTS - len(ordered))))


def distance_km(anchor: Anchor, lat_e6: int, lon_e6: int) -> float:
    """Great-circle distance from the anchor (shown in `feedContext`, never used to order)."""
    return float(h3.great_circle_distance(anchor.latlng, (lat_e6 / MICRO, lon_e6 / MICRO), "km"))
