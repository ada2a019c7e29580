"""Forgot password over HTTP: requestPasswordReset mails a code, resetPassword uses it once.

The SDK tests drive the shared stack with the `atproto` client, as a Bluesky app does; the raw
XRPC tests check exact statuses and error names. Codes are read from the `pds.mailer` log.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator

import pytest
from atproto import Client, models
from atproto_client.exceptions import BadRequestError, UnauthorizedError

from atcore import nsids
from pds.db.engine import Database
from pds.email_codes import TOKEN_TTL_MS, EmailCodes
from pds.mailer import LogMailer
from pds.password_reset import PasswordResets
from tests.pds.stack import LiveAccount, Stack
from tests.pds.xrpc_client import Xrpc, bearer

NewAccount = Callable[..., LiveAccount]
MakeClient = Callable[[], Client]
_CODE = re.compile(r"password reset code for (\S+) \(([^)]*)\): ([A-Z2-7]{5}-[A-Z2-7]{5})$")


@pytest.fixture(autouse=True)
def _capture_mail(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pds.mailer")


@pytest.fixture
def make_client(pds_stack: Stack) -> Iterator[MakeClient]:
    clients: list[Client] = []

    def make() -> Client:
        client = Client(base_url=pds_stack.pds_url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.request.close()


def mailed_reset_code(caplog: pytest.LogCaptureFixture, account: LiveAccount) -> str:
    """The last reset code mailed to the account (checking it names the account's handle)."""
    for record in reversed(caplog.records):
        found = _CODE.search(record.getMessage()) if record.name == "pds.mailer" else None
        if found and found.group(1) == account.email:
            assert found.group(2) == account.handle
            return found.group(3)
    raise AssertionError(f"no password reset code was mailed to {account.email}")


def _request(client: Client, email: str) -> None:
    client.com.atproto.server.request_password_reset(
        models.ComAtprotoServerRequestPasswordReset.Data(email=email)
    )


def _reset(client: Client, token: str, password: str) -> None:
    client.com.atproto.server.reset_password(
        models.ComAtprotoServerResetPassword.Data(token=token, password=password)
    )


def _error_of(caught: pytest.ExceptionInfo[BadRequestError]) -> str:
    assert caught.value.response is not None
    return str(caught.value.response.content.error)


# -- the SDK ----------------------------------------------------------------------------------
def test_forgot_password_with_the_sdk(
    make_client: MakeClient, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account("reset")
    old_session = make_client()
    old_session.login(account.handle, account.password, fetch_bsky_profile=False)
    anonymous = make_client()

    _request(anonymous, account.email.upper())  # emails are matched whatever their case
    code = mailed_reset_code(caplog, account)
    _reset(anonymous, f" {code.lower()} ", "a-brand-new-password")  # read leniently

    with pytest.raises(UnauthorizedError):
        make_client().login(account.handle, account.password, fetch_bsky_profile=False)
    fresh = make_client()
    fresh.login(account.handle, "a-brand-new-password", fetch_bsky_profile=False)
    assert fresh.com.atproto.server.get_session().did == account.did
    with pytest.raises(BadRequestError) as refused:
        old_session._refresh_and_set_session()
    assert _error_of(refused) == "ExpiredToken"  # the old session cannot refresh any more
    with pytest.raises(BadRequestError) as reused:
        _reset(anonymous, code, "yet-another-password")
    assert _error_of(reused) == "InvalidToken"
    fresh.login(account.handle, "a-brand-new-password", fetch_bsky_profile=False)


def test_a_second_request_replaces_the_first_code(
    make_client: MakeClient, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account("again")
    client = make_client()
    _request(client, account.email)
    first = mailed_reset_code(caplog, account)
    _request(client, account.email)
    second = mailed_reset_code(caplog, account)
    assert second != first
    with pytest.raises(BadRequestError) as replaced:
        _reset(client, first, "password-from-the-first-mail")
    assert _error_of(replaced) == "InvalidToken"
    _reset(client, second, "password-from-the-second-mail")
    client.login(account.email, "password-from-the-second-mail", fetch_bsky_profile=False)


# -- sessions and app passwords ---------------------------------------------------------------
async def test_reset_revokes_every_session_and_keeps_app_passwords(
    xrpc: Xrpc, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account("apppw")
    other = new_account("bystander")
    created = (
        await xrpc.procedure(
            nsids.SERVER_CREATE_APP_PASSWORD, {"name": "bot"}, headers=account.bearer
        )
    ).ok()
    app_session = (await xrpc.login(account.handle, created["password"])).ok()

    (await xrpc.procedure(nsids.SERVER_REQUEST_PASSWORD_RESET, {"email": account.email})).ok()
    code = mailed_reset_code(caplog, account)
    done = await xrpc.procedure(
        nsids.SERVER_RESET_PASSWORD, {"token": code, "password": "after-the-reset"}
    )
    assert (done.status, done.body) == (200, None)

    for refresh_jwt in (account.refresh_jwt, app_session["refreshJwt"]):
        refresh = await xrpc.procedure(nsids.SERVER_REFRESH_SESSION, headers=bearer(refresh_jwt))
        assert (refresh.status, refresh.error) == (400, "ExpiredToken")
    # The app password itself still logs in (the reference keeps app passwords on a reset).
    assert (await xrpc.login(account.handle, created["password"])).status == 200
    # Another account's session is untouched.
    kept = await xrpc.procedure(nsids.SERVER_REFRESH_SESSION, headers=bearer(other.refresh_jwt))
    assert kept.status == 200, kept.body


async def test_deactivated_and_taken_down_accounts_can_reset(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    admin = {"Authorization": pds_stack.admin_authorization}
    sleeping, banned = new_account("sleeping"), new_account("banned")
    deactivated = await xrpc.procedure(nsids.SERVER_DEACTIVATE_ACCOUNT, {}, headers=sleeping.bearer)
    assert deactivated.status == 200, deactivated.body
    subject = {"$type": nsids.ADMIN_DEFS_REPO_REF, "did": banned.did}
    takedown = {"subject": subject, "takedown": {"applied": True, "ref": "case-7"}}
    (await xrpc.procedure(nsids.ADMIN_UPDATE_SUBJECT_STATUS, takedown, headers=admin)).ok()

    for account in (sleeping, banned):
        requested = await xrpc.procedure(
            nsids.SERVER_REQUEST_PASSWORD_RESET, {"email": account.email}
        )
        assert requested.status == 200, requested.body
        code = mailed_reset_code(caplog, account)
        body = {"token": code, "password": "reset-while-inactive"}
        assert (await xrpc.procedure(nsids.SERVER_RESET_PASSWORD, body)).status == 200
    assert (await xrpc.login(sleeping.handle, "reset-while-inactive")).status == 200
    # A taken-down account still cannot log in normally, whatever its password.
    login = await xrpc.login(banned.handle, "reset-while-inactive")
    assert (login.status, login.error) == (401, "AccountTakedown")


async def test_setting_the_password_another_way_voids_the_code(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account("admin")
    (await xrpc.procedure(nsids.SERVER_REQUEST_PASSWORD_RESET, {"email": account.email})).ok()
    code = mailed_reset_code(caplog, account)
    updated = await xrpc.procedure(
        nsids.ADMIN_UPDATE_ACCOUNT_PASSWORD,
        {"did": account.did, "password": "set-by-the-admin"},
        headers={"Authorization": pds_stack.admin_authorization},
    )
    assert updated.status == 200, updated.body
    late = await xrpc.procedure(
        nsids.SERVER_RESET_PASSWORD, {"token": code, "password": "from-the-old-mail"}
    )
    assert (late.status, late.error) == (400, "InvalidToken")
    assert (await xrpc.login(account.handle, "set-by-the-admin")).status == 200


# -- refusals ---------------------------------------------------------------------------------
async def test_an_expired_code_is_refused(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account("late")
    # Issued into the live server's database by a clock that runs a TTL (and a second) behind.
    db = Database(pds_stack.settings.sqlite_path)
    try:
        codes = EmailCodes(db, clock=lambda: time.time() - TOKEN_TTL_MS / 1000 - 1)
        behind = PasswordResets(db=db, mailer=LogMailer(), codes=codes)
        await behind.request(account.email)
    finally:
        await db.close()
    code = mailed_reset_code(caplog, account)
    body = {"token": code, "password": "too-late-for-this"}
    expired = await xrpc.procedure(nsids.SERVER_RESET_PASSWORD, body)
    assert (expired.status, expired.error) == (400, "ExpiredToken")
    assert expired.body["message"] == "Token is expired"
    assert (await xrpc.login(account.handle, account.password)).status == 200


@pytest.mark.parametrize(
    "token", ["", "nope", "AAAAA-AAAAA", "AAAAA-AAAA1", "AAAA-BBBB-CCCC-DDDD", "ÄÄÄÄÄ-ÄÄÄÄÄ"]
)
async def test_unknown_or_malformed_codes_are_invalid(xrpc: Xrpc, token: str) -> None:
    reply = await xrpc.procedure(
        nsids.SERVER_RESET_PASSWORD, {"token": token, "password": "whatever-it-is"}
    )
    assert (reply.status, reply.error) == (400, "InvalidToken")
    assert reply.body["message"] == "Token is invalid"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"password": "new-password"}, 'Input must have the property "token"'),
        ({"token": "AAAAA-BBBBB"}, 'Input must have the property "password"'),
        ({"token": 12345, "password": "new-password"}, "Input/token"),
        ({"token": "AAAAA-BBBBB", "password": ["new-password"]}, "Input/password"),
        ({"token": "AAAAA-BBBBB", "password": None}, 'the property "password"'),
        ({"token": "A" * 65, "password": "new-password"}, "Input/token"),
        ({"token": "AAAAA-BBBBB", "password": ""}, "Input/password must not be empty"),
        ({"token": "AAAAA-BBBBB", "password": "x" * 257}, "Maximum length is 256"),
        ([1, 2], "object"),
    ],
)
async def test_reset_password_input_errors(xrpc: Xrpc, body: object, message: str) -> None:
    reply = await xrpc.procedure(nsids.SERVER_RESET_PASSWORD, body)
    assert (reply.status, reply.error) == (400, "InvalidRequest"), reply.body
    assert message in reply.body["message"]


async def test_a_bad_password_does_not_spend_the_code(
    xrpc: Xrpc, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account("keep")
    (await xrpc.procedure(nsids.SERVER_REQUEST_PASSWORD_RESET, {"email": account.email})).ok()
    code = mailed_reset_code(caplog, account)
    too_long = await xrpc.procedure(
        nsids.SERVER_RESET_PASSWORD, {"token": code, "password": "p" * 257}
    )
    assert (too_long.status, too_long.error) == (400, "InvalidRequest")
    longest = "p" * 256
    assert (
        await xrpc.procedure(nsids.SERVER_RESET_PASSWORD, {"token": code, "password": longest})
    ).status == 200
    assert (await xrpc.login(account.handle, longest)).status == 200


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        ({"email": "nobody-here@example.com"}, "InvalidRequest", "does not have an email"),
        ({"email": "not an email"}, "InvalidRequest", "does not have an email"),
        ({"email": ""}, "InvalidRequest", "does not have an email"),
        ({}, "InvalidRequest", 'Input must have the property "email"'),
        ({"email": 7}, "InvalidRequest", "Input/email"),
        ({"email": "a" * 300 + "@example.com"}, "InvalidRequest", "Input/email"),
    ],
)
async def test_request_password_reset_refusals(
    xrpc: Xrpc, body: dict[str, object], error: str, message: str
) -> None:
    reply = await xrpc.procedure(nsids.SERVER_REQUEST_PASSWORD_RESET, body)
    assert (reply.status, reply.error) == (400, error), reply.body
    assert message in reply.body["message"]


async def test_bodies_that_are_not_json(xrpc: Xrpc) -> None:
    for nsid in (nsids.SERVER_REQUEST_PASSWORD_RESET, nsids.SERVER_RESET_PASSWORD):
        broken = await xrpc.request(
            "POST",
            nsids.xrpc_path(nsid),
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert (broken.status, broken.error) == (400, "InvalidRequest")
        bare = await xrpc.request("POST", nsids.xrpc_path(nsid))
        assert (bare.status, bare.error) == (400, "InvalidRequest")
