"""Reading XRPC inputs at the edge: JSON bodies and query parameters, checked field by field.

Every problem is a 400 `InvalidRequest` whose message names the field the way the reference's
lexicon validator does (`Input must have the property "handle"`, `Input/handle must be a
string`, `Params/limit must be an integer`), so a malformed body never reaches a handler and
never becomes a 500.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from atcore.xrpc import InvalidRequest, PayloadTooLarge

DEFAULT_JSON_LIMIT: Final = 150 * 1024


async def json_body(request: web.Request, *, max_bytes: int = DEFAULT_JSON_LIMIT) -> Body:
    """The request's JSON object body (content type `application/json`, at most `max_bytes`)."""
    if request.content_type != "application/json":
        if not request.body_exists:
            raise InvalidRequest("Request encoding (Content-Type) required but not provided")
        raise InvalidRequest(f"Wrong request encoding (Content-Type): {request.content_type}")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge("request entity too large")
    raw = await _read_limited(request, max_bytes)
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("Input must be an object")
    return Body(value, "Input")


async def optional_json_body(request: web.Request, *, max_bytes: int = DEFAULT_JSON_LIMIT) -> Body:
    """Like `json_body`, but no body at all reads as `{}` (procedures with optional input)."""
    if not request.body_exists:
        return Body({}, "Input")
    return await json_body(request, max_bytes=max_bytes)


async def _read_limited(request: web.Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge("request entity too large")
        chunks.append(chunk)
    return b"".join(chunks)


class Body:
    """Typed accessors over a decoded JSON object; `where` prefixes error messages."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def _missing(self, name: str) -> InvalidRequest:
        return InvalidRequest(f'{self.where} must have the property "{name}"')

    def _wrong(self, name: str, kind: str) -> InvalidRequest:
        return InvalidRequest(f"{self.where}/{name} must be {kind}")

    def string(self, name: str, *, max_length: int | None = None) -> str:
        value = self.optional_string(name, max_length=max_length)
        if value is None:
            raise self._missing(name)
        return value

    def optional_string(self, name: str, *, max_length: int | None = None) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._wrong(name, "a string")
        if max_length is not None and len(value) > max_length:
            raise InvalidRequest(
                f"{self.where}/{name} must not be longer than {max_length} characters"
            )
        return value

    def optional_boolean(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self._wrong(name, "a boolean")
        return value

    def integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.optional_integer(name, minimum=minimum, maximum=maximum)
        if value is None:
            raise self._missing(name)
        return value

    def optional_integer(
        self, name: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._wrong(name, "an integer")
        _check_range(f"{self.where}/{name}", value, minimum, maximum)
        return value

    def optional_object(self, name: str) -> Body | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._wrong(name, "an object")
        return Body(value, f"{self.where}/{name}")


def _check_range(path: str, value: int, minimum: int | None, maximum: int | None) -> None:
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"{path} can not be less than {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidRequest(f"{path} can not be greater than {maximum}")


# -- query parameters -------------------------------------------------------------------------
def query_str(request: web.Request, name: str) -> str:
    value = optional_query_str(request, name)
    if value is None:
        raise InvalidRequest(f'Params must have the property "{name}"')
    return value


def optional_query_str(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest(f"Params/{name} must be a single value")
    return values[0]


def optional_query_int(
    request: web.Request, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    raw = optional_query_str(request, name)
    if raw is None:
        return None
    try:
        value = int(raw, 10)
    except ValueError:
        raise InvalidRequest(f"Params/{name} must be an integer") from None
    _check_range(f"Params/{name}", value, minimum, maximum)
    return value


def optional_query_bool(request: web.Request, name: str) -> bool | None:
    raw = optional_query_str(request, name)
    if raw is None:
        return None
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise InvalidRequest(f"Params/{name} must be a boolean")
