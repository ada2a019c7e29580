"""Hypothesis properties of the feed's pages against the independent oracle (tests.feedgen.support).

Random check-in sets around a few cities (offsets from metres to thousands of kilometres, coarse
check-ins, hidden accounts, missing posts, rows outside the window or indexed after page 1, many
equal timestamps), random anchors (none, fixed, the viewer's latest check-in, coarse anchors),
strict or random band penalties and random page sizes. Pages are read through `NearbyFeeds` on a
real SQLite index, exactly as the API reads them.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from atcore.syntax import RecordKey
from feedgen.algos import FeedDefinition
from feedgen.algos.bands import Anchor
from feedgen.algos.nearby import NearbyFeeds, RankingConfig, SkeletonPage
from tests.feedgen.conftest import Indexed
from tests.feedgen.support import Checkin, oracle_order

HOUR = 3_600_000
T0 = 1_800_000_000_000
WINDOW = 8 * HOUR
CITIES = (
    (48_856_600, 2_352_200),
    (48_900_000, 2_400_000),
    (35_676_200, 139_650_300),
    (-33_868_800, 151_209_300),
)
OFFSETS = (2_000, 20_000, 150_000, 600_000, 3_000_000)  # microdegrees: ~0.2 km .. ~330 km
DIDS = ("did:plc:aaaa", "did:plc:bbbb", "did:plc:cccc")
FEED_URI = "at://did:plc:publisher/app.bsky.feed.generator/nearby"


@dataclass(frozen=True)
class Scenario:
    items: list[Checkin]
    anchor: Anchor | None  # the fixed anchor, when `viewer` is None
    viewer: str | None
    penalties: tuple[int, ...] | None
    limit: int


@st.composite
def checkins(draw: st.DrawFn) -> list[Checkin]:
    count = draw(st.integers(0, 45))
    rkeys = draw(
        st.lists(
            st.text("abc234", min_size=1, max_size=4), min_size=count, max_size=count, unique=True
        )
    )
    items = []
    for rkey in rkeys:
        lat, lon = draw(st.sampled_from(CITIES))
        spread = draw(st.sampled_from(OFFSETS))
        sort_at = T0 - draw(st.integers(-1, 9)) * HOUR  # hour slots: many equal timestamps
        items.append(
            Checkin(
                did=draw(st.sampled_from(DIDS)),
                rkey=rkey,
                lat_e6=max(-89_000_000, min(89_000_000, lat + draw(st.integers(-spread, spread)))),
                lon_e6=lon + draw(st.integers(-spread, spread)),
                sort_at=sort_at,
                indexed_at=sort_at + draw(st.sampled_from((0, 0, 0, HOUR, 3 * HOUR))),
                precision=draw(st.sampled_from((None, None, None, None, 5, 3))),
                visible=draw(st.sampled_from((True, True, True, True, False))),
                post_exists=draw(st.sampled_from((True, True, True, True, False))),
                has_post=draw(st.sampled_from((True, True, True, True, True, False))),
            )
        )
    return items


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    items = draw(checkins())
    mode = draw(st.sampled_from(("global", "fixed", "viewer")))
    anchor = None
    viewer = None
    if mode == "fixed":
        lat, lon = draw(st.sampled_from(CITIES))
        anchor = Anchor(lat + draw(st.integers(-5_000, 5_000)), lon, draw(st.integers(0, 3)))
    elif mode == "viewer":
        viewer = draw(st.sampled_from((*DIDS, "did:plc:nobody")))
    penalties = None
    if draw(st.booleans()):
        hours = sorted(draw(st.lists(st.integers(0, 4), min_size=3, max_size=3)))
        penalties = (0, *(h * HOUR for h in hours))
    return Scenario(items, anchor, viewer, penalties, draw(st.sampled_from((1, 1, 2, 3, 5, 8))))


def viewer_anchor(items: list[Checkin], viewer: str) -> tuple[int, int, int] | None:
    """The viewer's latest visible check-in (ties: the larger rkey), as (lat, lon, first band)."""
    own = [c for c in items if c.did == viewer and c.visible]
    if not own:
        return None
    latest = max(own, key=lambda c: (c.sort_at, c.rkey))
    first_band = {None: 0, 5: 1, 3: 2}[latest.precision]
    return (latest.lat_e6, latest.lon_e6, first_band)


def expected(scenario: Scenario) -> list[tuple[Checkin, int]]:
    if scenario.viewer is not None:
        anchor = viewer_anchor(scenario.items, scenario.viewer)
    elif scenario.anchor is not None:
        anchor = (scenario.anchor.lat_e6, scenario.anchor.lon_e6, scenario.anchor.first_band)
    else:
        anchor = None
    return oracle_order(
        scenario.items, anchor=anchor, t0=T0, window=WINDOW, penalties=scenario.penalties
    )


