"""The pagination cursor: round trips, and every kind of foreign or damaged cursor is BadCursor."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedgen.algos.bands import Anchor
from feedgen.algos.order import CheckinKey, Position, RankingPlan
from feedgen.cursor import BadCursor, Cursor, decode_cursor, encode_cursor

FEED = "at://did:plc:publisher/app.bsky.feed.generator/nearby"
OTHER_FEED = "at://did:plc:publisher/app.bsky.feed.generator/paris"
T0 = 1_800_000_000_000
HOUR = 3_600_000


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


keys = st.builds(
    CheckinKey,
    author_did=st.sampled_from(("did:plc:abcdefg", "did:web:example.com")),
    collection=st.just("app.skyspot.checkin"),
    rkey=st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=1, max_size=13),
)


@st.composite
def cursors(draw: st.DrawFn) -> Cursor:
    window = draw(st.integers(1, 1000 * HOUR))
    anchor = None
    if draw(st.booleans()):
        anchor = Anchor(
            draw(st.integers(-90_000_000, 90_000_000)),
            draw(st.integers(-180_000_000, 180_000_000)),
            draw(st.integers(0, 3)),
        )
    penalties = None
    if draw(st.booleans()):
        penalties = (0, *sorted(draw(st.lists(st.integers(0, 10**12), min_size=3, max_size=3))))
    plan = RankingPlan.build(t0_ms=T0, window_ms=window, anchor=anchor, penalties=penalties)
    band = draw(st.integers(plan.first_band, plan.band_count - 1))
    sort_at = draw(st.integers(T0 - window + 1, T0))
    return Cursor(plan, Position(band, sort_at, draw(keys)))


@given(cursor=cursors())
def test_round_trip(cursor: Cursor) -> None:
    text = encode_cursor(cursor, FEED)
    assert text.isascii()
    assert "=" not in text
    assert decode_cursor(text, FEED) == cursor


@given(cursor=cursors())
def test_a_cursor_only_works_for_its_feed(cursor: Cursor) -> None:
    with pytest.raises(BadCursor, match="another feed"):
        decode_cursor(encode_cursor(cursor, FEED), OTHER_FEED)


@given(cursor=cursors(), data=st.data())
def test_every_truncation_is_rejected(cursor: Cursor, data: st.DataObject) -> None:
    raw = unb64(encode_cursor(cursor, FEED))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(BadCursor):
        decode_cursor(b64(raw[:cut]), FEED)


@given(text=st.text(max_size=300))
def test_garbage_text_is_rejected(text: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(text, FEED)


@given(raw=st.binary(max_size=200))
def test_garbage_bytes_are_rejected(raw: bytes) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(b64(raw), FEED)


def plan(anchor: Anchor | None = None) -> RankingPlan:
    return RankingPlan.build(t0_ms=T0, window_ms=10 * HOUR, anchor=anchor, penalties=None)


KEY = CheckinKey("did:plc:abcdefg", "app.skyspot.checkin", "3kabc")


@pytest.mark.parametrize(
    "position",
    [
        Position(0, T0 + 1, KEY),  # after page 1's time
        Position(0, T0 - 10 * HOUR, KEY),  # at the window's open end
        Position(1, T0, KEY),  # the global feed has one band
    ],
)
def test_positions_outside_the_plan_are_rejected(position: Position) -> None:
    with pytest.raises(BadCursor, match="outside"):
        decode_cursor(encode_cursor(Cursor(plan(), position), FEED), FEED)


def test_position_in_a_band_the_anchor_skips_is_rejected() -> None:
    coarse = plan(Anchor(48_000_000, 2_000_000, first_band=2))
    with pytest.raises(BadCursor, match="outside"):
        decode_cursor(encode_cursor(Cursor(coarse, Position(1, T0, KEY)), FEED), FEED)


def anchored_bytes() -> bytearray:
    cursor = Cursor(plan(Anchor(48_000_000, 2_000_000)), Position(0, T0, KEY))
    return bytearray(unb64(encode_cursor(cursor, FEED)))


ANCHOR_AT = 1 + 4 + 8 + 8 + 1  # version, feed tag, t0, window, anchored flag


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (0, struct.pack(">B", 2)),  # an unknown version
        (1 + 4 + 8 + 8, struct.pack(">B", 7)),  # the anchored flag is not 0/1
        (1 + 4, struct.pack(">q", 0)),  # t0 of zero
        (1 + 4 + 8, struct.pack(">q", -5)),  # negative window
        (ANCHOR_AT, struct.pack(">i", 91_000_000)),  # latitude beyond the pole
        (ANCHOR_AT + 4, struct.pack(">i", -181_000_000)),  # longitude out of range
        (ANCHOR_AT + 8, struct.pack(">B", 9)),  # first band beyond the world band
        (ANCHOR_AT + 9, struct.pack(">q", -1)),  # a negative penalty
        (ANCHOR_AT + 9 + 8, struct.pack(">q", 0)),  # penalties decreasing (band 2 < band 1)
        (ANCHOR_AT + 9 + 24, struct.pack(">B", 4)),  # band 4 does not exist
    ],
)
def test_tampered_fields_are_rejected(offset: int, value: bytes) -> None:
    raw = anchored_bytes()
    raw[offset : offset + len(value)] = value
    with pytest.raises(BadCursor):
        decode_cursor(b64(bytes(raw)), FEED)


@pytest.mark.parametrize(
    "tail",
    [
        b"",
        b"at://did:plc:abcdefg",
        b"https://example.com/x/y",
        b"at://alice.test/app.x/y",
        b"\xff\xfe",
    ],
)
def test_malformed_positions_are_rejected(tail: bytes) -> None:
    raw = anchored_bytes()
    key_at = ANCHOR_AT + 9 + 24 + 1 + 8
    head = bytes(raw[:key_at]) + struct.pack(">H", len(tail))
    with pytest.raises(BadCursor):
        decode_cursor(b64(head + tail), FEED)


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(BadCursor, match="trailing"):
        decode_cursor(b64(bytes(anchored_bytes()) + b"x"), FEED)


def test_overlong_and_non_ascii_cursors_are_rejected() -> None:
    with pytest.raises(BadCursor):
        decode_cursor("A" * 5000, FEED)
    with pytest.raises(BadCursor):
        decode_cursor("é" * 10, FEED)
