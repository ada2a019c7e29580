from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore import dagcbor, frames
from atcore.cid import CID

_BODY_VALUES = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(), st.binary(), st.booleans())
_BODIES = st.dictionaries(st.text(max_size=10), _BODY_VALUES, max_size=8)


@given(type_=st.from_regex(r"#[a-z][a-zA-Z]{0,15}", fullmatch=True), body=_BODIES)
def test_message_frame_round_trip(type_: str, body: dict[str, object]) -> None:
    decoded = frames.decode(frames.encode_message(type_, body))
    assert decoded == frames.MessageFrame(type=type_, body=body)


@given(error=st.text(min_size=1, max_size=30), message=st.none() | st.text(max_size=50))
def test_error_frame_round_trip(error: str, message: str | None) -> None:
    decoded = frames.decode(frames.encode_error(error, message))
    assert decoded == frames.ErrorFrame(error=error, message=message)


def test_wire_format_is_header_then_body() -> None:
    cid = CID.for_dag_cbor(b"x")
    frame = frames.encode_message("#commit", {"seq": 5, "commit": cid})
    header, offset = frames.peek_header(frame)
    assert header == frames.FrameHeader(op=1, type="#commit")
    assert frame[:offset] == dagcbor.encode({"t": "#commit", "op": 1})
    assert dagcbor.decode(frame[offset:]) == {"seq": 5, "commit": cid}
    err = frames.encode_error("FutureCursor", "Cursor in the future.")
    assert err.startswith(dagcbor.encode({"op": -1}))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff",
        dagcbor.encode({"op": 1, "t": "#commit"}),  # no body
        dagcbor.encode({"op": 2, "t": "#x"}) + dagcbor.encode({}),  # unknown op
        dagcbor.encode({"op": 1}) + dagcbor.encode({}),  # message without type
        dagcbor.encode([1, 2]) + dagcbor.encode({}),  # header not a map
        dagcbor.encode({"op": 1, "t": "#commit"}) + dagcbor.encode([1]),  # body not a map
        dagcbor.encode({"op": -1}) + dagcbor.encode({"message": "no error name"}),
        dagcbor.encode({"op": 1, "t": "#a"}) + dagcbor.encode({}) + b"\x00",  # trailing bytes
        b"\xa2bop\xfb?\xf0\x00\x00\x00\x00\x00\x00at\xa1#" + dagcbor.encode({}),  # float op
    ],
)
def test_malformed_frames_raise_frame_error(raw: bytes) -> None:
    with pytest.raises(frames.FrameError):
        frames.decode(raw)


@given(st.binary(max_size=64))
def test_random_bytes_only_ever_raise_frame_error(raw: bytes) -> None:
    with contextlib.suppress(frames.FrameError):
        frames.decode(raw)