def feeds_for(indexed: Indexed, penalties: tuple[int, ...] | None) -> NearbyFeeds:
    config = RankingConfig(window_ms=WINDOW, penalties=penalties, page_cache_seconds=0)
    return NearbyFeeds(indexed.reader, config, clock=lambda: T0)


async def read_all(
    feeds: NearbyFeeds, feed: FeedDefinition, viewer: str | None, limit: int
) -> list[SkeletonPage]:
    pages: list[SkeletonPage] = []
    cursor = None
    for _ in range(200):
        page = await feeds.page(feed, viewer, limit, cursor)
        pages.append(page)
        assert len(page.items) <= limit
        if page.cursor is None:
            return pages
        assert len(page.items) == limit  # a cursor only follows a full page
        cursor = page.cursor
    raise AssertionError("the feed never ended")


def band_of_context(context: str) -> str:
    return context.split(";", maxsplit=1)[0].removeprefix("band=")


@given(scenario=scenarios())
def test_pages_concatenate_to_the_oracle_order(
    runner: asyncio.Runner, indexed: Indexed, scenario: Scenario
) -> None:
    async def body() -> None:
        await indexed.index.clear()
        await indexed.index.insert(scenario.items)
        feed = FeedDefinition(RecordKey("nearby"), FEED_URI, scenario.anchor)
        feeds = feeds_for(indexed, scenario.penalties)
        pages = await read_all(feeds, feed, scenario.viewer, scenario.limit)
        served = [item for page in pages for item in page.items]
        want = expected(scenario)
        assert [item.post for item in served] == [c.post_uri for c, _ in want]
        assert len({item.post for item in served}) == len(served)
        names = ("near", "city", "region", "world")
        anchored = scenario.viewer is not None and want and "global" not in served[0].feed_context
        if scenario.anchor is not None or anchored:
            assert [band_of_context(i.feed_context) for i in served] == [names[b] for _, b in want]
        else:
            assert all(i.feed_context == "band=global" for i in served)

    runner.run(body())


@given(scenario=scenarios())
def test_strict_bands_never_decrease_and_are_newest_first(
    runner: asyncio.Runner, indexed: Indexed, scenario: Scenario
) -> None:
    async def body() -> None:
        await indexed.index.clear()
        await indexed.index.insert(scenario.items)
        anchor = scenario.anchor or Anchor(*CITIES[0])
        feed = FeedDefinition(RecordKey("nearby"), FEED_URI, anchor)
        pages = await read_all(feeds_for(indexed, None), feed, None, scenario.limit)
        by_uri = {c.post_uri: c for c in scenario.items}
        order = ("near", "city", "region", "world")
        served = [
            (order.index(band_of_context(i.feed_context)), by_uri[i.post])
            for p in pages
            for i in p.items
        ]
        for (band_a, a), (band_b, b) in itertools.pairwise(served):
            assert band_a <= band_b
            if band_a == band_b:
                assert (a.sort_at, a.key) > (b.sort_at, b.key)

    runner.run(body())


@given(scenario=scenarios(), late=checkins(), split=st.integers(0, 10))
def test_inserts_between_pages_never_duplicate_or_drop(
    runner: asyncio.Runner, indexed: Indexed, scenario: Scenario, late: list[Checkin], split: int
) -> None:
    """Rows committed while a reader pages (including ones indexed "before" page 1 by a slow
    transaction) never repeat an item nor hide one that page 1's snapshot held."""
    known = {c.key for c in scenario.items}
    late = [
        Checkin(**{**c.__dict__, "rkey": "z" + c.rkey})
        for c in late
        if ("z" + c.rkey) not in {k[2] for k in known}
    ]

    async def body() -> None:
        await indexed.index.clear()
        await indexed.index.insert(scenario.items)
        feed = FeedDefinition(RecordKey("nearby"), FEED_URI, scenario.anchor)
        feeds = feeds_for(indexed, scenario.penalties)
        served: list[str] = []
        cursor = None
        for number in itertools.count():
            page = await feeds.page(feed, scenario.viewer, scenario.limit, cursor)
            served.extend(item.post for item in page.items)
            if number == split:
                await indexed.index.insert(late)
            if page.cursor is None:
                break
            cursor = page.cursor
        assert len(set(served)) == len(served)
        before = [c.post_uri for c, _ in expected(scenario)]
        positions = {uri: i for i, uri in enumerate(served)}
        assert all(uri in positions for uri in before)
        assert [positions[uri] for uri in before] == sorted(positions[uri] for uri in before)

    runner.run(body())
