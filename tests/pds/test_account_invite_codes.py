"""getAccountInviteCodes on a PDS that requires invites: the codes the admin made for an account,
with who used them, through the `atproto` SDK and raw XRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from atproto import Client, models

from atcore import nsids
from atcore.syntax import is_valid_datetime, parse_datetime
from tests.pds.stack import LiveAccount, Stack, create_account, start_stack
from tests.pds.xrpc_client import Xrpc


@pytest.fixture(scope="module")
def invite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    path: Path = tmp_path_factory.mktemp("account-invites")
    with start_stack(path, PDS_INVITE_REQUIRED="true") as stack:
        yield stack


@pytest.fixture
async def xrpc(invite_stack: Stack) -> AsyncIterator[Xrpc]:
    async with aiohttp.ClientSession() as http:
        yield Xrpc(http, invite_stack)


async def make_code(xrpc: Xrpc, stack: Stack, uses: int, for_account: str | None = None) -> str:
    body: dict[str, object] = {"useCount": uses}
    if for_account is not None:
        body["forAccount"] = for_account
    admin = {"Authorization": stack.admin_authorization}
    code: str = (await xrpc.procedure(nsids.SERVER_CREATE_INVITE_CODE, body, headers=admin)).ok()[
        "code"
    ]
    return code


async def signup(xrpc: Xrpc, stack: Stack, prefix: str) -> LiveAccount:
    return create_account(stack, prefix, inviteCode=await make_code(xrpc, stack, 1))


async def test_an_account_lists_its_codes_with_their_uses(xrpc: Xrpc, invite_stack: Stack) -> None:
    inviter = await signup(xrpc, invite_stack, "inviter")
    once = await make_code(xrpc, invite_stack, 1, inviter.did)
    twice = await make_code(xrpc, invite_stack, 2, inviter.did)
    invited = create_account(invite_stack, "invited", inviteCode=once)
    also = create_account(invite_stack, "also", inviteCode=twice)

    client = Client(base_url=invite_stack.pds_url)
    try:
        client.login(inviter.handle, inviter.password, fetch_bsky_profile=False)
        server = client.com.atproto.server
        listed = {code.code: code for code in server.get_account_invite_codes().codes}
        assert set(listed) == {once, twice}
        used_up = listed[once]
        assert (used_up.available, used_up.disabled) == (1, False)
        assert (used_up.for_account, used_up.created_by) == (inviter.did, "admin")
        assert [use.used_by for use in used_up.uses] == [invited.did]
        assert (
            parse_datetime(used_up.uses[0].used_at).epoch_ms
            >= parse_datetime(used_up.created_at).epoch_ms
        )
        assert [use.used_by for use in listed[twice].uses] == [also.did]

        unused_only = server.get_account_invite_codes(
            models.ComAtprotoServerGetAccountInviteCodes.Params(
                include_used=False, create_available=True
            )
        )
        # `twice` has a use left; `createAvailable` earns nothing here (no schedule configured).
        assert [code.code for code in unused_only.codes] == [twice]
    finally:
        client.request.close()

    # The invited account has none; the signup codes (made for "admin") are nobody's.
    own = (await xrpc.query(nsids.SERVER_GET_ACCOUNT_INVITE_CODES, headers=invited.bearer)).ok()
    assert own == {"codes": []}


async def test_the_raw_shape_and_parameters(xrpc: Xrpc, invite_stack: Stack) -> None:
    inviter = await signup(xrpc, invite_stack, "shape")
    code = await make_code(xrpc, invite_stack, 3, inviter.did)
    body = (
        await xrpc.query(
            nsids.SERVER_GET_ACCOUNT_INVITE_CODES,
            {"includeUsed": "true", "createAvailable": "false"},
            headers=inviter.bearer,
        )
    ).ok()
    assert len(body["codes"]) == 1
    listed = body["codes"][0]
    assert {k: v for k, v in listed.items() if k != "createdAt"} == {
        "code": code,
        "available": 3,
        "disabled": False,
        "forAccount": inviter.did,
        "createdBy": "admin",
        "uses": [],
    }
    assert is_valid_datetime(listed["createdAt"])
    bad = await xrpc.query(
        nsids.SERVER_GET_ACCOUNT_INVITE_CODES, {"includeUsed": "maybe"}, headers=inviter.bearer
    )
    assert (bad.status, bad.error) == (400, "InvalidRequest")
    anonymous = await xrpc.query(nsids.SERVER_GET_ACCOUNT_INVITE_CODES)
    assert anonymous.status == 401
