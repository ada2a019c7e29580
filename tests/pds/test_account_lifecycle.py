"""Account lifecycle over HTTP: handles, (de)activation, deletion, service auth, admin, invites."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from atcore import nsids
from atcore.cid import CID
from atcore.crypto import K256Keypair, PublicKey
from atcore.identity import DidDocument
from atcore.identity.resolver import DidResolver
from atcore.syntax import is_valid_datetime
from pds.auth.service_jwt import create_service_jwt, verify_service_jwt
from pds.blobstore import BlobStoreConfig, blobstore_from_config
from pds.db import repo as repo_sql
from pds.db.engine import Database
from tests.pds.stack import LiveAccount, Stack, account_events, start_stack, unique_name
from tests.pds.xrpc_client import Reply, Xrpc, basic, bearer, jwt_claims

NewAccount = Callable[..., LiveAccount]


# -- handles ----------------------------------------------------------------------------------
async def test_update_handle_everywhere(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    new_handle = f"{unique_name('renamed')}.test"
    reply = await xrpc.procedure(
        nsids.IDENTITY_UPDATE_HANDLE, {"handle": new_handle}, headers=bearer(account.access_jwt)
    )
    assert reply.status == 200, reply.body
    resolved = await xrpc.query(nsids.IDENTITY_RESOLVE_HANDLE, {"handle": new_handle})
    assert resolved.ok()["did"] == account.did
    old = await xrpc.query(nsids.IDENTITY_RESOLVE_HANDLE, {"handle": account.handle})
    assert old.error == "HandleNotFound"
    async with xrpc.http.get(f"{pds_stack.plc_url}/{account.did}") as response:
        published = DidDocument.from_json(await response.json(content_type=None))
    assert published.handle == new_handle
    session = (await xrpc.query(nsids.SERVER_GET_SESSION, headers=bearer(account.access_jwt))).ok()
    assert session["handle"] == new_handle
    assert DidDocument.from_json(session["didDoc"]).handle == new_handle
    events = await account_events(pds_stack, account.did)
    assert events[-1][0] == "identity"
    assert events[-1][1]["handle"] == new_handle


async def test_update_handle_refusals(xrpc: Xrpc, new_account: NewAccount) -> None:
    account, other = new_account(), new_account()
    headers = bearer(account.access_jwt)
    taken = await xrpc.procedure(
        nsids.IDENTITY_UPDATE_HANDLE, {"handle": other.handle}, headers=headers
    )
    assert (taken.status, taken.error) == (400, "HandleNotAvailable")
    # A custom domain must already resolve to the account; nothing serves this one.
    custom = await xrpc.procedure(
        nsids.IDENTITY_UPDATE_HANDLE, {"handle": "nobody.invalid-tld-x"}, headers=headers
    )
    assert custom.status == 400
    anonymous = await xrpc.procedure(nsids.IDENTITY_UPDATE_HANDLE, {"handle": "abc.test"})
    assert (anonymous.status, anonymous.error) == (401, "AuthMissing")


# -- activation -------------------------------------------------------------------------------
async def test_deactivate_and_activate(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    headers = bearer(account.access_jwt)
    assert (await xrpc.procedure(nsids.SERVER_DEACTIVATE_ACCOUNT, {}, headers=headers)).ok() is None
    session = (await xrpc.query(nsids.SERVER_GET_SESSION, headers=headers)).ok()
    assert (session["active"], session["status"]) == (False, "deactivated")
    status = (await xrpc.query(nsids.SERVER_CHECK_ACCOUNT_STATUS, headers=headers)).ok()
    assert status["activated"] is False
    login = (await xrpc.login(account.handle, account.password)).ok()
    assert (login["active"], login["status"]) == (False, "deactivated")

    assert (await xrpc.procedure(nsids.SERVER_ACTIVATE_ACCOUNT, headers=headers)).status == 200
    session = (await xrpc.query(nsids.SERVER_GET_SESSION, headers=headers)).ok()
    assert session["active"] is True
    assert "status" not in session
    events = await account_events(pds_stack, account.did)
    kinds = [(kind, body.get("active")) for kind, body in events]
    assert kinds[-4:] == [
        ("account", False),
        ("account", True),
        ("identity", None),
        ("sync", None),
    ]
    assert events[-4][1]["status"] == "deactivated"


async def test_app_password_sessions_cannot_change_activation(
    xrpc: Xrpc, new_account: NewAccount
) -> None:
    account = new_account()
    created = (
        await xrpc.procedure(
            nsids.SERVER_CREATE_APP_PASSWORD,
            {"name": "app", "privileged": True},
            headers=bearer(account.access_jwt),
        )
    ).ok()
    app_session = (await xrpc.login(account.handle, created["password"])).ok()
    assert jwt_claims(app_session["accessJwt"])["scope"] == "com.atproto.appPassPrivileged"
    reply = await xrpc.procedure(
        nsids.SERVER_DEACTIVATE_ACCOUNT, {}, headers=bearer(app_session["accessJwt"])
    )
    assert (reply.status, reply.error) == (400, "InvalidToken")


async def test_check_account_status(xrpc: Xrpc, new_account: NewAccount) -> None:
    account = new_account()
    body = (
        await xrpc.query(nsids.SERVER_CHECK_ACCOUNT_STATUS, headers=bearer(account.access_jwt))
    ).ok()
    assert body["activated"] is True
    assert body["validDid"] is True
    assert body["repoCommit"].startswith("b")
    assert body["repoBlocks"] >= 1
    assert body["indexedRecords"] == 0
    assert (body["expectedBlobs"], body["importedBlobs"], body["privateStateValues"]) == (0, 0, 0)


# -- service auth -----------------------------------------------------------------------------
async def test_get_service_auth_is_signed_with_the_account_key(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    audience = "did:web:feed.example.com"
    exp = int(time.time()) + 600
    body = (
        await xrpc.query(
            nsids.SERVER_GET_SERVICE_AUTH,
            {"aud": audience, "lxm": nsids.BSKY_FEED_GET_FEED_SKELETON, "exp": str(exp)},
            headers=bearer(account.access_jwt),
        )
    ).ok()
    async with DidResolver(plc_url=pds_stack.plc_url) as resolver:

        async def lookup(iss: str, force: bool) -> PublicKey | None:
            return await resolver.resolve_atproto_key(iss, force_refresh=force)

        claims = await verify_service_jwt(
            body["token"],
            own_did=audience,
            lxm=nsids.BSKY_FEED_GET_FEED_SKELETON,
            lookup_key=lookup,
        )
    assert (claims.iss, claims.exp) == (account.did, exp)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"aud": "not-a-did"}, "InvalidRequest"),
        ({"aud": "did:example:123"}, "InvalidRequest"),
        ({"aud": "did:web:x.com", "lxm": "not an nsid"}, "InvalidRequest"),
        ({"aud": "did:web:x.com", "exp": "1"}, "BadExpiration"),
        ({"aud": "did:web:x.com", "lxm": "a.b.c", "exp": "+7200"}, "BadExpiration"),
        ({"aud": "did:web:x.com", "exp": "+120"}, "BadExpiration"),
        ({"aud": "did:web:x.com", "exp": "soon"}, "InvalidRequest"),
        ({"aud": "did:web:x.com", "lxm": nsids.SERVER_GET_SESSION}, "InvalidRequest"),
        ({"aud": "did:web:x.com", "lxm": nsids.IDENTITY_UPDATE_HANDLE}, "InvalidRequest"),
        ({}, "InvalidRequest"),
    ],
)
async def test_get_service_auth_refusals(
    xrpc: Xrpc, new_account: NewAccount, params: dict[str, str], error: str
) -> None:
    account = new_account()
    if params.get("exp", "").startswith("+"):
        params = {**params, "exp": str(int(time.time()) + int(params["exp"][1:]))}
    reply = await xrpc.query(
        nsids.SERVER_GET_SERVICE_AUTH, params, headers=bearer(account.access_jwt)
    )
    assert (reply.status, reply.error) == (400, error), reply.body


async def test_privileged_methods_need_a_privileged_session(
    xrpc: Xrpc, new_account: NewAccount
) -> None:
    account = new_account()
    tokens = {}
    for privileged in (False, True):
        name = f"p{privileged}"
        created = (
            await xrpc.procedure(
                nsids.SERVER_CREATE_APP_PASSWORD,
                {"name": name, "privileged": privileged},
                headers=bearer(account.access_jwt),
            )
        ).ok()
        assert created["privileged"] is privileged
        tokens[privileged] = (await xrpc.login(account.handle, created["password"])).ok()
    params = {"aud": "did:web:x.com", "lxm": nsids.SERVER_CREATE_ACCOUNT}
    plain = await xrpc.query(
        nsids.SERVER_GET_SERVICE_AUTH, params, headers=bearer(tokens[False]["accessJwt"])
    )
    assert (plain.status, plain.error) == (400, "InvalidRequest")
    allowed = await xrpc.query(
        nsids.SERVER_GET_SERVICE_AUTH, params, headers=bearer(tokens[True]["accessJwt"])
    )
    assert allowed.ok()["token"]
    listed = (
        await xrpc.query(nsids.SERVER_LIST_APP_PASSWORDS, headers=bearer(account.access_jwt))
    ).ok()
    assert {(p["name"], p["privileged"]) for p in listed["passwords"]} == {
        ("pFalse", False),
        ("pTrue", True),
    }
    duplicate = await xrpc.procedure(
        nsids.SERVER_CREATE_APP_PASSWORD, {"name": "pTrue"}, headers=bearer(account.access_jwt)
    )
    assert duplicate.status == 400


async def test_upload_blob_accepts_a_service_jwt_from_the_account(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    service_did = pds_stack.settings.service_did

    async def mint(lxm: str) -> str:
        reply = await xrpc.query(
            nsids.SERVER_GET_SERVICE_AUTH,
            {"aud": service_did, "lxm": lxm},
            headers=bearer(account.access_jwt),
        )
        token: str = reply.ok()["token"]
        return token

    def upload(token: str) -> Awaitable[Reply]:
        return xrpc.request(
            "POST",
            nsids.xrpc_path(nsids.REPO_UPLOAD_BLOB),
            data=b"hello blob",
            headers={**bearer(token), "Content-Type": "text/plain"},
        )

    accepted = await upload(await mint(nsids.REPO_UPLOAD_BLOB))
    assert accepted.ok()["blob"]["size"] == len(b"hello blob")
    wrong_method = await upload(await mint(nsids.REPO_CREATE_RECORD))
    assert (wrong_method.status, wrong_method.error) == (401, "BadJwtLexiconMethod")
    foreign = create_service_jwt(
        keypair=K256Keypair.generate(), iss=account.did, aud=service_did, lxm=nsids.REPO_UPLOAD_BLOB
    )
    forged = await upload(foreign)
    assert (forged.status, forged.error) == (401, "BadJwtSignature")


# -- deletion ---------------------------------------------------------------------------------
def _deletion_code(caplog: pytest.LogCaptureFixture, email: str) -> str:
    for record in reversed(caplog.records):
        message = record.getMessage()
        if record.name == "pds.mailer" and f"account deletion code for {email}:" in message:
            found = re.search(r"([A-Z2-7]{5}-[A-Z2-7]{5})$", message)
            assert found is not None, message
            return found.group(1)
    raise AssertionError("no deletion code was mailed")


async def test_delete_account_flow(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = new_account()
    blob_cid = await _store_a_blob_in_a_record(xrpc, account)
    assert await _blob_exists(pds_stack, account.did, blob_cid)
    caplog.set_level(logging.WARNING, logger="pds.mailer")
    requested = await xrpc.procedure(
        nsids.SERVER_REQUEST_ACCOUNT_DELETE, headers=bearer(account.access_jwt)
    )
    assert requested.status == 200, requested.body
    code = _deletion_code(caplog, account.email)

    def attempt(password: str, token: str) -> dict[str, str]:
        return {"did": account.did, "password": password, "token": token}

    wrong_code = await xrpc.procedure(
        nsids.SERVER_DELETE_ACCOUNT, attempt(account.password, "AAAA-BBBB-CCCC-DDDD")
    )
    assert (wrong_code.status, wrong_code.error) == (400, "InvalidToken")
    wrong_password = await xrpc.procedure(nsids.SERVER_DELETE_ACCOUNT, attempt("nope", code))
    assert (wrong_password.status, wrong_password.error) == (401, "AuthenticationRequired")

    done = await xrpc.procedure(nsids.SERVER_DELETE_ACCOUNT, attempt(account.password, code))
    assert done.status == 200, done.body
    login = await xrpc.login(account.handle, account.password)
    assert (login.status, login.error) == (401, "AuthenticationRequired")
    gone = await xrpc.query(nsids.IDENTITY_RESOLVE_HANDLE, {"handle": account.handle})
    assert gone.error == "HandleNotFound"
    events = await account_events(pds_stack, account.did)
    assert events == [("account", events[0][1])]
    assert (events[0][1]["active"], events[0][1]["status"]) == (False, "deleted")
    db = Database(pds_stack.settings.sqlite_path)
    try:
        async with db.read() as conn:
            assert await repo_sql.get_root(conn, account.did) is None
    finally:
        await db.close()
    again = await xrpc.procedure(nsids.SERVER_DELETE_ACCOUNT, attempt(account.password, code))
    assert again.status == 400
    assert not await _blob_exists(pds_stack, account.did, blob_cid)


async def _blob_exists(stack: Stack, did: str, cid: str) -> bool:
    """Ask the PDS's blob store directly (not through the API, which checks the account)."""
    store = blobstore_from_config(
        BlobStoreConfig.from_env(
            stack.settings.blobstore_env,
            default_disk_location=stack.settings.blobstore_disk_location,
        )
    )
    try:
        return await store.exists(did, CID.parse(cid))
    finally:
        await store.close()


