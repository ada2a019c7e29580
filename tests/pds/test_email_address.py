"""The account's email over HTTP: confirmation and change through the `atproto` SDK (as a Bluesky
app does them), exact statuses and error names through raw XRPC, and the mailed codes of
deletion and PLC-operation signing working once. Codes are read from the `pds.mailer` log."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator

import pytest
from atproto import Client, models
from atproto_client.exceptions import BadRequestError

from atcore import nsids
from atcore.syntax import parse_did
from pds.db.email_tokens import Purpose
from pds.db.engine import Database
from pds.email_codes import TOKEN_TTL_MS, EmailCodes
from tests.pds.stack import LiveAccount, Stack, unique_name
from tests.pds.xrpc_client import Xrpc, bearer

NewAccount = Callable[..., LiveAccount]
_MAIL = re.compile(r"^(.+) code for (\S+): ([A-Z2-7]{5}-[A-Z2-7]{5})$")


@pytest.fixture(autouse=True)
def _capture_mail(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pds.mailer")


def mailed(caplog: pytest.LogCaptureFixture, kind: str, to: str) -> str:
    """The last code of this kind ("email confirmation", "email update", ...) mailed to `to`."""
    for record in reversed(caplog.records):
        found = _MAIL.match(record.getMessage()) if record.name == "pds.mailer" else None
        if found and found.group(1) == kind and found.group(2) == to:
            return found.group(3)
    raise AssertionError(f"no {kind} code was mailed to {to}")


def mail_count(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for record in caplog.records if record.name == "pds.mailer")


@pytest.fixture
def signed_in(pds_stack: Stack) -> Iterator[Callable[[LiveAccount], Client]]:
    clients: list[Client] = []

    def sign_in(account: LiveAccount) -> Client:
        client = Client(base_url=pds_stack.pds_url)
        clients.append(client)
        client.login(account.handle, account.password, fetch_bsky_profile=False)
        return client

    yield sign_in
    for client in clients:
        client.request.close()


def _error_of(caught: pytest.ExceptionInfo[BadRequestError]) -> str:
    assert caught.value.response is not None
    return str(caught.value.response.content.error)


def _confirm(client: Client, email: str, token: str) -> None:
    client.com.atproto.server.confirm_email(
        models.ComAtprotoServerConfirmEmail.Data(email=email, token=token)
    )


def _update(client: Client, email: str, token: str | None = None) -> None:
    client.com.atproto.server.update_email(
        models.ComAtprotoServerUpdateEmail.Data(email=email, token=token)
    )


# -- the SDK ----------------------------------------------------------------------------------
def test_confirm_then_change_the_email_with_the_sdk(
    signed_in: Callable[[LiveAccount], Client],
    new_account: NewAccount,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = new_account("mail")
    client = signed_in(account)
    session = client.com.atproto.server.get_session()
    assert (session.email, session.email_confirmed) == (account.email, False)

    client.com.atproto.server.request_email_confirmation()
    code = mailed(caplog, "email confirmation", account.email)
    _confirm(client, account.email.upper(), code.lower())  # both read leniently
    assert client.com.atproto.server.get_session().email_confirmed is True

    # A confirmed address changes only with a code mailed to it.
    with pytest.raises(BadRequestError) as required:
        _update(client, f"new-{account.email}")
    assert _error_of(required) == "TokenRequired"
    assert client.com.atproto.server.request_email_update().token_required is True
    update_code = mailed(caplog, "email update", account.email)
    _update(client, f"New-{account.email}", update_code)
    session = client.com.atproto.server.get_session()
    assert (session.email, session.email_confirmed) == (f"new-{account.email}", False)

    # The new address is unconfirmed: it changes again without a code, and nothing is mailed.
    before = mail_count(caplog)
    assert client.com.atproto.server.request_email_update().token_required is False
    assert mail_count(caplog) == before
    _update(client, f"third-{account.email}")
    assert client.com.atproto.server.get_session().email == f"third-{account.email}"
    # The first address is free again: another account may take it.
    other = signed_in(new_account("taker"))
    _update(other, account.email)
    assert other.com.atproto.server.get_session().email == account.email


def test_an_address_of_another_account_is_refused(
    signed_in: Callable[[LiveAccount], Client], new_account: NewAccount
) -> None:
    account, other = new_account("mine"), new_account("theirs")
    client = signed_in(account)
    with pytest.raises(BadRequestError) as taken:
        _update(client, other.email.upper())
    assert _error_of(taken) == "InvalidRequest"
    assert client.com.atproto.server.get_session().email == account.email


def test_codes_are_single_use_and_replaced_by_a_re_request(
    signed_in: Callable[[LiveAccount], Client],
    new_account: NewAccount,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = new_account("once")
    client = signed_in(account)
    server = client.com.atproto.server
    server.request_email_confirmation()
    first = mailed(caplog, "email confirmation", account.email)
    server.request_email_confirmation()
    second = mailed(caplog, "email confirmation", account.email)
    with pytest.raises(BadRequestError) as replaced:
        _confirm(client, account.email, first)
    assert _error_of(replaced) == "InvalidToken"
    _confirm(client, account.email, second)
    with pytest.raises(BadRequestError) as reused:
        _confirm(client, account.email, second)
    assert _error_of(reused) == "InvalidToken"

    server.request_email_update()
    first = mailed(caplog, "email update", account.email)
    server.request_email_update()
    second = mailed(caplog, "email update", account.email)
    with pytest.raises(BadRequestError) as replaced:
        _update(client, f"x-{account.email}", first)
    assert _error_of(replaced) == "InvalidToken"
    _update(client, f"x-{account.email}", second)
    with pytest.raises(BadRequestError) as reused:
        _update(client, f"y-{account.email}", second)
    assert _error_of(reused) == "InvalidToken"  # and, unconfirmed now, a given code is checked


# -- raw XRPC: refusals -----------------------------------------------------------------------
async def test_wrong_and_expired_codes(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account("late")
    confirm = nsids.SERVER_CONFIRM_EMAIL
    wrong = await xrpc.procedure(
        confirm, {"email": account.email, "token": "AAAAA-AAAAA"}, headers=account.bearer
    )
    assert (wrong.status, wrong.error) == (400, "InvalidToken")
    # Issued into the live server's database by a clock that runs a TTL (and a second) behind.
    db = Database(pds_stack.settings.sqlite_path)
    try:
        behind = EmailCodes(db, clock=lambda: time.time() - TOKEN_TTL_MS / 1000 - 1)
        stale = await behind.issue(parse_did(account.did), Purpose.CONFIRM_EMAIL)
    finally:
        await db.close()
    expired = await xrpc.procedure(
        confirm, {"email": account.email, "token": stale}, headers=account.bearer
    )
    assert (expired.status, expired.error) == (400, "ExpiredToken")
    assert expired.body["message"] == "Token is expired"

    (await xrpc.procedure(nsids.SERVER_REQUEST_EMAIL_CONFIRMATION, headers=account.bearer)).ok()
    code = mailed(caplog, "email confirmation", account.email)
    elsewhere = await xrpc.procedure(
        confirm, {"email": "someone@example.com", "token": code}, headers=account.bearer
    )
    assert (elsewhere.status, elsewhere.error) == (400, "InvalidEmail")
    other = new_account("other")
    stolen = await xrpc.procedure(
        confirm, {"email": other.email, "token": code}, headers=other.bearer
    )
    assert (stolen.status, stolen.error) == (400, "InvalidToken")
    done = await xrpc.procedure(
        confirm, {"email": account.email, "token": code}, headers=account.bearer
    )
    assert (done.status, done.body) == (200, None)


async def test_auth_rules(xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account("auth")
    created = (
        await xrpc.procedure(
            nsids.SERVER_CREATE_APP_PASSWORD, {"name": "app"}, headers=account.bearer
        )
    ).ok()
    app = bearer((await xrpc.login(account.handle, created["password"])).ok()["accessJwt"])
    # Confirming takes an app password's session; changing the address takes a full one.
    requested = await xrpc.procedure(nsids.SERVER_REQUEST_EMAIL_CONFIRMATION, headers=app)
    assert requested.status == 200, requested.body
    for nsid, body in [
        (nsids.SERVER_REQUEST_EMAIL_UPDATE, None),
        (nsids.SERVER_UPDATE_EMAIL, {"email": f"app-{account.email}"}),
    ]:
        refused = await xrpc.procedure(nsid, body, headers=app)
        assert (refused.status, refused.error) == (400, "InvalidToken"), nsid
    invites = await xrpc.query(nsids.SERVER_GET_ACCOUNT_INVITE_CODES, headers=app)
    assert (invites.status, invites.error) == (400, "InvalidToken")
    for nsid in (
        nsids.SERVER_REQUEST_EMAIL_CONFIRMATION,
        nsids.SERVER_CONFIRM_EMAIL,
        nsids.SERVER_REQUEST_EMAIL_UPDATE,
        nsids.SERVER_UPDATE_EMAIL,
    ):
        anonymous = await xrpc.procedure(nsid, {"email": "a@example.com", "token": "x"})
        assert anonymous.status == 401, nsid

    # A taken-down account keeps its access token until it expires, but cannot use these.
    subject = {"$type": nsids.ADMIN_DEFS_REPO_REF, "did": account.did}
    takedown = {"subject": subject, "takedown": {"applied": True, "ref": "case-9"}}
    admin = {"Authorization": pds_stack.admin_authorization}
    (await xrpc.procedure(nsids.ADMIN_UPDATE_SUBJECT_STATUS, takedown, headers=admin)).ok()
    for nsid in (nsids.SERVER_REQUEST_EMAIL_CONFIRMATION, nsids.SERVER_REQUEST_EMAIL_UPDATE):
        banned = await xrpc.procedure(nsid, headers=account.bearer)
        assert (banned.status, banned.error) == (401, "AccountTakedown"), nsid
    banned_list = await xrpc.query(nsids.SERVER_GET_ACCOUNT_INVITE_CODES, headers=account.bearer)
    assert (banned_list.status, banned_list.error) == (401, "AccountTakedown")


_GARBAGE = [
    b"{",
    b"[]",
    b"null",
    b"{}",
    b'{"email": 5, "token": []}',
    b'{"email": "a@example.com", "token": 7}',
    b'{"email": "' + b"a" * 300 + b'@example.com", "token": "AAAAA-AAAAA"}',
    b'{"email": "a@example.com", "token": "' + b"A" * 100 + b'"}',
]
_MORE_GARBAGE = {
    nsids.SERVER_UPDATE_EMAIL: [b'{"email": "a@example.com", "emailAuthFactor": "yes"}'],
}


@pytest.mark.parametrize("nsid", [nsids.SERVER_CONFIRM_EMAIL, nsids.SERVER_UPDATE_EMAIL])
async def test_garbage_inputs_are_client_errors(
    xrpc: Xrpc, new_account: NewAccount, nsid: str
) -> None:
    account = new_account("junk")
    for data in [*_GARBAGE, *_MORE_GARBAGE.get(nsid, [])]:
        reply = await xrpc.request(
            "POST",
            nsids.xrpc_path(nsid),
            data=data,
            headers={**account.bearer, "Content-Type": "application/json"},
        )
        assert (reply.status, reply.error) == (400, "InvalidRequest"), (data, reply.body)
    session = (await xrpc.query(nsids.SERVER_GET_SESSION, headers=account.bearer)).ok()
    assert (session["email"], session["emailConfirmed"]) == (account.email, False)


async def test_an_unsupported_address_is_refused(xrpc: Xrpc, new_account: NewAccount) -> None:
    account = new_account("bad")
    for email in ("", "nobody", "a@b", f"{unique_name()}@@example.com"):
        reply = await xrpc.procedure(
            nsids.SERVER_UPDATE_EMAIL, {"email": email}, headers=account.bearer
        )
        assert (reply.status, reply.error) == (400, "InvalidRequest"), email


# -- deletion and PLC-operation codes ---------------------------------------------------------
async def test_deletion_codes_are_replaced_and_survive_a_failed_attempt(
    xrpc: Xrpc, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account("leaving")
    delete = nsids.SERVER_DELETE_ACCOUNT

    async def request_code() -> str:
        reply = await xrpc.procedure(nsids.SERVER_REQUEST_ACCOUNT_DELETE, headers=account.bearer)
        assert reply.status == 200, reply.body
        return mailed(caplog, "account deletion", account.email)

    first = await request_code()
    second = await request_code()
    attempt = {"did": account.did, "password": account.password}
    replaced = await xrpc.procedure(delete, {**attempt, "token": first})
    assert (replaced.status, replaced.error) == (400, "InvalidToken")
    wrong_password = await xrpc.procedure(delete, {**attempt, "password": "no", "token": second})
    assert wrong_password.status == 401
    done = await xrpc.procedure(delete, {**attempt, "token": second})
    assert done.status == 200, done.body
    again = await xrpc.procedure(delete, {**attempt, "token": second})
    assert again.status == 400


async def test_plc_operation_codes_work_once(
    xrpc: Xrpc, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account("signer")
    sign = nsids.IDENTITY_SIGN_PLC_OPERATION

    async def request_code() -> str:
        reply = await xrpc.procedure(nsids.IDENTITY_REQUEST_PLC_SIGNATURE, headers=account.bearer)
        assert reply.status == 200, reply.body
        return mailed(caplog, "PLC operation signature", account.email)

    first = await request_code()
    second = await request_code()
    replaced = await xrpc.procedure(sign, {"token": first}, headers=account.bearer)
    assert (replaced.status, replaced.error) == (400, "InvalidToken")
    signed = await xrpc.procedure(sign, {"token": second}, headers=account.bearer)
    assert signed.ok()["operation"]["type"] == "plc_operation"
    reused = await xrpc.procedure(sign, {"token": second}, headers=account.bearer)
    assert (reused.status, reused.error) == (400, "InvalidToken")
    # Changing the email forgets codes mailed to the old address.
    third = await request_code()
    moved = await xrpc.procedure(
        nsids.SERVER_UPDATE_EMAIL, {"email": f"moved-{account.email}"}, headers=account.bearer
    )
    assert moved.status == 200, moved.body
    forgotten = await xrpc.procedure(sign, {"token": third}, headers=account.bearer)
    assert (forgotten.status, forgotten.error) == (400, "InvalidToken")
