"""The opaque, versioned pagination cursor.

A cursor freezes the `RankingPlan` of page 1 (its time, freshness window, anchor and band
penalties) and carries the sort tuple of the last item served. It is a base64url (no padding)
string of a fixed binary layout, version 1:

    u8   version (1)
    u32  CRC-32 of the feed URI          a cursor only works for the feed that issued it
    i64  t0_ms, i64 window_ms
    u8   1 when anchored, else 0
    [anchored] i32 lat_e6, i32 lon_e6, u8 first band, 3 x i64 penalties of bands 1..3
    u8   last band, i64 last sort_at, u16 n
    n    last check-in as `at://<did>/<collection>/<rkey>` (UTF-8), ending the cursor exactly

Decoding checks every field (ranges, the plan's own invariants, the position inside the window,
the key's syntax), so a client can only ever hand back a cursor that means something; anything
else is `BadCursor`. A cursor is not secret and not signed: the most a forged one can do is
choose the anchor and time a read starts from, which the caller could ask for anyway.

Errors: `BadCursor(ValueError)`.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from atcore.syntax import InvalidSyntax, parse_at_uri, parse_did
from feedgen.algos.bands import BAND_COUNT, Anchor
from feedgen.algos.order import CheckinKey, Position, RankingPlan

VERSION: Final = 1
MAX_CURSOR_CHARS: Final = 1024
# Sanity limits keep every later sum well inside a signed 64-bit integer.
MAX_TIME_MS: Final = 1 << 48  # year ~10889
MAX_PENALTY_MS: Final = 1 << 44  # ~557 years

_HEADER: Final = struct.Struct(">BIqqB")
_ANCHOR: Final = struct.Struct(">iiB" + "q" * (BAND_COUNT - 1))
_POSITION: Final = struct.Struct(">BqH")


class BadCursor(ValueError):
    """A cursor that this feed did not issue (garbage, truncated, another feed's, tampered)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    plan: RankingPlan
    last: Position


def feed_tag(feed_uri: str) -> int:
    return zlib.crc32(feed_uri.encode("utf-8"))


def encode_cursor(cursor: Cursor, feed_uri: str) -> str:
    plan, last = cursor.plan, cursor.last
    parts = [
        _HEADER.pack(
            VERSION, feed_tag(feed_uri), plan.t0_ms, plan.window_ms, plan.anchor is not None
        )
    ]
    if plan.anchor is not None:
        anchor = plan.anchor
        parts.append(
            _ANCHOR.pack(anchor.lat_e6, anchor.lon_e6, anchor.first_band, *plan.penalties[1:])
        )
    key = last.key
    key_bytes = f"at://{key.author_did}/{key.collection}/{key.rkey}".encode()
    parts.append(_POSITION.pack(last.band, last.sort_at, len(key_bytes)))
    parts.append(key_bytes)
    return base64.urlsafe_b64encode(b"".join(parts)).rstrip(b"=").decode("ascii")


def decode_cursor(text: str, feed_uri: str) -> Cursor:
    """Parse and check a cursor issued for `feed_uri`; raises `BadCursor`."""
    raw = _unbase64(text)
    try:
        version, tag, t0_ms, window_ms, anchored = _HEADER.unpack_from(raw, 0)
    except struct.error as exc:
        raise BadCursor("cursor is truncated") from exc
    if version != VERSION:
        raise BadCursor(f"unsupported cursor version {version}")
    if tag != feed_tag(feed_uri):
        raise BadCursor("cursor belongs to another feed")
    if anchored not in (0, 1):
        raise BadCursor("malformed cursor")
    offset = _HEADER.size
    anchor, penalties, offset = _read_anchor(raw, offset) if anchored else (None, (0,), offset)
    plan = _plan(t0_ms, window_ms, anchor, penalties)
    try:
        band, sort_at, key_length = _POSITION.unpack_from(raw, offset)
    except struct.error as exc:
        raise BadCursor("cursor is truncated") from exc
    offset += _POSITION.size
    if len(raw) != offset + key_length:
        raise BadCursor("cursor is truncated or has trailing bytes")
    key = _key(raw[offset:])
    if not plan.first_band <= band < plan.band_count or not plan.in_window(sort_at):
        raise BadCursor("cursor position is outside its own feed")
    return Cursor(plan=plan, last=Position(band=band, sort_at=sort_at, key=key))


def _unbase64(text: str) -> bytes:
    if not text or len(text) > MAX_CURSOR_CHARS or not text.isascii():
        raise BadCursor("malformed cursor")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("malformed cursor") from exc


def _read_anchor(raw: bytes, offset: int) -> tuple[Anchor, tuple[int, ...], int]:
    try:
        lat_e6, lon_e6, first_band, *rest = _ANCHOR.unpack_from(raw, offset)
        anchor = Anchor(lat_e6, lon_e6, first_band)
    except (struct.error, ValueError) as exc:
        raise BadCursor("malformed cursor anchor") from exc
    if any(not 0 <= p <= MAX_PENALTY_MS for p in rest):
        raise BadCursor("malformed cursor penalties")
    return anchor, (0, *rest), offset + _ANCHOR.size


def _plan(
    t0_ms: int, window_ms: int, anchor: Anchor | None, penalties: tuple[int, ...]
) -> RankingPlan:
    if not 0 < t0_ms <= MAX_TIME_MS or not 0 < window_ms <= MAX_TIME_MS:
        raise BadCursor("malformed cursor times")
    try:
        return RankingPlan(t0_ms=t0_ms, window_ms=window_ms, anchor=anchor, penalties=penalties)
    except ValueError as exc:
        raise BadCursor(f"malformed cursor plan: {exc}") from exc


def _key(raw: bytes) -> CheckinKey:
    try:
        uri = parse_at_uri(raw.decode("utf-8"))
        did, collection, rkey = parse_did(uri.authority), uri.collection, uri.rkey
    except (UnicodeDecodeError, InvalidSyntax) as exc:
        raise BadCursor("malformed cursor position") from exc
    if collection is None or rkey is None:
        raise BadCursor("malformed cursor position")
    return CheckinKey(author_did=did, collection=collection, rkey=rkey)
