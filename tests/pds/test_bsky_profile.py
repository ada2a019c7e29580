"""app.bsky.actor.getProfile / getProfiles: answered by the PDS for local accounts when no AppView
knows them, relayed otherwise. Local answers are checked against the published lexicon."""

from __future__ import annotations

import struct
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from atproto import Client, models

from atcore import nsids
from atcore.datajson import json_to_data
from atcore.lexicon import Catalog
from tests.pds.bsky_support import FakeService, Reply, call
from tests.pds.stack import LiveAccount, Stack, create_account, start_stack
from tests.test_lexicons import LEXICON_DIR

NewAccount = Callable[..., LiveAccount]
PROFILE_VIEW = "app.bsky.actor.defs#profileViewDetailed"


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_directory(LEXICON_DIR)


def get_profile(stack: Stack, viewer: LiveAccount, actor: str) -> Reply:
    return call(
        stack.xrpc(nsids.BSKY_ACTOR_GET_PROFILE) + f"?actor={quote(actor)}", headers=viewer.bearer
    )


def get_profiles(stack: Stack, viewer: LiveAccount, *actors: str) -> Reply:
    query = "&".join(f"actors={quote(actor)}" for actor in actors)
    return call(stack.xrpc(nsids.BSKY_ACTOR_GET_PROFILES) + f"?{query}", headers=viewer.bearer)


def put_profile(stack: Stack, account: LiveAccount, record: dict[str, Any]) -> None:
    reply = call(
        stack.xrpc(nsids.REPO_PUT_RECORD),
        method="POST",
        headers=account.bearer,
        body={
            "repo": account.did,
            "collection": nsids.BSKY_ACTOR_PROFILE,
            "rkey": "self",
            "record": {"$type": nsids.BSKY_ACTOR_PROFILE, **record},
        },
    )
    assert reply.status == 200, reply


def assert_profile_view(catalog: Catalog, view: Any) -> None:
    catalog.validate_value(PROFILE_VIEW, json_to_data(view))


# -- without an AppView ----------------------------------------------------------------------------
@pytest.fixture
def sdk_client(pds_stack: Stack) -> Iterator[Client]:
    client = Client(base_url=pds_stack.pds_url)
    yield client
    client.request.close()


# The SDK's blob upload trips an httpx deprecation warning of its own; nothing else may warn.
@pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")
def test_sdk_login_gets_the_profile_offline(
    pds_stack: Stack, new_account: NewAccount, sdk_client: Client, catalog: Catalog
) -> None:
    account = new_account("sdkprof")
    me = sdk_client.login(account.handle, account.password)  # warnings fail the test
    assert me is not None
    assert me.did == account.did
    assert me.handle == account.handle
    assert me.display_name is None

    avatar = sdk_client.upload_blob(tiny_png()).blob
    sdk_client.com.atproto.repo.put_record(
        models.ComAtprotoRepoPutRecord.Data(
            repo=account.did,
            collection=nsids.BSKY_ACTOR_PROFILE,
            rkey="self",
            record=models.AppBskyActorProfile.Record(
                display_name="Skyspot Tester",
                description="checks in everywhere",
                avatar=avatar,
                created_at="2024-05-01T12:00:00.000Z",
            ),
        )
    )
    profile = sdk_client.get_profile(account.handle)
    assert profile.did == account.did
    assert profile.display_name == "Skyspot Tester"
    assert profile.description == "checks in everywhere"
    assert profile.created_at == "2024-05-01T12:00:00.000Z"
    with urllib.request.urlopen(profile.avatar, timeout=10) as response:
        assert response.read() == tiny_png()

    raw = get_profile(pds_stack, account, account.did)
    assert raw.status == 200, raw
    assert_profile_view(catalog, raw.json())


def test_local_profile_shows_self_labels_and_pinned_post(
    pds_stack: Stack, new_account: NewAccount, catalog: Catalog
) -> None:
    account = new_account("labels")
    pinned = {
        "uri": f"at://{account.did}/{nsids.BSKY_FEED_POST}/3jwdwj2ctlk26",
        "cid": "bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454",
    }
    put_profile(
        pds_stack,
        account,
        {
            "labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "bot"}]},
            "pinnedPost": pinned,
        },
    )
    view = get_profile(pds_stack, account, account.handle).json()
    assert_profile_view(catalog, view)
    assert view["pinnedPost"] == pinned
    assert [(label["src"], label["val"]) for label in view["labels"]] == [(account.did, "bot")]
    assert view["labels"][0]["uri"] == f"at://{account.did}/{nsids.BSKY_ACTOR_PROFILE}/self"


