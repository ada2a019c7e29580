"""The reference's per-IP rate limits on requestPasswordReset (15 an hour, 50 a day) and
resetPassword (50 every 5 minutes), on a stack with limits on.

The stack runs on loopback, a trusted proxy address, so `X-Forwarded-For` names the caller:
each test speaks as its own client IPs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from atcore import nsids
from tests.pds.stack import Stack, start_stack
from tests.pds.xrpc_client import Reply, Xrpc


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    path: Path = tmp_path_factory.mktemp("limited")
    with start_stack(path, PDS_RATE_LIMITS_ENABLED="true") as stack:
        yield stack


@pytest.fixture
async def client(limited_stack: Stack) -> AsyncIterator[Xrpc]:
    async with aiohttp.ClientSession() as http:
        yield Xrpc(http, limited_stack)


async def _call(client: Xrpc, nsid: str, body: object, ip: str) -> Reply:
    return await client.procedure(nsid, body, headers={"X-Forwarded-For": ip})


async def test_request_password_reset_is_limited_per_ip(client: Xrpc) -> None:
    body = {"email": "nobody@example.com"}
    for remaining in range(14, -1, -1):
        reply = await _call(client, nsids.SERVER_REQUEST_PASSWORD_RESET, body, "8.8.4.10")
        assert (reply.status, reply.error) == (400, "InvalidRequest")  # refusals count too
        assert reply.headers["RateLimit-Remaining"] == str(remaining)
        assert reply.headers["RateLimit-Policy"] == "15;w=3600"
    limited = await _call(client, nsids.SERVER_REQUEST_PASSWORD_RESET, body, "8.8.4.10")
    assert (limited.status, limited.error) == (429, "RateLimitExceeded")
    assert int(limited.headers["Retry-After"]) > 0
    other_ip = await _call(client, nsids.SERVER_REQUEST_PASSWORD_RESET, body, "8.8.4.11")
    assert other_ip.status == 400


async def test_reset_password_is_limited_per_ip(client: Xrpc) -> None:
    body = {"token": "AAAAA-AAAAA", "password": "guessing-codes"}
    for _ in range(50):
        reply = await _call(client, nsids.SERVER_RESET_PASSWORD, body, "8.8.4.20")
        assert (reply.status, reply.error) == (400, "InvalidToken")
        assert reply.headers["RateLimit-Policy"] == "50;w=300"
    limited = await _call(client, nsids.SERVER_RESET_PASSWORD, body, "8.8.4.20")
    assert (limited.status, limited.error) == (429, "RateLimitExceeded")
    other_ip = await _call(client, nsids.SERVER_RESET_PASSWORD, body, "8.8.4.21")
    assert (other_ip.status, other_ip.error) == (400, "InvalidToken")
