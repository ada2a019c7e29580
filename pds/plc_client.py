"""A client for a did:plc directory's HTTP API (`PDS_DID_PLC_URL`): submit and read operations.

Only what the PDS needs: submit a signed operation (`POST /<did>`), fetch the last operation
(`GET /<did>/log/last`, the `prev` of the next update) and the current state
(`GET /<did>/data`). The operation rules themselves live in `atcore.identity.plc`.

Errors (root `PlcClientError`, a `ValueError`):

    PlcClientError
    ├── PlcRejected      the directory answered 4xx: the operation or DID is not acceptable
    └── PlcUnavailable   network failure, timeout or 5xx: try again later
"""

from __future__ import annotations

import json
from typing import Any, Final

import aiohttp

from atcore.identity import IdentityError
from atcore.identity.plc import PlcDocumentData, PlcOp, PlcService, op_to_json
from atcore.identity.plc_parse import parse_operation
from atcore.syntax import Did

DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=10)
_MAX_ERROR_TEXT: Final = 300


class PlcClientError(ValueError):
    """The PLC directory did not do what was asked."""


class PlcRejected(PlcClientError):
    """The directory refused the request (HTTP 4xx); `status` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class PlcUnavailable(PlcClientError):
    """The directory could not be reached or failed (network error, timeout, HTTP 5xx)."""


class PlcClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")

    async def send_operation(self, did: str, op: PlcOp) -> None:
        await self._request("POST", f"/{did}", body=op_to_json(op))

    async def last_operation(self, did: str) -> PlcOp:
        raw = await self._request("GET", f"/{did}/log/last")
        try:
            return parse_operation(raw)
        except IdentityError as exc:
            raise PlcClientError(f"directory returned a malformed operation: {exc}") from exc

    async def document_data(self, did: str) -> PlcDocumentData:
        raw = await self._request("GET", f"/{did}/data")
        try:
            return _parse_data(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise PlcClientError(f"directory returned malformed DID data: {exc}") from exc

    async def _request(self, method: str, path: str, *, body: Any = None) -> Any:
        url = self.base_url + path
        try:
            async with self._session.request(
                method, url, json=body, timeout=DEFAULT_TIMEOUT
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PlcUnavailable(f"PLC directory at {self.base_url} unreachable: {exc}") from exc
        if status >= 500:
            raise PlcUnavailable(f"PLC directory answered HTTP {status}: {_short(text)}")
        if status >= 400:
            raise PlcRejected(f"PLC directory refused: {_error_message(text)}", status)
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise PlcClientError(f"PLC directory answered non-JSON: {_short(text)}") from exc


def _short(text: str) -> str:
    return text[:_MAX_ERROR_TEXT]


def _error_message(text: str) -> str:
    try:
        decoded = json.loads(text)
    except ValueError:
        return _short(text)
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return _short(decoded["message"])
    return _short(text)


def _parse_data(raw: Any) -> PlcDocumentData:
    if not isinstance(raw, dict):
        raise TypeError("DID data must be a JSON object")
    services = {
        name: PlcService(type=str(entry["type"]), endpoint=str(entry["endpoint"]))
        for name, entry in dict(raw["services"]).items()
    }
    return PlcDocumentData(
        did=Did(raw["did"]),
        rotation_keys=tuple(str(key) for key in raw["rotationKeys"]),
        verification_methods={str(k): str(v) for k, v in dict(raw["verificationMethods"]).items()},
        also_known_as=tuple(str(alias) for alias in raw["alsoKnownAs"]),
        services=services,
    )
