"""The index's H3 band cells: what each band's disk always includes and never reaches.

Points are placed at a known great-circle distance and bearing from a random anchor (between 60°S
and 60°N, where the radii in `atcore.index.geo` were measured), then checked against the anchor's
band disks.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore.index.geo import (
    BANDS,
    MICRO,
    GeoError,
    band_disks,
    cells_for_point,
    check_microdegrees,
)

EARTH_RADIUS_KM = 6371.0088
# (always included within, never beyond) in km, per band, with a little margin for the spherical
# model used here against H3's own.
RADII = {"near": (2.9, 8.5), "city": (21.0, 60.0), "region": (140.0, 410.0)}

latitudes = st.integers(-60 * MICRO, 60 * MICRO)
longitudes = st.integers(-180 * MICRO, 180 * MICRO)
bearings = st.floats(0, 2 * math.pi, allow_nan=False)


def destination(lat_e6: int, lon_e6: int, distance_km: float, bearing: float) -> tuple[int, int]:
    lat1, lon1 = math.radians(lat_e6 / MICRO), math.radians(lon_e6 / MICRO)
    angular = distance_km / EARTH_RADIUS_KM
    lat2 = math.asin(
        math.sin(lat1) * math.cos(angular) + math.cos(lat1) * math.sin(angular) * math.cos(bearing)
    )
    lon2 = lon1 + math.atan2(
        math.sin(bearing) * math.sin(angular) * math.cos(lat1),
        math.cos(angular) - math.sin(lat1) * math.sin(lat2),
    )
    lon_deg = (math.degrees(lon2) + 540) % 360 - 180
    return round(math.degrees(lat2) * MICRO), round(lon_deg * MICRO)


@pytest.mark.parametrize("band_index", range(len(BANDS)))
@given(lat=latitudes, lon=longitudes, bearing=bearings, fraction=st.floats(0, 1))
def test_points_within_the_band_radius_are_in_its_disk(
    band_index: int, lat: int, lon: int, bearing: float, fraction: float
) -> None:
    band = BANDS[band_index]
    inside_km, _ = RADII[band.name]
    point = destination(lat, lon, inside_km * fraction, bearing)
    disk = band_disks(lat, lon)[band_index]
    assert disk.band is band
    assert cells_for_point(*point).for_band(band) in disk.cells


@pytest.mark.parametrize("band_index", range(len(BANDS)))
@given(lat=latitudes, lon=longitudes, bearing=bearings, extra=st.floats(0, 500))
def test_points_beyond_the_band_reach_are_outside_its_disk(
    band_index: int, lat: int, lon: int, bearing: float, extra: float
) -> None:
    band = BANDS[band_index]
    _, beyond_km = RADII[band.name]
    point = destination(lat, lon, beyond_km + extra, bearing)
    disk = band_disks(lat, lon)[band_index]
    assert cells_for_point(*point).for_band(band) not in disk.cells


@given(lat=st.integers(-90 * MICRO, 90 * MICRO), lon=st.integers(-180 * MICRO, 180 * MICRO))
def test_cell_ids_fit_a_signed_bigint_and_nest(lat: int, lon: int) -> None:
    cells = cells_for_point(lat, lon)
    ids = [cells.r7, cells.r5, cells.r3]
    assert all(c is not None and 0 < c < 2**63 for c in ids)
    for disk in band_disks(lat, lon):
        assert cells.for_band(disk.band) in disk.cells
        assert len(disk.cells) <= 19  # k = 2: 1 + 6 + 12 cells (fewer next to a pentagon)


def test_bands_are_fine_to_coarse() -> None:
    assert [b.resolution for b in BANDS] == sorted((b.resolution for b in BANDS), reverse=True)
    assert [b.column for b in BANDS] == ["h3_r7", "h3_r5", "h3_r3"]


@pytest.mark.parametrize(
    ("precision", "expected_none"),
    [(None, set()), (15, set()), (7, set()), (5, {"r7"}), (3, {"r7", "r5"})],
)
def test_coarse_precision_blanks_finer_columns(
    precision: int | None, expected_none: set[str]
) -> None:
    cells = cells_for_point(48_856_600, 2_352_200, precision=precision)
    blank = {name for name in ("r7", "r5", "r3") if getattr(cells, name) is None}
    assert blank == expected_none


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(90 * MICRO + 1, 0), (-90 * MICRO - 1, 0), (0, 180 * MICRO + 1), (0, -180 * MICRO - 1)],
)
def test_out_of_range_coordinates_are_refused(lat: int, lon: int) -> None:
    with pytest.raises(GeoError):
        check_microdegrees(lat, lon)
    with pytest.raises(GeoError):
        cells_for_point(lat, lon)
    with pytest.raises(GeoError):
        band_disks(lat, lon)
