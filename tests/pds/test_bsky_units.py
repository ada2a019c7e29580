"""The pieces of the app.bsky side on their own: preference SQL, proxy-header parsing, target
checks, encoding negotiation, preference policy and the local profile view."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from atcore.cid import CID
from atcore.identity.resolver import DidResolver
from atcore.syntax import Did
from atcore.xrpc import InvalidRequest
from pds.api.bsky.preferences import (
    DECLARED_AGE_PREF,
    PERSONAL_DETAILS_PREF,
    visible_preferences,
    writable_preferences,
)
from pds.api.bsky.profile import profile_view
from pds.db.accounts import AccountRow
from pds.db.engine import Database
from pds.db.prefs import in_namespace, read_preferences, replace_preferences
from pds.proxy import (
    ProxyConfig,
    PublicAddressResolver,
    ServiceProxy,
    parse_proxy_header,
    proxy_config,
    readable_accept_encoding,
)
from pds.settings import PdsSettings, SettingsError
from tests.pds.bsky_support import FakeService

ALICE = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
BOB = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"


# -- preference SQL -------------------------------------------------------------------------------
def pref(kind: str, **fields: Any) -> dict[str, Any]:
    return {"$type": f"app.bsky.actor.defs#{kind}", **fields}


async def test_replace_then_read_keeps_order(db: Database) -> None:
    written = [pref("b", n=1), pref("a", n=2), pref("c", text="olá")]
    async with db.transaction() as conn:
        await replace_preferences(conn, ALICE, written, namespace="app.bsky")
    async with db.read() as conn:
        assert await read_preferences(conn, ALICE, namespace="app.bsky") == written
        assert await read_preferences(conn, BOB, namespace="app.bsky") == []


async def test_replace_touches_one_namespace_and_one_account(db: Database) -> None:
    other = {"$type": "com.example.pref", "x": True}
    async with db.transaction() as conn:
        await replace_preferences(conn, ALICE, [other], namespace="com.example")
        await replace_preferences(conn, ALICE, [pref("a")], namespace="app.bsky")
        await replace_preferences(conn, BOB, [pref("b")], namespace="app.bsky")
        await replace_preferences(conn, ALICE, [pref("c")], namespace="app.bsky")
    async with db.read() as conn:
        assert await read_preferences(conn, ALICE, namespace="app.bsky") == [pref("c")]
        assert await read_preferences(conn, ALICE, namespace="com.example") == [other]
        assert await read_preferences(conn, BOB, namespace="app.bsky") == [pref("b")]


async def test_replace_preserves_the_named_types(db: Database) -> None:
    kept = pref("kept", v=1)
    async with db.transaction() as conn:
        await replace_preferences(conn, ALICE, [pref("x"), kept, pref("y")], namespace="app.bsky")
        await replace_preferences(
            conn, ALICE, [pref("z")], namespace="app.bsky", preserve=[kept["$type"]]
        )
    async with db.read() as conn:
        assert await read_preferences(conn, ALICE, namespace="app.bsky") == [kept, pref("z")]


async def test_failed_transaction_leaves_preferences_alone(db: Database) -> None:
    async with db.transaction() as conn:
        await replace_preferences(conn, ALICE, [pref("a")], namespace="app.bsky")

    async def replace_then_fail() -> None:
        async with db.transaction() as conn:
            await replace_preferences(conn, ALICE, [pref("b")], namespace="app.bsky")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await replace_then_fail()
    async with db.read() as conn:
        assert await read_preferences(conn, ALICE, namespace="app.bsky") == [pref("a")]


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("app.bsky", True),
        ("app.bsky.actor.defs#adultContentPref", True),
        ("app.bskyx.pref", False),
        ("app.bsk", False),
        ("com.example.app.bsky", False),
    ],
)
def test_in_namespace(name: str, inside: bool) -> None:
    assert in_namespace(name, "app.bsky") is inside


# -- preference policy ----------------------------------------------------------------------------
def test_writable_preferences_drop_the_derived_age() -> None:
    written = [pref("a"), {"$type": DECLARED_AGE_PREF, "isOverAge13": True}]
    assert writable_preferences(written, full_access=True) == [pref("a")]


def test_writable_preferences_need_full_access_for_personal_details() -> None:
    personal = {"$type": PERSONAL_DETAILS_PREF, "birthDate": "2000-01-01T00:00:00Z"}
    assert writable_preferences([personal], full_access=True) == [personal]
    with pytest.raises(InvalidRequest, match="Do not have authorization"):
        writable_preferences([personal], full_access=False)


def test_visible_preferences_ignore_unreadable_birth_dates() -> None:
    personal = {"$type": PERSONAL_DETAILS_PREF, "birthDate": "sometime"}
    shown = visible_preferences([personal], full_access=True, today=date(2024, 1, 1))
    assert shown == [personal]
    assert visible_preferences([personal], full_access=False, today=date(2024, 1, 1)) == []


# -- proxy headers and targets --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "did", "service"),
    [
        ("did:web:api.bsky.app#bsky_appview", "did:web:api.bsky.app", "bsky_appview"),
        ("did:plc:ewvi7nxzyoun6zhxrhs64oiz#atproto_labeler", ALICE, "atproto_labeler"),
    ],
)
def test_parse_proxy_header(header: str, did: str, service: str) -> None:
    assert parse_proxy_header(header) == (did, service)


@pytest.mark.parametrize(
    "header",
    ["", "#svc", "did:web:a.com", "did:web:a.com#", "did:web:a.com#x#y", "did:web:a .com#x", "x#y"],
)
def test_parse_proxy_header_rejects(header: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_proxy_header(header)


@pytest.mark.parametrize(
    ("client", "forwarded"),
    [
        (None, "identity"),
        ("", "identity"),
        ("gzip, deflate, br", "gzip, deflate"),
        ("br;q=1.0, zstd", "identity"),
        ("GZIP;q=0.8, identity;q=0.1", "GZIP;q=0.8, identity;q=0.1"),
    ],
)
def test_readable_accept_encoding(client: str | None, forwarded: str) -> None:
    assert readable_accept_encoding(client) == forwarded


async def test_public_address_resolver_refuses_loopback() -> None:
    resolver = PublicAddressResolver()
    try:
        with pytest.raises(OSError, match="public address"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeService]:
    service = FakeService().start()
    yield service
    service.stop()


@pytest.mark.parametrize("allow_private", [True, False])
async def test_untrusted_targets_must_be_public_https(
    fake: FakeService, allow_private: bool
) -> None:
    resolver = DidResolver(allow_http_loopback=True)
    proxy = ServiceProxy(ProxyConfig(allow_private_targets=allow_private), resolver)
    try:
        header = f"{fake.did}#bsky_appview"
        if allow_private:
            target = await proxy.target_from_header(header)
            assert (target.did, target.service_id, target.url) == (
                fake.did,
                "bsky_appview",
                fake.url,
            )
            assert not target.trusted
        else:
            with pytest.raises(InvalidRequest, match="https"):
                await proxy.target_from_header(header)
    finally:
        await proxy.close()
        await resolver.aclose()


def dev_settings(tmp_path: Path, **env: str) -> PdsSettings:
    return PdsSettings.from_env(
        {"PDS_DEV_MODE": "true", "PDS_DATA_DIRECTORY": str(tmp_path), **env}
    )


def test_proxy_limits_default_to_the_references(tmp_path: Path) -> None:
    config = proxy_config(dev_settings(tmp_path))
    assert (config.headers_timeout, config.body_timeout) == (10.0, 30.0)
    assert config.max_response_size == 10 * 1024 * 1024


def test_proxy_limits_come_from_the_environment(tmp_path: Path) -> None:
    settings = dev_settings(
        tmp_path,
        PDS_PROXY_HEADERS_TIMEOUT="1500",
        PDS_PROXY_BODY_TIMEOUT="2500",
        PDS_PROXY_MAX_RESPONSE_SIZE="4096",
    )
    config = proxy_config(settings)
    assert (config.headers_timeout, config.body_timeout) == (1.5, 2.5)
    assert config.max_response_size == 4096


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PDS_PROXY_HEADERS_TIMEOUT", "0"),
        ("PDS_PROXY_BODY_TIMEOUT", "-1"),
        ("PDS_PROXY_MAX_RESPONSE_SIZE", "ten"),
    ],
)
def test_nonsense_proxy_limits_are_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        dev_settings(tmp_path, **{name: value})


async def test_the_configured_appview_is_taken_from_configuration() -> None:
    appview = ProxyConfig.appview_target("https://appview.example/", "did:web:appview.example")
    assert appview is not None
    resolver = DidResolver()
    proxy = ServiceProxy(ProxyConfig(appview=appview), resolver)
    try:
        # No DID lookup happens: did:web:appview.example does not exist.
        assert await proxy.target_from_header("did:web:appview.example#bsky_appview") == appview
        assert appview.url == "https://appview.example"
        assert appview.trusted
    finally:
        await proxy.close()
        await resolver.aclose()


# -- local profile view ---------------------------------------------------------------------------
def account_row(handle: str | None) -> AccountRow:
    return AccountRow(
        did=Did(ALICE),
        handle=handle,
        email=None,
        password_scrypt="x",
        signing_key=b"",
        created_at=1_700_000_000_000,
        email_confirmed_at=None,
        deactivated_at=None,
        delete_after=None,
        takedown_ref=None,
        invites_disabled=False,
    )


def test_profile_view_without_a_record() -> None:
    view = profile_view(account_row(None), None, record_cid=None, public_url="http://pds.test")
    assert view == {
        "did": ALICE,
        "handle": "handle.invalid",
        "createdAt": "2023-11-14T22:13:20.000Z",
        "labels": [],
    }


def test_profile_view_from_a_record() -> None:
    blob_cid = CID.parse("bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy")
    record = {
        "$type": "app.bsky.actor.profile",
        "displayName": "Alice",
        "description": 42,  # wrong type: left out rather than passed on
        "avatar": {"$type": "blob", "ref": blob_cid, "mimeType": "image/png", "size": 10},
        "banner": {"not": "a blob"},
        "createdAt": "not a date",
    }
    view = profile_view(
        account_row("alice.test"), record, record_cid="bafyrei", public_url="http://pds.test"
    )
    assert view["displayName"] == "Alice"
    assert "description" not in view
    assert "banner" not in view
    assert view["avatar"] == (
        "http://pds.test/xrpc/com.atproto.sync.getBlob"
        f"?did=did%3Aplc%3Aewvi7nxzyoun6zhxrhs64oiz&cid={blob_cid}"
    )
    assert view["createdAt"] == "2023-11-14T22:13:20.000Z"
