"""Event-stream frames (`com.atproto.sync.subscribeRepos` and any XRPC subscription).

A frame is one binary WebSocket message holding two concatenated DAG-CBOR objects: a header and a
body. Message frames have header `{"op": 1, "t": "#commit"}` (the `t` is the short `#name` of a def
in the subscription's lexicon); error frames have header `{"op": -1}` and body
`{"error", "message"?}` and are always the last frame before the server closes the connection.

Decoding is two-phase on purpose: a consumer reads the small header first (`peek_header`) and can
skip decoding bodies of types it does not care about.

Errors: `FrameError` (a `ValueError`) for anything that is not a well-formed frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from atcore import dagcbor

OP_MESSAGE: Final = 1
OP_ERROR: Final = -1


class FrameError(ValueError):
    """Bytes are not a well-formed event-stream frame."""


@dataclass(frozen=True, slots=True)
class FrameHeader:
    op: int
    type: str | None  # `t`: "#commit", "#identity", ...; None on error frames


@dataclass(frozen=True, slots=True)
class MessageFrame:
    type: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    error: str
    message: str | None


Frame = MessageFrame | ErrorFrame


def encode_message(type_: str, body: dict[str, Any]) -> bytes:
    """Encode a message frame; `type_` is the short form, e.g. `#commit`."""
    if not type_.startswith("#"):
        raise FrameError(f"frame type must be a '#name' reference, got {type_!r}")
    return dagcbor.encode({"op": OP_MESSAGE, "t": type_}) + dagcbor.encode(body)


def encode_error(error: str, message: str | None = None) -> bytes:
    body: dict[str, Any] = {"error": error}
    if message is not None:
        body["message"] = message
    return dagcbor.encode({"op": OP_ERROR}) + dagcbor.encode(body)


def peek_header(frame: bytes) -> tuple[FrameHeader, int]:
    """Decode only the header; returns it and the offset where the body starts."""
    try:
        header, length = dagcbor.decode_prefix(frame)
    except dagcbor.DagCborError as exc:
        raise FrameError(f"undecodable frame header: {exc}") from exc
    if not isinstance(header, dict):
        raise FrameError("frame header is not a map")
    op = header.get("op")
    type_ = header.get("t")
    if type(op) is not int:
        raise FrameError(f"frame op must be an integer, got {op!r}")
    if op == OP_MESSAGE:
        if not isinstance(type_, str) or not type_:
            raise FrameError("message frame header lacks a 't' type")
    elif op == OP_ERROR:
        type_ = None
    else:
        raise FrameError(f"unknown frame op {op!r}")
    if length >= len(frame):
        raise FrameError("frame has no body")
    return FrameHeader(op=op, type=type_), length


def decode_body(frame: bytes, offset: int) -> dict[str, Any]:
    """Decode the body that starts at `offset` (from `peek_header`); it must end the frame."""
    try:
        body = dagcbor.decode(frame[offset:])
    except dagcbor.DagCborError as exc:
        raise FrameError(f"undecodable frame body: {exc}") from exc
    if not isinstance(body, dict):
        raise FrameError("frame body is not a map")
    return body


def decode(frame: bytes) -> Frame:
    """Decode a whole frame into a `MessageFrame` or an `ErrorFrame`."""
    header, offset = peek_header(frame)
    body = decode_body(frame, offset)
    if header.type is None:
        error = body.get("error")
        message = body.get("message")
        if not isinstance(error, str) or not (message is None or isinstance(message, str)):
            raise FrameError("error frame body must have a string 'error' and optional 'message'")
        return ErrorFrame(error=error, message=message)
    return MessageFrame(type=header.type, body=body)
