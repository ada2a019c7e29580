"""JSON over HTTP for the stack helpers: XRPC queries and procedures, PLC reads and writes.

Standard library only, so the helpers need nothing beyond the project's own dependencies.

Errors::

    StackError             something the stack helpers cannot do (the root, a ValueError)
    └── HttpFailure        a non-2xx answer or an unreachable service; `status` (0 when none),
                           `error` (the XRPC error name, if any)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

DEFAULT_TIMEOUT_S: Final = 30.0
_MAX_ERROR_TEXT: Final = 300


class StackError(ValueError):
    """A stack helper could not do what was asked; the message says what and why."""


class HttpFailure(StackError):
    """A service answered with an error status, or could not be reached (`status` 0)."""

    def __init__(self, message: str, *, status: int = 0, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def xrpc_url(base: str, nsid: str, params: Mapping[str, str | int] | None = None) -> str:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    return f"{base.rstrip('/')}/xrpc/{nsid}{query}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get_json(
    url: str, *, headers: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> Any:
    return _send(urllib.request.Request(url, headers=dict(headers or {})), timeout)


def post_json(
    url: str,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    return _send(request, timeout)


def _send(request: urllib.request.Request, timeout: float) -> Any:
    where = f"{request.get_method()} {request.full_url}"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        error, message = _error_fields(text)
        raise HttpFailure(
            f"{where} answered {exc.code}: {error or ''} {message}".strip(),
            status=exc.code,
            error=error,
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise HttpFailure(f"{where} failed: {exc}") from None
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise HttpFailure(f"{where} did not answer JSON") from None


def _error_fields(text: str) -> tuple[str | None, str]:
    """The XRPC `{"error", "message"}` pair of an error body, or its text when not JSON."""
    try:
        body = json.loads(text)
    except ValueError:
        return None, text[:_MAX_ERROR_TEXT]
    if not isinstance(body, dict):
        return None, text[:_MAX_ERROR_TEXT]
    error = body.get("error")
    message = body.get("message")
    return (
        error if isinstance(error, str) else None,
        message if isinstance(message, str) else text[:_MAX_ERROR_TEXT],
    )
