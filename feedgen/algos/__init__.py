"""The feeds this generator serves, by record key, and how a feed URI finds its definition.

Every feed is served by the same ranking code (`algos.nearby`); what differs is the anchor:

- `nearby`: the viewer's latest visible check-in (anonymous viewers and viewers without one get
  the global feed, newest first);
- region feeds (`FEEDGEN_REGION_FEEDS`): a fixed point, e.g. a city centre, for every viewer.

A feed URI is `at://<publisher DID>/app.bsky.feed.generator/<rkey>`; any other authority,
collection or an rkey we do not serve is `UnknownFeed`.

Errors: `UnknownFeed(ValueError)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from atcore import nsids
from atcore.syntax import Did, RecordKey
from feedgen.algos.bands import Anchor
from feedgen.settings import NEARBY_FEED_RKEY, FeedgenSettings


class UnknownFeed(ValueError):
    """The requested feed URI is not one this generator serves."""


@dataclass(frozen=True, slots=True)
class FeedDefinition:
    """One served feed: its record key and URI, and a fixed anchor (None: the viewer's)."""

    rkey: RecordKey
    uri: str
    fixed_anchor: Anchor | None = None


def feed_uri(publisher_did: Did, rkey: str) -> str:
    return f"at://{publisher_did}/{nsids.BSKY_FEED_GENERATOR}/{rkey}"


class FeedRegistry:
    """The served feeds, looked up by their exact AT URI."""

    __slots__ = ("_by_uri",)

    def __init__(self, feeds: Iterable[FeedDefinition]) -> None:
        self._by_uri = {feed.uri: feed for feed in feeds}

    @classmethod
    def from_settings(cls, settings: FeedgenSettings) -> FeedRegistry:
        publisher = settings.publisher_did
        feeds = [FeedDefinition(RecordKey(NEARBY_FEED_RKEY), feed_uri(publisher, NEARBY_FEED_RKEY))]
        feeds.extend(
            FeedDefinition(
                region.rkey, feed_uri(publisher, region.rkey), Anchor(region.lat_e6, region.lon_e6)
            )
            for region in settings.region_feeds
        )
        return cls(feeds)

    @property
    def feeds(self) -> tuple[FeedDefinition, ...]:
        return tuple(self._by_uri.values())

    def lookup(self, uri: str) -> FeedDefinition:
        feed = self._by_uri.get(uri)
        if feed is None:
            raise UnknownFeed(f"unknown feed: {uri[:300]}")
        return feed
