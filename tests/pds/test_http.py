"""Plain HTTP behaviour of the PDS: well-known routes, health, CORS, rate limits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from atcore import nsids
from atcore.identity import DidDocument
from atcore.xrpc import RateLimitExceeded
from pds import ratelimit as rl
from tests.pds.stack import LiveAccount, Stack, create_account, start_stack
from tests.pds.xrpc_client import Xrpc

NewAccount = Callable[..., LiveAccount]


# -- well-known and plain routes --------------------------------------------------------------
async def test_service_did_document(xrpc: Xrpc, pds_stack: Stack) -> None:
    reply = await xrpc.request("GET", "/.well-known/did.json")
    document = DidDocument.from_json(reply.ok())
    assert document.id == pds_stack.settings.service_did
    assert document.pds_endpoint == pds_stack.pds_url


async def test_atproto_did_by_host_name(xrpc: Xrpc, new_account: NewAccount) -> None:
    account = new_account()
    found = await xrpc.request("GET", "/.well-known/atproto-did", headers={"Host": account.handle})
    assert (found.status, found.body) == (200, account.did)
    assert found.headers["Content-Type"].startswith("text/plain")
    for host in ("nobody-here.test", "example.com", "localhost"):
        missing = await xrpc.request("GET", "/.well-known/atproto-did", headers={"Host": host})
        assert missing.status == 404, host


async def test_health_and_robots(xrpc: Xrpc) -> None:
    health = await xrpc.request("GET", "/xrpc/_health")
    assert health.ok() == {"version": "0.1.0"}
    robots = await xrpc.request("GET", "/robots.txt")
    assert robots.status == 200
    assert "User-agent: *" in robots.body


# -- CORS -------------------------------------------------------------------------------------
async def test_preflight_is_answered_for_xrpc_routes(xrpc: Xrpc) -> None:
    headers = {
        "Origin": "https://bsky.app",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,atproto-proxy",
    }
    for path in (
        nsids.xrpc_path(nsids.SERVER_CREATE_SESSION),
        nsids.xrpc_path(nsids.SERVER_GET_SESSION),
        nsids.xrpc_path("com.example.notServed"),
    ):
        reply = await xrpc.request("OPTIONS", path, headers=headers)
        assert reply.status == 204, path
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in reply.headers["Access-Control-Allow-Methods"]
        allowed = reply.headers["Access-Control-Allow-Headers"].lower()
        assert {"authorization", "content-type", "atproto-proxy"} <= set(allowed.split(","))
        assert reply.headers["Access-Control-Max-Age"] == "86400"


async def test_preflight_without_requested_headers_lists_ours(xrpc: Xrpc) -> None:
    headers = {"Origin": "https://bsky.app", "Access-Control-Request-Method": "GET"}
    path = nsids.xrpc_path(nsids.SERVER_DESCRIBE_SERVER)
    reply = await xrpc.request("OPTIONS", path, headers=headers)
    allowed = {h.strip() for h in reply.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "atproto-proxy", "atproto-accept-labelers"} <= allowed


async def test_every_response_allows_any_origin(xrpc: Xrpc) -> None:
    origin = {"Origin": "https://bsky.app"}
    ok = await xrpc.query(nsids.SERVER_DESCRIBE_SERVER, headers=origin)
    failed = await xrpc.query(nsids.SERVER_GET_SESSION, headers=origin)
    for reply in (ok, failed):
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
        assert "RateLimit-Remaining" in reply.headers["Access-Control-Expose-Headers"]
    assert failed.status == 401


async def test_no_rate_limit_headers_when_limits_are_off(xrpc: Xrpc) -> None:
    reply = await xrpc.query(nsids.SERVER_DESCRIBE_SERVER)
    assert "RateLimit-Limit" not in reply.headers


# -- rate limits ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("limited"), PDS_RATE_LIMITS_ENABLED="true") as stack:
        yield stack


async def test_create_session_rate_limit(limited_stack: Stack) -> None:
    account = create_account(limited_stack)
    async with aiohttp.ClientSession() as http:
        xrpc = Xrpc(http, limited_stack)
        first = await xrpc.login(account.handle, account.password)
        assert first.status == 200
        assert first.headers["RateLimit-Limit"] == "30"
        assert first.headers["RateLimit-Remaining"] == "29"
        assert first.headers["RateLimit-Policy"] == "30;w=300"
        assert int(first.headers["RateLimit-Reset"]) > 0
        # 29 more fit in the window (wrong passwords spend points too); the 31st is refused.
        replies = await asyncio.gather(*(xrpc.login(account.handle, "wrong") for _ in range(29)))
        assert {reply.status for reply in replies} == {401}
        assert sorted(int(r.headers["RateLimit-Remaining"]) for r in replies) == list(range(29))
        refused = await xrpc.login(account.handle, account.password)
        assert (refused.status, refused.error) == (429, "RateLimitExceeded")
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert 0 < int(refused.headers["Retry-After"]) <= 300
        # Another identifier has its own budget.
        other = create_account(limited_stack)
        assert (await xrpc.login(other.handle, other.password)).status == 200


async def test_global_limit_applies_to_every_xrpc_call(limited_stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        reply = await Xrpc(http, limited_stack).query(nsids.SERVER_DESCRIBE_SERVER)
    assert reply.headers["RateLimit-Limit"] == "3000"
    assert reply.headers["RateLimit-Policy"] == "3000;w=300"


def test_rate_limiter_windows() -> None:
    now = [1000.0]
    limiter = rl.RateLimiter(enabled=True, clock=lambda: now[0])
    limit = rl.RateLimit("test", 60, 3)
    assert [limiter.spend(limit, "k").remaining for _ in range(3)] == [2, 1, 0]
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.spend(limit, "k")
    assert caught.value.headers["Retry-After"] == "60"
    assert limiter.spend(limit, "other").remaining == 2
    now[0] += 60
    status = limiter.spend(limit, "k")
    assert (status.remaining, status.reset_at) == (2, 1120.0)
    assert limiter.spend(limit, "k", points=2).remaining == 0


def test_rate_limit_headers() -> None:
    status = rl.RateLimitStatus(limit=30, duration_seconds=300, remaining=7, reset_at=1234.9)
    assert status.headers() == {
        "RateLimit-Limit": "30",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "1234",
        "RateLimit-Policy": "30;w=300",
    }


# -- the entry point --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_python_m_pds_serves_until_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "PDS_DEV_MODE": "true",
        "PDS_PORT": str(port),
        "PDS_DATA_DIRECTORY": str(tmp_path / "pds"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pds"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/xrpc/_health", timeout=1
                ) as response:
                    assert json.loads(response.read()) == {"version": "0.1.0"}
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the PDS did not come up"
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert b"PDS shutting down" in output
    assert (tmp_path / "pds" / "secrets.json").exists()


def test_python_m_pds_refuses_bad_settings(tmp_path: Path) -> None:
    env = {**os.environ, "PDS_DEV_MODE": "false", "PDS_HOSTNAME": ""}
    result = subprocess.run(
        [sys.executable, "-m", "pds"], env=env, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 1
    assert b"PDS_HOSTNAME is required" in result.stderr
