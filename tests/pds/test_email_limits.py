"""Rate limits on mailing endpoints, on a stack with limits on: password reset mail per account
(however many IPs ask), and the reference's per-account limits on email confirmation and change
requests; taking codes with a session is limited per account too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from atcore import nsids
from tests.pds.stack import Stack, create_account, start_stack
from tests.pds.xrpc_client import Xrpc


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    path: Path = tmp_path_factory.mktemp("email-limits")
    with start_stack(path, PDS_RATE_LIMITS_ENABLED="true") as stack:
        yield stack


@pytest.fixture
async def client(limited_stack: Stack) -> AsyncIterator[Xrpc]:
    async with aiohttp.ClientSession() as http:
        yield Xrpc(http, limited_stack)


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


async def test_password_reset_mail_is_limited_per_account(
    client: Xrpc, limited_stack: Stack
) -> None:
    target, bystander = create_account(limited_stack, "flooded"), create_account(limited_stack)
    reset = nsids.SERVER_REQUEST_PASSWORD_RESET
    for n in range(5):
        reply = await client.procedure(
            reset, {"email": target.email}, headers=from_ip(f"9.9.0.{n}")
        )
        assert reply.status == 200, reply.body
        assert reply.headers["RateLimit-Policy"] == "5;w=3600"  # the tightest budget
        assert reply.headers["RateLimit-Remaining"] == str(4 - n)
    flooded = await client.procedure(
        reset, {"email": target.email.upper()}, headers=from_ip("9.9.0.99")
    )
    assert (flooded.status, flooded.error) == (429, "RateLimitExceeded")
    other = await client.procedure(reset, {"email": bystander.email}, headers=from_ip("9.9.0.1"))
    assert other.status == 200, other.body


@pytest.mark.parametrize(
    "nsid", [nsids.SERVER_REQUEST_EMAIL_CONFIRMATION, nsids.SERVER_REQUEST_EMAIL_UPDATE]
)
async def test_code_requests_are_limited_per_account(
    client: Xrpc, limited_stack: Stack, nsid: str
) -> None:
    account, other = create_account(limited_stack), create_account(limited_stack)
    for n in range(5):
        reply = await client.procedure(nsid, headers={**account.bearer, **from_ip(f"9.9.1.{n}")})
        assert reply.status == 200, reply.body
        assert reply.headers["RateLimit-Policy"] == "5;w=3600"
    limited = await client.procedure(nsid, headers={**account.bearer, **from_ip("9.9.1.99")})
    assert (limited.status, limited.error) == (429, "RateLimitExceeded")
    assert (await client.procedure(nsid, headers=other.bearer)).status == 200


async def test_taking_codes_is_limited_per_account(client: Xrpc, limited_stack: Stack) -> None:
    account = create_account(limited_stack)
    body = {"email": account.email, "token": "AAAAA-AAAAA"}
    for _ in range(30):
        reply = await client.procedure(nsids.SERVER_CONFIRM_EMAIL, body, headers=account.bearer)
        assert (reply.status, reply.error) == (400, "InvalidToken")
        assert reply.headers["RateLimit-Policy"] == "30;w=300"
    limited = await client.procedure(nsids.SERVER_CONFIRM_EMAIL, body, headers=account.bearer)
    assert (limited.status, limited.error) == (429, "RateLimitExceeded")
