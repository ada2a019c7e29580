"""The real `atproto` SDK (PyPI) against our PDS: accounts, logins, sessions, app passwords."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import jwt
import pytest
from atproto import Client, models
from atproto_client.exceptions import (
    BadRequestError,
    UnauthorizedError,
)

from tests.pds.stack import LiveAccount, Stack, unique_name

NewAccount = Callable[..., LiveAccount]


MakeClient = Callable[[], Client]


@pytest.fixture
def make_client(pds_stack: Stack) -> Iterator[MakeClient]:
    """SDK clients on the shared stack, closed (with their HTTP connections) after the test."""
    clients: list[Client] = []

    def make() -> Client:
        client = Client(base_url=pds_stack.pds_url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.request.close()


def test_sdk_creates_an_account_and_is_logged_in(make_client: MakeClient, pds_stack: Stack) -> None:
    client = make_client()
    label = unique_name("sdk")
    handle = f"{label}{pds_stack.settings.service_handle_domains[0]}"
    created = client.com.atproto.server.create_account(
        models.ComAtprotoServerCreateAccount.Data(
            handle=handle, email=f"{label}@example.com", password="sdk-password-1"
        )
    )
    assert created.handle == handle
    assert created.did.startswith("did:plc:")
    client.login(handle, "sdk-password-1", fetch_bsky_profile=False)
    assert client.me is None
    session = client.com.atproto.server.get_session()
    assert (session.did, session.handle) == (created.did, handle)


@pytest.mark.parametrize("identifier", ["handle", "email", "did"])
def test_login_with_each_identifier(
    make_client: MakeClient, pds_stack: Stack, new_account: NewAccount, identifier: str
) -> None:
    account = new_account()
    client = make_client()
    client.login(getattr(account, identifier), account.password, fetch_bsky_profile=False)
    session = client.com.atproto.server.get_session()
    assert session.did == account.did
    assert session.handle == account.handle
    assert session.email == account.email
    assert session.active is True
    # The SDK switched to the PDS endpoint named by the session's DID document.
    assert client._base_url.startswith(pds_stack.pds_url)


def test_login_fetches_the_profile_by_default(
    make_client: MakeClient, new_account: NewAccount
) -> None:
    account = new_account()
    # No AppView is configured: the PDS answers getProfile from the account's own repo.
    profile = make_client().login(account.handle, account.password)
    assert profile is not None
    assert (profile.did, profile.handle) == (account.did, account.handle)


def test_wrong_password_is_unauthorized(
    make_client: MakeClient, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    with pytest.raises(UnauthorizedError) as caught:
        make_client().login(account.handle, "wrong-password", fetch_bsky_profile=False)
    assert caught.value.response is not None
    assert caught.value.response.status_code == 401
    assert caught.value.response.content.error == "AuthenticationRequired"


def test_session_refresh_rotates_tokens(
    make_client: MakeClient, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    client = make_client()
    client.login(account.handle, account.password, fetch_bsky_profile=False)
    assert client._session is not None
    before = client._session.refresh_jwt
    client._refresh_and_set_session()
    after = client._session.refresh_jwt
    assert (
        jwt.decode(before, options={"verify_signature": False})["jti"]
        != jwt.decode(after, options={"verify_signature": False})["jti"]
    )
    assert client.com.atproto.server.get_session().did == account.did


def test_exported_session_string_resumes(
    make_client: MakeClient, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    first = make_client()
    first.login(account.handle, account.password, fetch_bsky_profile=False)
    second = make_client()
    second.login(session_string=first.export_session_string(), fetch_bsky_profile=False)
    assert second.com.atproto.server.get_session().did == account.did


def test_app_password_create_login_revoke(
    make_client: MakeClient, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    owner = make_client()
    owner.login(account.handle, account.password, fetch_bsky_profile=False)
    created = owner.com.atproto.server.create_app_password(
        models.ComAtprotoServerCreateAppPassword.Data(name="bot")
    )
    assert created.privileged is False

    bot = make_client()
    bot.login(account.handle, created.password, fetch_bsky_profile=False)
    assert bot._session is not None
    scope = jwt.decode(bot._session.access_jwt, options={"verify_signature": False})["scope"]
    assert scope == "com.atproto.appPass"
    assert bot.com.atproto.server.get_session().did == account.did
    listed = owner.com.atproto.server.list_app_passwords()
    assert [p.name for p in listed.passwords] == ["bot"]
    # An app-password session may not mint more app passwords.
    with pytest.raises(BadRequestError):
        bot.com.atproto.server.create_app_password(
            models.ComAtprotoServerCreateAppPassword.Data(name="escalate")
        )

    owner.com.atproto.server.revoke_app_password(
        models.ComAtprotoServerRevokeAppPassword.Data(name="bot")
    )
    with pytest.raises(UnauthorizedError):
        make_client().login(account.handle, created.password, fetch_bsky_profile=False)
    with pytest.raises(BadRequestError) as caught:
        bot._refresh_and_set_session()
    assert caught.value.response is not None
    assert caught.value.response.content.error == "ExpiredToken"
    assert owner.com.atproto.server.list_app_passwords().passwords == []


def test_describe_server_through_the_sdk(make_client: MakeClient, pds_stack: Stack) -> None:
    described = make_client().com.atproto.server.describe_server()
    assert described.did == pds_stack.settings.service_did
    assert described.available_user_domains == list(pds_stack.settings.service_handle_domains)
    assert described.invite_code_required is False


def test_resolve_handle_through_the_sdk(
    make_client: MakeClient, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    resolved = make_client().com.atproto.identity.resolve_handle(
        models.ComAtprotoIdentityResolveHandle.Params(handle=account.handle)
    )
    assert resolved.did == account.did