def test_profiles_of_several_local_accounts(
    pds_stack: Stack, new_account: NewAccount, catalog: Catalog
) -> None:
    alice, bob = new_account("alice"), new_account("bob")
    put_profile(pds_stack, bob, {"displayName": "Bob"})
    reply = get_profiles(
        pds_stack, alice, bob.handle, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", alice.did
    )
    assert reply.status == 200, reply
    profiles = reply.json()["profiles"]
    assert [p["did"] for p in profiles] == [bob.did, alice.did]
    assert profiles[0]["displayName"] == "Bob"
    for profile in profiles:
        assert_profile_view(catalog, profile)


def test_unknown_actor_without_an_appview(pds_stack: Stack, new_account: NewAccount) -> None:
    reply = get_profile(pds_stack, new_account(), "someone.bsky.social")
    assert reply.status == 400, reply
    assert "No service configured" in reply.json()["message"]


def test_deactivated_accounts_are_not_shown(pds_stack: Stack, new_account: NewAccount) -> None:
    viewer, gone = new_account("viewer"), new_account("gone")
    deactivated = call(
        pds_stack.xrpc(nsids.SERVER_DEACTIVATE_ACCOUNT), method="POST", headers=gone.bearer, body={}
    )
    assert deactivated.status == 200, deactivated
    reply = get_profile(pds_stack, viewer, gone.did)
    assert reply.status == 400, reply
    assert reply.json()["error"] == "AccountDeactivated"
    assert get_profiles(pds_stack, viewer, gone.did, viewer.did).json()["profiles"][0]["did"] == (
        viewer.did
    )


def test_profile_parameters_are_checked(pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account()
    for query in ("", "?actor=not%20an%20identifier"):
        reply = call(pds_stack.xrpc(nsids.BSKY_ACTOR_GET_PROFILE) + query, headers=account.bearer)
        assert reply.status == 400, reply
        assert "actor" in reply.json()["message"]


# -- with an AppView -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def appview() -> Iterator[FakeService]:
    service = FakeService().start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, appview: FakeService) -> Iterator[Stack]:
    env = {"PDS_BSKY_APP_VIEW_URL": appview.url, "PDS_BSKY_APP_VIEW_DID": appview.did}
    with start_stack(tmp_path_factory.mktemp("profile-stack"), **env) as running:
        yield running


def appview_profile(account: LiveAccount) -> dict[str, Any]:
    return {
        "did": account.did,
        "handle": account.handle,
        "displayName": "From the AppView",
        "followersCount": 12,
    }


def test_the_appview_answers_for_accounts_it_knows(stack: Stack, appview: FakeService) -> None:
    viewer, known = create_account(stack, "viewer"), create_account(stack, "known")
    appview.profiles[known.did] = appview_profile(known)
    put_profile(stack, known, {"displayName": "Local name"})
    reply = get_profile(stack, viewer, known.did)
    assert reply.status == 200, reply
    assert reply.json() == appview_profile(known)
    assert appview.last(nsids.BSKY_ACTOR_GET_PROFILE).query == [("actor", known.did)]


def test_local_answer_when_the_appview_does_not_know_the_account(
    stack: Stack, appview: FakeService, catalog: Catalog
) -> None:
    fresh = create_account(stack, "fresh")
    put_profile(stack, fresh, {"displayName": "Brand new"})
    before = len(appview.requests_for(nsids.BSKY_ACTOR_GET_PROFILE))
    reply = get_profile(stack, fresh, fresh.handle)
    assert reply.status == 200, reply
    assert reply.json()["displayName"] == "Brand new"
    assert_profile_view(catalog, reply.json())
    assert len(appview.requests_for(nsids.BSKY_ACTOR_GET_PROFILE)) == before + 1


def test_appview_not_found_is_relayed_for_remote_accounts(stack: Stack) -> None:
    viewer = create_account(stack, "viewer")
    reply = get_profile(stack, viewer, "stranger.example.com")
    assert reply.status == 400, reply
    assert reply.json() == {"error": "InvalidRequest", "message": "Profile not found"}


def test_get_profiles_adds_local_accounts_the_appview_left_out(
    stack: Stack, appview: FakeService
) -> None:
    known, fresh = create_account(stack, "known"), create_account(stack, "fresh")
    appview.profiles[known.did] = appview_profile(known)
    reply = get_profiles(stack, known, fresh.did, known.did, "stranger.example.com")
    assert reply.status == 200, reply
    profiles = reply.json()["profiles"]
    assert profiles[0] == appview_profile(known)
    assert [p["did"] for p in profiles] == [known.did, fresh.did]
    assert appview.last(nsids.BSKY_ACTOR_GET_PROFILES).query == [
        ("actors", fresh.did),
        ("actors", known.did),
        ("actors", "stranger.example.com"),
    ]