async def _store_a_blob_in_a_record(xrpc: Xrpc, account: LiveAccount) -> str:
    """Upload a blob and reference it from a record (so it is permanent); returns its CID."""
    uploaded = await xrpc.request(
        "POST",
        nsids.xrpc_path(nsids.REPO_UPLOAD_BLOB),
        data=b"GIF89a-not-really-but-bytes",
        headers={**bearer(account.access_jwt), "Content-Type": "image/gif"},
    )
    blob = uploaded.ok()["blob"]
    record = {"$type": "com.example.thing", "image": blob}
    body = {"repo": account.did, "collection": "com.example.thing", "record": record}
    created = await xrpc.procedure(
        nsids.REPO_CREATE_RECORD, body, headers=bearer(account.access_jwt)
    )
    assert created.status == 200, created.body
    cid: str = blob["ref"]["$link"]
    return cid


async def test_deletion_races_with_writes_without_deadlock_or_debris(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    bystander, victim = new_account(), new_account()

    def create(account: LiveAccount, i: int) -> Awaitable[Reply]:
        record = {"$type": "com.example.thing", "i": i}
        body = {"repo": account.did, "collection": "com.example.thing", "record": record}
        return xrpc.procedure(nsids.REPO_CREATE_RECORD, body, headers=bearer(account.access_jwt))

    async def delete() -> Reply:
        await asyncio.sleep(0.01)
        return await xrpc.procedure(
            nsids.ADMIN_DELETE_ACCOUNT, {"did": victim.did}, headers=_admin(pds_stack)
        )

    calls = [create(bystander, i) for i in range(30)] + [create(victim, i) for i in range(30)]
    replies = await asyncio.wait_for(asyncio.gather(delete(), *calls), timeout=20)
    assert replies[0].status == 200
    assert all(reply.status == 200 for reply in replies[1:31])
    victim_statuses = {reply.status for reply in replies[31:]}
    # Writes that lost the race are refused (403 AccountNotFound, or 400 RepoNotFound).
    assert victim_statuses <= {200, 400, 403}, [r.body for r in replies[31:]]
    db = Database(pds_stack.settings.sqlite_path)
    try:
        async with db.read() as conn:
            assert await repo_sql.get_root(conn, victim.did) is None
            assert await repo_sql.list_collections(conn, victim.did) == []
    finally:
        await db.close()


async def test_request_account_delete_needs_an_email(xrpc: Xrpc, pds_stack: Stack) -> None:
    handle = f"{unique_name('nomail')}.test"
    created = (
        await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, {"handle": handle, "password": "pw"})
    ).ok()
    reply = await xrpc.procedure(
        nsids.SERVER_REQUEST_ACCOUNT_DELETE, headers=bearer(created["accessJwt"])
    )
    assert (reply.status, reply.error) == (400, "InvalidRequest")


