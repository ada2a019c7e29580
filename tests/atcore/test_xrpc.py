from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from atcore import xrpc

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


async def _named_error(request: web.Request) -> web.Response:
    raise xrpc.InvalidRequest("Could not locate record", error="RecordNotFound")


async def _crash(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals")


async def _ok(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"received": len(body)})


async def _limited(request: web.Request) -> web.Response:
    raise xrpc.RateLimitExceeded("slow down", headers={"RateLimit-Remaining": "0"})


def _app() -> web.Application:
    app = web.Application(middlewares=[xrpc.xrpc_error_middleware], client_max_size=1024)
    app.router.add_get("/xrpc/test.named", _named_error)
    app.router.add_get("/xrpc/test.crash", _crash)
    app.router.add_get("/xrpc/test.limited", _limited)
    app.router.add_post("/xrpc/test.proc", _ok)
    app.router.add_get("/plain", _crash)
    return app


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/xrpc/test.named", 400, "RecordNotFound"),
        ("GET", "/xrpc/test.crash", 500, "InternalServerError"),
        ("GET", "/xrpc/test.limited", 429, "RateLimitExceeded"),
        ("GET", "/xrpc/no.such.method", 501, "MethodNotImplemented"),
        ("GET", "/xrpc/test.proc", 405, "InvalidRequest"),
    ],
)
async def test_errors_render_as_xrpc_json(
    aiohttp_client: ClientFactory, method: str, path: str, status: int, error: str
) -> None:
    client = await aiohttp_client(_app())
    resp = await client.request(method, path)
    assert resp.status == status
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == error
    assert "secret internals" not in body["message"]


async def test_rate_limit_headers_are_kept(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(_app())
    resp = await client.get("/xrpc/test.limited")
    assert resp.headers["RateLimit-Remaining"] == "0"


async def test_oversized_body_is_payload_too_large(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(_app())
    resp = await client.post("/xrpc/test.proc", data=b"x" * 4096)
    assert resp.status == 413
    assert (await resp.json())["error"] == "PayloadTooLarge"


async def test_non_xrpc_paths_are_left_alone(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(_app())
    resp = await client.get("/plain")
    assert resp.status == 500
    assert resp.content_type != "application/json"


def test_error_for_status_maps_known_and_unknown_statuses() -> None:
    assert isinstance(xrpc.error_for_status(401, "x"), xrpc.AuthenticationRequired)
    assert isinstance(xrpc.error_for_status(418, "x"), xrpc.InvalidRequest)
    assert isinstance(xrpc.error_for_status(599, "x"), xrpc.InternalServerError)
    assert xrpc.error_for_status(400, "x", "ExpiredToken").error == "ExpiredToken"
