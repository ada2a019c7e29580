"""com.atproto.server over raw HTTP: accounts, sessions, token errors, refresh rotation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from atcore import nsids
from atcore.identity import DidDocument
from pds.api.server import server_description
from pds.auth.tokens import ACCESS_TOKEN_TTL_SECONDS, AuthScope, TokenIssuer
from pds.db.engine import Database
from pds.db.schema import refresh_token
from pds.settings import PdsSettings, SettingsError
from tests.pds.stack import SHARED_STACK_ENV, LiveAccount, Stack, account_events, unique_name
from tests.pds.xrpc_client import Xrpc, bearer, jwt_claims

NewAccount = Callable[..., LiveAccount]


def _handle(stack: Stack, label: str) -> str:
    return f"{label}{stack.settings.service_handle_domains[0]}"


# -- describeServer ---------------------------------------------------------------------------
async def test_describe_server(xrpc: Xrpc, pds_stack: Stack) -> None:
    body = (await xrpc.query(nsids.SERVER_DESCRIBE_SERVER)).ok()
    assert body["did"] == pds_stack.settings.service_did
    assert body["availableUserDomains"] == [".test"]
    assert body["inviteCodeRequired"] is False
    assert body["blobUploadLimit"] == pds_stack.settings.blob_upload_limit
    assert body["links"] == {
        "privacyPolicy": SHARED_STACK_ENV["PDS_PRIVACY_POLICY_URL"],
        "termsOfService": SHARED_STACK_ENV["PDS_TERMS_OF_SERVICE_URL"],
    }
    assert body["contact"] == {"email": SHARED_STACK_ENV["PDS_CONTACT_EMAIL_ADDRESS"]}


def test_describe_server_leaves_out_what_is_not_configured(tmp_path: Path) -> None:
    base = {"PDS_DEV_MODE": "true", "PDS_DATA_DIRECTORY": str(tmp_path)}
    bare = server_description(PdsSettings.from_env(base))
    assert (bare["links"], bare["contact"]) == ({}, {})
    only_terms = {**base, "PDS_TERMS_OF_SERVICE_URL": "https://example.com/tos"}
    assert server_description(PdsSettings.from_env(only_terms))["links"] == {
        "termsOfService": "https://example.com/tos"
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PDS_PRIVACY_POLICY_URL", "privacy.html"),
        ("PDS_TERMS_OF_SERVICE_URL", "ftp://example.com/tos"),
        ("PDS_CONTACT_EMAIL_ADDRESS", "nobody"),
        ("PDS_CONTACT_EMAIL_ADDRESS", "a b@example.com"),
    ],
)
def test_malformed_links_and_contact_are_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        PdsSettings.from_env(
            {"PDS_DEV_MODE": "true", "PDS_DATA_DIRECTORY": str(tmp_path), name: value}
        )


# -- createAccount ----------------------------------------------------------------------------
async def test_create_account_registers_the_did_and_sequences_events(
    xrpc: Xrpc, pds_stack: Stack
) -> None:
    label = unique_name("new")
    handle = _handle(pds_stack, label)
    body = (
        await xrpc.procedure(
            nsids.SERVER_CREATE_ACCOUNT,
            {"handle": handle.upper(), "email": f"{label}@Example.com", "password": "pw"},
        )
    ).ok()
    did = body["did"]
    assert body["handle"] == handle
    assert did.startswith("did:plc:")
    document = DidDocument.from_json(body["didDoc"])
    assert document.id == did
    assert document.pds_endpoint == pds_stack.pds_url
    assert document.handle == handle
    assert document.atproto_key is not None
    async with xrpc.http.get(f"{pds_stack.plc_url}/{did}") as response:
        published = DidDocument.from_json(await response.json(content_type=None))
    assert published.to_json() == document.to_json()
    claims = jwt_claims(body["accessJwt"])
    assert (claims["sub"], claims["scope"]) == (did, "com.atproto.access")
    events = await account_events(pds_stack, did)
    assert [kind for kind, _ in events] == ["identity", "account", "commit", "sync"]
    assert events[0][1]["handle"] == handle
    assert events[1][1]["active"] is True


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"handle": "ab.test"}, "InvalidHandle"),
        ({"handle": "no_underscores.test"}, "InvalidHandle"),
        ({"handle": "waytoolonglabel12345.test"}, "InvalidHandle"),
        ({"handle": "two.labels.test"}, "InvalidHandle"),
        ({"handle": "someone.example.com"}, "UnsupportedDomain"),
        ({"handle": "bad.local"}, "InvalidHandle"),
        ({"handle": "admin.test"}, "HandleNotAvailable"),
        ({"password": "x" * 257}, "InvalidPassword"),
        ({"email": "not-an-email"}, "InvalidRequest"),
        ({"handle": 42}, "InvalidRequest"),
        ({"password": None}, "InvalidRequest"),
        ({"email": ["a@b.c"]}, "InvalidRequest"),
        ({"plcOp": {"type": "plc_operation"}}, "InvalidRequest"),
        ({"recoveryKey": "did:key:zNotAKey"}, "InvalidRequest"),
    ],
)
async def test_create_account_refuses_bad_input(
    xrpc: Xrpc, pds_stack: Stack, change: dict[str, Any], error: str
) -> None:
    label = unique_name("bad")
    body = {"handle": _handle(pds_stack, label), "email": f"{label}@ex.com", "password": "pw"}
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}
    reply = await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, body)
    assert (reply.status, reply.error) == (400, error), reply.body
    # Nothing was left behind: the handle is still free.
    resolved = await xrpc.query(
        nsids.IDENTITY_RESOLVE_HANDLE, {"handle": _handle(pds_stack, label)}
    )
    assert resolved.error == "HandleNotFound"


async def test_handle_and_email_are_unique(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    taken = new_account()
    same_handle = {"handle": taken.handle.upper(), "email": "other@ex.com", "password": "pw"}
    reply = await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, same_handle)
    assert (reply.status, reply.error) == (400, "HandleNotAvailable")
    label = unique_name("dup")
    same_email = {"handle": _handle(pds_stack, label), "email": taken.email, "password": "pw"}
    reply = await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, same_email)
    assert (reply.status, reply.error) == (400, "InvalidRequest")
    assert "Email already taken" in reply.body["message"]


async def test_email_is_optional(xrpc: Xrpc, pds_stack: Stack) -> None:
    handle = _handle(pds_stack, unique_name("nomail"))
    body = (
        await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, {"handle": handle, "password": "pw"})
    ).ok()
    session = (await xrpc.query(nsids.SERVER_GET_SESSION, headers=bearer(body["accessJwt"]))).ok()
    assert "email" not in session
    assert session["emailConfirmed"] is False


async def test_concurrent_signups_for_one_handle_create_one_account(
    xrpc: Xrpc, pds_stack: Stack
) -> None:
    handle = _handle(pds_stack, unique_name("race"))
    replies = await asyncio.gather(
        *(
            xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, {"handle": handle, "password": f"pw{i}"})
            for i in range(4)
        )
    )
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200, 400, 400, 400], [r.body for r in replies]
    assert {r.error for r in replies if r.status == 400} == {"HandleNotAvailable"}


# -- createSession / getSession ---------------------------------------------------------------
async def test_create_session_response(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    body = (await xrpc.login(account.email.upper(), account.password)).ok()
    assert body["did"] == account.did
    assert body["handle"] == account.handle
    assert body["email"] == account.email
    assert body["active"] is True
    assert "status" not in body
    assert DidDocument.from_json(body["didDoc"]).pds_endpoint == pds_stack.pds_url
    session = (await xrpc.query(nsids.SERVER_GET_SESSION, headers=bearer(body["accessJwt"]))).ok()
    assert session["did"] == account.did
    assert session["didDoc"] == body["didDoc"]


@pytest.mark.parametrize("who", ["unknown-handle", "wrong-password", "bad-identifier"])
async def test_failed_logins_look_alike(xrpc: Xrpc, new_account: NewAccount, who: str) -> None:
    account = new_account()
    identifier, password = {
        "unknown-handle": ("nobody-here.test", account.password),
        "wrong-password": (account.handle, "nope"),
        "bad-identifier": ("!!!", account.password),
    }[who]
    reply = await xrpc.login(identifier, password)
    assert (reply.status, reply.error) == (401, "AuthenticationRequired")
    assert reply.body["message"] == "Invalid identifier or password"


def _issuer(stack: Stack, *, secret: str | None = None, audience: str | None = None) -> TokenIssuer:
    return TokenIssuer(secret or stack.settings.jwt_secret, audience or stack.settings.service_did)


@pytest.mark.parametrize(
    ("make_header", "status", "error"),
    [
        (lambda stack, account: {}, 401, "AuthMissing"),
        (lambda stack, account: {"Authorization": "Bearer"}, 400, "InvalidToken"),
        (lambda stack, account: {"Authorization": "Bearer a b"}, 400, "InvalidToken"),
        (lambda stack, account: {"Authorization": "Token abc"}, 400, "InvalidToken"),
        (lambda stack, account: {"Authorization": "Basic YWRtaW46eA=="}, 400, "InvalidToken"),
        (lambda stack, account: {"Authorization": "DPoP abc"}, 400, "InvalidToken"),
        (lambda stack, account: bearer("not.a.jwt"), 400, "InvalidToken"),
        (
            lambda stack, account: bearer(
                _issuer(stack).create_access_token(
                    account.did,
                    AuthScope.ACCESS,
                    now=int(time.time()) - ACCESS_TOKEN_TTL_SECONDS - 1,
                )
            ),
            400,
            "ExpiredToken",
        ),
        (
            lambda stack, account: bearer(
                _issuer(stack, secret="f" * 64).create_access_token(account.did, AuthScope.ACCESS)
            ),
            400,
            "InvalidToken",
        ),
        (
            lambda stack, account: bearer(
                _issuer(stack, audience="did:web:elsewhere.example").create_access_token(
                    account.did, AuthScope.ACCESS
                )
            ),
            400,
            "InvalidToken",
        ),
        (lambda stack, account: bearer(account.refresh_jwt), 400, "InvalidToken"),
    ],
    ids=[
        "missing",
        "empty-bearer",
        "three-parts",
        "unknown-scheme",
        "basic",
        "dpop",
        "garbage",
        "expired",
        "forged",
        "other-audience",
        "refresh-as-access",
    ],
)
async def test_get_session_token_errors(
    xrpc: Xrpc,
    pds_stack: Stack,
    new_account: NewAccount,
    make_header: Callable[[Stack, LiveAccount], dict[str, str]],
    status: int,
    error: str,
) -> None:
    account = new_account()
    reply = await xrpc.query(nsids.SERVER_GET_SESSION, headers=make_header(pds_stack, account))
    assert (reply.status, reply.error) == (status, error), reply.body
    assert reply.headers.get("Cache-Control") == "private"


# -- refreshSession / deleteSession -----------------------------------------------------------
async def _refresh(xrpc: Xrpc, token: str) -> Any:
    return await xrpc.procedure(nsids.SERVER_REFRESH_SESSION, headers=bearer(token))


async def test_refresh_rotates_and_reuse_within_grace_gets_the_same_successor(
    xrpc: Xrpc, new_account: NewAccount
) -> None:
    account = new_account()
    first = (await _refresh(xrpc, account.refresh_jwt)).ok()
    again = (await _refresh(xrpc, account.refresh_jwt)).ok()
    old_jti = jwt_claims(account.refresh_jwt)["jti"]
    new_jti = jwt_claims(first["refreshJwt"])["jti"]
    assert new_jti != old_jti
    assert jwt_claims(again["refreshJwt"])["jti"] == new_jti
    assert first["did"] == account.did
    assert first["active"] is True
    # The successor works, and rotates in turn.
    third = (await _refresh(xrpc, first["refreshJwt"])).ok()
    assert jwt_claims(third["refreshJwt"])["jti"] not in (old_jti, new_jti)
    session = await xrpc.query(nsids.SERVER_GET_SESSION, headers=bearer(third["accessJwt"]))
    assert session.ok()["did"] == account.did


async def test_concurrent_refreshes_get_the_same_successor(
    xrpc: Xrpc, new_account: NewAccount
) -> None:
    account = new_account()
    replies = await asyncio.gather(*(_refresh(xrpc, account.refresh_jwt) for _ in range(6)))
    jtis = {jwt_claims(reply.ok()["refreshJwt"])["jti"] for reply in replies}
    assert len(jtis) == 1


async def test_refresh_after_the_grace_period_is_refused(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    (await _refresh(xrpc, account.refresh_jwt)).ok()
    # Travel past the grace period: the rotated token's row now ends in the past.
    db = Database(pds_stack.settings.sqlite_path)
    try:
        async with db.transaction() as conn:
            await conn.execute(
                update(refresh_token)
                .where(refresh_token.c.id == jwt_claims(account.refresh_jwt)["jti"])
                .values(expires_at=int(time.time() * 1000) - 1)
            )
    finally:
        await db.close()
    reply = await _refresh(xrpc, account.refresh_jwt)
    assert (reply.status, reply.error) == (400, "ExpiredToken")


async def test_refresh_needs_a_refresh_token(xrpc: Xrpc, new_account: NewAccount) -> None:
    account = new_account()
    reply = await _refresh(xrpc, account.access_jwt)
    assert (reply.status, reply.error) == (400, "InvalidToken")
    reply = await xrpc.procedure(nsids.SERVER_REFRESH_SESSION)
    assert (reply.status, reply.error) == (401, "AuthMissing")


async def test_delete_session_revokes_the_refresh_token(
    xrpc: Xrpc, new_account: NewAccount
) -> None:
    account = new_account()
    wrong = await xrpc.procedure(nsids.SERVER_DELETE_SESSION, headers=bearer(account.access_jwt))
    assert (wrong.status, wrong.error) == (400, "InvalidToken")
    deleted = await xrpc.procedure(nsids.SERVER_DELETE_SESSION, headers=bearer(account.refresh_jwt))
    assert deleted.status == 200
    reply = await _refresh(xrpc, account.refresh_jwt)
    assert (reply.status, reply.error) == (400, "ExpiredToken")


# -- malformed requests -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"text"', "application/json"),
        (b"", "application/json"),
        (b'{"identifier": "a"}', "text/plain"),
        (b"\xff\xfe", "application/json"),
        (b'{"identifier": 1, "password": "x"}', "application/json"),
        (b'{"identifier": "x", "password": {"a": 1}}', "application/json"),
        (b'{"identifier": "x", "password": "y", "allowTakendown": "yes"}', "application/json"),
    ],
    ids=[
        "broken-json",
        "array",
        "string",
        "empty",
        "text-plain",
        "not-utf8",
        "int-identifier",
        "object-password",
        "string-flag",
    ],
)
async def test_malformed_bodies_are_invalid_requests(
    xrpc: Xrpc, data: bytes, content_type: str
) -> None:
    reply = await xrpc.request(
        "POST",
        nsids.xrpc_path(nsids.SERVER_CREATE_SESSION),
        data=data,
        headers={"Content-Type": content_type},
    )
    assert (reply.status, reply.error) == (400, "InvalidRequest"), reply.body


async def test_oversized_body_is_refused(xrpc: Xrpc) -> None:
    payload = b'{"identifier": "' + b"x" * 200_000 + b'", "password": "y"}'
    reply = await xrpc.request(
        "POST",
        nsids.xrpc_path(nsids.SERVER_CREATE_SESSION),
        data=payload,
        headers={"Content-Type": "application/json"},
    )
    assert (reply.status, reply.error) == (413, "PayloadTooLarge")


async def test_wrong_http_method_is_a_json_error(xrpc: Xrpc) -> None:
    reply = await xrpc.request("GET", nsids.xrpc_path(nsids.SERVER_CREATE_SESSION))
    assert reply.status == 405
    assert reply.error == "InvalidRequest"


async def test_a_client_vanishing_mid_body_leaves_the_server_working(
    xrpc: Xrpc, pds_stack: Stack
) -> None:
    port = int(pds_stack.pds_url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /xrpc/com.atproto.server.createSession HTTP/1.1\r\nHost: localhost\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ident'
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    assert (await xrpc.query(nsids.SERVER_DESCRIBE_SERVER)).status == 200


_GARBAGE = [
    b"{",
    b"[]",
    b"null",
    b"123",
    b'{"did": 5, "handle": [], "name": {}, "password": 1, "identifier": null, "token": 2,'
    b' "subject": "x", "useCount": "1", "takedown": 3, "deleteAfter": 4, "email": false}',
]
_MORE_GARBAGE = {
    nsids.ADMIN_UPDATE_SUBJECT_STATUS: [
        b'{"subject": {"$type": 1}, "takedown": {"applied": "yes"}}',
        b'{"subject": {"$type": "%s", "did": "nope"},' % nsids.ADMIN_DEFS_REPO_REF.encode()
        + b' "takedown": {"applied": true}}',
        b'{"subject": {"$type": "com.example.unknown"}, "takedown": {"applied": true}}',
    ],
    nsids.SERVER_CREATE_INVITE_CODE: [b'{"useCount": 0}', b'{"useCount": 1.5}'],
    nsids.SERVER_DEACTIVATE_ACCOUNT: [b'{"deleteAfter": "yesterday"}'],
}
_WITH_INPUT = {
    nsids.SERVER_CREATE_ACCOUNT: "none",
    nsids.SERVER_CREATE_SESSION: "none",
    nsids.SERVER_DELETE_ACCOUNT: "none",
    nsids.SERVER_CREATE_APP_PASSWORD: "user",
    nsids.SERVER_REVOKE_APP_PASSWORD: "user",
    nsids.SERVER_DEACTIVATE_ACCOUNT: "user",
    nsids.IDENTITY_UPDATE_HANDLE: "user",
    nsids.SERVER_REQUEST_PASSWORD_RESET: "none",
    nsids.SERVER_RESET_PASSWORD: "none",
    nsids.SERVER_CONFIRM_EMAIL: "user",
    nsids.SERVER_UPDATE_EMAIL: "user",
    nsids.IDENTITY_SIGN_PLC_OPERATION: "user",
    nsids.IDENTITY_SUBMIT_PLC_OPERATION: "user",
    nsids.SERVER_CREATE_INVITE_CODE: "admin",
    nsids.ADMIN_UPDATE_SUBJECT_STATUS: "admin",
    nsids.ADMIN_UPDATE_ACCOUNT_HANDLE: "admin",
    nsids.ADMIN_UPDATE_ACCOUNT_PASSWORD: "admin",
    nsids.ADMIN_DELETE_ACCOUNT: "admin",
}


@pytest.mark.parametrize("nsid", sorted(_WITH_INPUT))
async def test_garbage_inputs_are_client_errors(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount, nsid: str
) -> None:
    account = new_account()
    auth = {
        "none": {},
        "user": bearer(account.access_jwt),
        "admin": {"Authorization": pds_stack.admin_authorization},
    }[_WITH_INPUT[nsid]]
    for data in [*_GARBAGE, *_MORE_GARBAGE.get(nsid, [])]:
        reply = await xrpc.request(
            "POST",
            nsids.xrpc_path(nsid),
            data=data,
            headers={**auth, "Content-Type": "application/json"},
        )
        assert reply.status == 400, (data, reply.body)
        assert reply.error == "InvalidRequest", (data, reply.body)
    # None of that touched the account.
    session = (await xrpc.login(account.handle, account.password)).ok()
    assert session["active"] is True
