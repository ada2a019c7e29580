"""XRPC errors and the one aiohttp middleware that renders them.

Every response under `/xrpc/` that is not a success is JSON `{"error": <Name>, "message": <text>}`
with the status the atproto HTTP API spec gives the error. Handlers raise an `XrpcError` subclass;
lexicon-specific names (`RecordNotFound`, `InvalidSwap`, `ExpiredToken`, `UnknownFeed`, ...) are
passed as `error=` to the class whose status fits.

Error tree (all subclasses of `XrpcError`):

    InvalidRequest          400  malformed or semantically invalid input (and most named errors)
    AuthenticationRequired  401  missing or unverifiable credentials
    Forbidden               403  authenticated but not allowed
    NotFound                404  (rare in XRPC: most "not found" errors are 400 with a name)
    MethodNotAllowed        405  GET on a procedure, POST on a query
    PayloadTooLarge         413  request body over a limit
    RateLimitExceeded       429  too many requests (carries RateLimit-* headers when known)
    InternalServerError     500  a bug or an unexpected failure (never leaks internals)
    MethodNotImplemented    501  unknown NSID
    UpstreamFailure         502  a service we depend on failed
    NotEnoughResources      503  temporarily overloaded
    UpstreamTimeout         504  a service we depend on timed out
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import ClassVar

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class XrpcError(Exception):
    """Base of all XRPC errors: an HTTP status, an error name and a human-readable message."""

    status: ClassVar[int] = 500
    default_error: ClassVar[str] = "InternalServerError"

    def __init__(
        self,
        message: str | None = None,
        *,
        error: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.error = error or self.default_error
        self.message = message or self.error
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}

    def to_response(self) -> web.Response:
        return json_error_response(self.status, self.error, self.message, self.headers)


class InvalidRequest(XrpcError):
    status = 400
    default_error = "InvalidRequest"


class AuthenticationRequired(XrpcError):
    status = 401
    default_error = "AuthenticationRequired"


class Forbidden(XrpcError):
    status = 403
    default_error = "Forbidden"


class NotFound(XrpcError):
    status = 404
    default_error = "NotFound"


class MethodNotAllowed(XrpcError):
    status = 405
    default_error = "InvalidRequest"


class PayloadTooLarge(XrpcError):
    status = 413
    default_error = "PayloadTooLarge"


class RateLimitExceeded(XrpcError):
    status = 429
    default_error = "RateLimitExceeded"


class InternalServerError(XrpcError):
    status = 500
    default_error = "InternalServerError"


class MethodNotImplemented(XrpcError):
    status = 501
    default_error = "MethodNotImplemented"


class UpstreamFailure(XrpcError):
    status = 502
    default_error = "UpstreamFailure"


class NotEnoughResources(XrpcError):
    status = 503
    default_error = "NotEnoughResources"


class UpstreamTimeout(XrpcError):
    status = 504
    default_error = "UpstreamTimeout"


_BY_STATUS: dict[int, type[XrpcError]] = {
    cls.status: cls
    for cls in (
        InvalidRequest,
        AuthenticationRequired,
        Forbidden,
        NotFound,
        PayloadTooLarge,
        RateLimitExceeded,
        InternalServerError,
        MethodNotImplemented,
        UpstreamFailure,
        NotEnoughResources,
        UpstreamTimeout,
    )
}


def error_for_status(status: int, message: str, error: str | None = None) -> XrpcError:
    """The XRPC error matching an HTTP status (used when relaying upstream failures)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status](message, error=error)
    if 400 <= status < 500:
        return InvalidRequest(message, error=error)
    return InternalServerError(message, error=error)


def json_error_response(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = json.dumps({"error": error, "message": message})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def _from_http_exception(exc: web.HTTPException) -> XrpcError:
    """Translate aiohttp's routing and protocol exceptions into their XRPC equivalents."""
    if isinstance(exc, web.HTTPNotFound):
        return MethodNotImplemented("Method Not Implemented")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"Method {exc.method} not allowed for this endpoint")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("request entity too large")
    return error_for_status(exc.status, exc.reason or exc.text or "request failed")


def is_xrpc_path(path: str) -> bool:
    return path.startswith("/xrpc/")


@web.middleware
async def xrpc_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure of an `/xrpc/` request as a JSON XRPC error; log unexpected ones."""
    try:
        return await handler(request)
    except XrpcError as exc:
        return exc.to_response()
    except web.HTTPException as exc:
        if not is_xrpc_path(request.path) or exc.status < 400:
            raise
        return _from_http_exception(exc).to_response()
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        if not is_xrpc_path(request.path):
            raise
        return InternalServerError("Internal Server Error").to_response()


def require_bearer_token(request: web.Request, token: str | None, what: str) -> None:
    """Refuse a request without `Authorization: Bearer <token>` when a token is configured.

    For operator endpoints (metrics) that share a public port: with no token configured they stay
    open, and the deployment keeps them off the public internet at its proxy. The comparison is
    constant-time, so response timing does not leak the token.
    """
    if token is None:
        return
    presented = request.headers.get("Authorization", "")
    scheme, _, value = presented.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token.encode()):
        raise AuthenticationRequired(f"{what} needs the operator's bearer token")