# -- admin ------------------------------------------------------------------------------------
def _admin(stack: Stack) -> dict[str, str]:
    return {"Authorization": stack.admin_authorization}


async def test_admin_needs_the_admin_password(xrpc: Xrpc, new_account: NewAccount) -> None:
    account = new_account()
    for headers in ({}, basic("admin", "wrong"), basic("root", "x"), bearer(account.access_jwt)):
        reply = await xrpc.query(
            nsids.ADMIN_GET_ACCOUNT_INFO, {"did": account.did}, headers=headers
        )
        assert (reply.status, reply.error) == (401, "AuthenticationRequired"), headers


async def test_admin_account_info(xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account()
    info = (
        await xrpc.query(
            nsids.ADMIN_GET_ACCOUNT_INFO, {"did": account.did}, headers=_admin(pds_stack)
        )
    ).ok()
    assert (info["did"], info["handle"], info["email"]) == (
        account.did,
        account.handle,
        account.email,
    )
    assert info["indexedAt"].endswith("Z")
    missing = await xrpc.query(
        nsids.ADMIN_GET_ACCOUNT_INFO,
        {"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"},
        headers=_admin(pds_stack),
    )
    assert (missing.status, missing.error) == (400, "NotFound")


async def test_takedown_blocks_logins_and_sessions(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    subject = {"$type": nsids.ADMIN_DEFS_REPO_REF, "did": account.did}

    async def takedown(applied: bool) -> None:
        body = {"subject": subject, "takedown": {"applied": applied, "ref": "case-1"}}
        reply = await xrpc.procedure(
            nsids.ADMIN_UPDATE_SUBJECT_STATUS, body, headers=_admin(pds_stack)
        )
        assert reply.ok()["subject"] == subject

    await takedown(True)
    login = await xrpc.login(account.handle, account.password)
    assert (login.status, login.error) == (401, "AccountTakedown")
    refresh = await xrpc.procedure(
        nsids.SERVER_REFRESH_SESSION, headers=bearer(account.refresh_jwt)
    )
    assert (refresh.status, refresh.error) == (401, "AccountTakedown")
    status = (
        await xrpc.query(
            nsids.ADMIN_GET_SUBJECT_STATUS, {"did": account.did}, headers=_admin(pds_stack)
        )
    ).ok()
    assert status["takedown"] == {"applied": True, "ref": "case-1"}
    assert status["subject"] == {"$type": nsids.ADMIN_DEFS_REPO_REF, "did": account.did}
    restricted = (
        await xrpc.procedure(
            nsids.SERVER_CREATE_SESSION,
            {"identifier": account.handle, "password": account.password, "allowTakendown": True},
        )
    ).ok()
    assert jwt_claims(restricted["accessJwt"])["scope"] == "com.atproto.takendown"
    assert restricted["status"] == "takendown"
    events = await account_events(pds_stack, account.did)
    assert (events[-1][1]["active"], events[-1][1]["status"]) == (False, "takendown")

    await takedown(False)
    assert (await xrpc.login(account.handle, account.password)).status == 200
    # The takedown ended the sessions it found: the old refresh token stays dead.
    refresh = await xrpc.procedure(
        nsids.SERVER_REFRESH_SESSION, headers=bearer(account.refresh_jwt)
    )
    assert (refresh.status, refresh.error) == (400, "ExpiredToken")
    assert (await account_events(pds_stack, account.did))[-1][1]["active"] is True


async def test_admin_updates_password_and_handle(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    reply = await xrpc.procedure(
        nsids.ADMIN_UPDATE_ACCOUNT_PASSWORD,
        {"did": account.did, "password": "brand-new"},
        headers=_admin(pds_stack),
    )
    assert reply.status == 200
    assert (await xrpc.login(account.handle, account.password)).status == 401
    assert (await xrpc.login(account.handle, "brand-new")).status == 200
    reply = await xrpc.procedure(
        nsids.ADMIN_UPDATE_ACCOUNT_HANDLE,
        {"did": account.did, "handle": "support.test"},
        headers=_admin(pds_stack),
    )
    assert reply.status == 200, reply.body
    resolved = await xrpc.query(nsids.IDENTITY_RESOLVE_HANDLE, {"handle": "support.test"})
    assert resolved.ok()["did"] == account.did


async def test_admin_delete_account(xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account()
    reply = await xrpc.procedure(
        nsids.ADMIN_DELETE_ACCOUNT, {"did": account.did}, headers=_admin(pds_stack)
    )
    assert reply.status == 200
    assert (await xrpc.login(account.handle, account.password)).status == 401


# -- invites ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def invite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    path: Path = tmp_path_factory.mktemp("invites")
    with start_stack(path, PDS_INVITE_REQUIRED="true") as stack:
        yield stack


async def test_invite_codes_when_required(invite_stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        xrpc = Xrpc(http, invite_stack)
        described = (await xrpc.query(nsids.SERVER_DESCRIBE_SERVER)).ok()
        assert described["inviteCodeRequired"] is True

        def signup(code: str | None) -> dict[str, str]:
            body = {"handle": f"{unique_name('inv')}.test", "password": "pw"}
            return body if code is None else {**body, "inviteCode": code}

        missing = await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, signup(None))
        assert (missing.status, missing.error) == (400, "InvalidInviteCode")
        unknown = await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, signup("nope-aaaaa-bbbbb"))
        assert (unknown.status, unknown.error) == (400, "InvalidInviteCode")
        forbidden = await xrpc.procedure(nsids.SERVER_CREATE_INVITE_CODE, {"useCount": 1})
        assert forbidden.status == 401
        code = (
            await xrpc.procedure(
                nsids.SERVER_CREATE_INVITE_CODE,
                {"useCount": 1},
                headers={"Authorization": invite_stack.admin_authorization},
            )
        ).ok()["code"]
        assert re.fullmatch(r"localhost-[a-z2-7]{5}-[a-z2-7]{5}", code)
        (await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, signup(code))).ok()
        used_up = await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, signup(code))
        assert (used_up.status, used_up.error) == (400, "InvalidInviteCode")


async def test_takedown_without_a_ref_is_tagged_with_its_time(
    xrpc: Xrpc, pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    subject = {"$type": nsids.ADMIN_DEFS_REPO_REF, "did": account.did}
    body = {"subject": subject, "takedown": {"applied": True}}
    reply = await xrpc.procedure(nsids.ADMIN_UPDATE_SUBJECT_STATUS, body, headers=_admin(pds_stack))
    assert reply.status == 200, reply.body
    status = (
        await xrpc.query(
            nsids.ADMIN_GET_SUBJECT_STATUS, {"did": account.did}, headers=_admin(pds_stack)
        )
    ).ok()
    assert status["takedown"]["applied"] is True
    assert is_valid_datetime(status["takedown"]["ref"])
