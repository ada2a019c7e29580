"""app.bsky.actor.getPreferences / putPreferences on a real PDS (no AppView configured)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest

from atcore import nsids
from pds.api.bsky.preferences import age_on
from tests.pds.bsky_support import Reply, call
from tests.pds.stack import LiveAccount, Stack

ADULT = {"$type": "app.bsky.actor.defs#adultContentPref", "enabled": True}
SAVED_FEEDS = {
    "$type": "app.bsky.actor.defs#savedFeedsPrefV2",
    "items": [{"id": "3l6home", "type": "timeline", "value": "following", "pinned": True}],
}
MUTED = {
    "$type": "app.bsky.actor.defs#mutedWordsPref",
    "items": [{"value": "spoilers", "targets": ["content", "tag"]}],
}
LABEL = {"$type": "app.bsky.actor.defs#contentLabelPref", "label": "nudity", "visibility": "warn"}
PERSONAL = "app.bsky.actor.defs#personalDetailsPref"
DECLARED_AGE = "app.bsky.actor.defs#declaredAgePref"

NewAccount = Callable[..., LiveAccount]


def put(stack: Stack, headers: dict[str, str], preferences: Any) -> Reply:
    return call(
        stack.xrpc(nsids.BSKY_ACTOR_PUT_PREFERENCES),
        method="POST",
        headers=headers,
        body={"preferences": preferences},
    )


def get(stack: Stack, headers: dict[str, str]) -> list[dict[str, Any]]:
    reply = call(stack.xrpc(nsids.BSKY_ACTOR_GET_PREFERENCES), headers=headers)
    assert reply.status == 200, reply
    preferences = reply.json()["preferences"]
    assert isinstance(preferences, list)
    return preferences


def app_password_headers(stack: Stack, account: LiveAccount) -> dict[str, str]:
    created = call(
        stack.xrpc(nsids.SERVER_CREATE_APP_PASSWORD),
        method="POST",
        headers=account.bearer,
        body={"name": "prefs-app"},
    )
    assert created.status == 200, created
    session = call(
        stack.xrpc(nsids.SERVER_CREATE_SESSION),
        method="POST",
        body={"identifier": account.handle, "password": created.json()["password"]},
    )
    assert session.status == 200, session
    return {"Authorization": f"Bearer {session.json()['accessJwt']}"}


def years_ago(years: int, *, days_later: int = 0, today: date | None = None) -> str:
    """A birth date `years` before today (plus `days_later` days), as a datetime string."""
    today = today or date.today()
    try:
        born = today.replace(year=today.year - years)
    except ValueError:  # 29 February in a common year
        born = today.replace(year=today.year - years, day=28)
    return f"{(born + timedelta(days=days_later)).isoformat()}T00:00:00.000Z"


# -- round trips --------------------------------------------------------------------------------
def test_new_account_has_no_preferences(pds_stack: Stack, new_account: NewAccount) -> None:
    assert get(pds_stack, new_account().bearer) == []


def test_round_trip_keeps_values_and_order(pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account()
    written = [SAVED_FEEDS, ADULT, MUTED, LABEL]
    reply = put(pds_stack, account.bearer, written)
    assert reply.status == 200, reply
    assert get(pds_stack, account.bearer) == written


def test_put_replaces_everything(pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account()
    assert put(pds_stack, account.bearer, [ADULT, MUTED, LABEL]).status == 200
    assert put(pds_stack, account.bearer, [LABEL]).status == 200
    assert get(pds_stack, account.bearer) == [LABEL]
    assert put(pds_stack, account.bearer, []).status == 200
    assert get(pds_stack, account.bearer) == []


def test_preferences_belong_to_one_account(pds_stack: Stack, new_account: NewAccount) -> None:
    alice, bob = new_account("alice"), new_account("bob")
    assert put(pds_stack, alice.bearer, [ADULT]).status == 200
    assert put(pds_stack, bob.bearer, [MUTED]).status == 200
    assert get(pds_stack, alice.bearer) == [ADULT]
    assert get(pds_stack, bob.bearer) == [MUTED]


def test_unknown_app_bsky_preference_types_are_kept(
    pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    future = {"$type": "app.bsky.actor.defs#someFuturePref", "nested": {"list": [1, "two"]}}
    assert put(pds_stack, account.bearer, [future]).status == 200
    assert get(pds_stack, account.bearer) == [future]


# -- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("preferences", "message"),
    [
        pytest.param([{"$type": "com.example.pref", "x": 1}], "not in the app.bsky namespace"),
        pytest.param([ADULT, {"$type": "app.bskyish.pref"}], "not in the app.bsky namespace"),
        pytest.param([{"enabled": True}], "preferences/0", id="missing-type"),
        pytest.param([{**ADULT, "enabled": "yes"}], "preferences/0/enabled", id="wrong-type"),
        pytest.param([{"$type": LABEL["$type"], "label": "x"}], "preferences/0", id="required"),
        pytest.param({"$type": ADULT["$type"]}, "preferences", id="not-an-array"),
        pytest.param([{**ADULT, "weight": 0.5}], "float", id="float"),
        pytest.param(["adult"], "preferences/0", id="not-an-object"),
    ],
)
def test_invalid_preferences_are_refused_and_change_nothing(
    pds_stack: Stack, new_account: NewAccount, preferences: Any, message: str
) -> None:
    account = new_account()
    assert put(pds_stack, account.bearer, [MUTED]).status == 200
    reply = put(pds_stack, account.bearer, preferences)
    assert reply.status == 400, reply
    assert reply.json()["error"] == "InvalidRequest"
    assert message in reply.json()["message"]
    assert get(pds_stack, account.bearer) == [MUTED]


def test_body_must_be_json(pds_stack: Stack, new_account: NewAccount) -> None:
    account = new_account()
    reply = call(
        pds_stack.xrpc(nsids.BSKY_ACTOR_PUT_PREFERENCES),
        method="POST",
        headers={**account.bearer, "Content-Type": "text/plain"},
    )
    assert reply.status == 400, reply
    missing = call(
        pds_stack.xrpc(nsids.BSKY_ACTOR_PUT_PREFERENCES),
        method="POST",
        headers=account.bearer,
        body={},
    )
    assert missing.status == 400, missing
    assert "preferences" in missing.json()["message"]


@pytest.mark.parametrize(
    "nsid", [nsids.BSKY_ACTOR_GET_PREFERENCES, nsids.BSKY_ACTOR_PUT_PREFERENCES]
)
def test_preferences_need_a_session(pds_stack: Stack, nsid: str) -> None:
    method = "GET" if nsid == nsids.BSKY_ACTOR_GET_PREFERENCES else "POST"
    reply = call(
        pds_stack.xrpc(nsid), method=method, body={"preferences": []} if method == "POST" else None
    )
    assert reply.status == 401, reply
    assert reply.json()["error"] == "AuthMissing"


# -- personal details and the derived age ---------------------------------------------------------
@pytest.mark.parametrize(
    ("years", "days_later", "over_13", "over_16", "over_18"),
    [
        pytest.param(30, 0, True, True, True, id="adult"),
        pytest.param(18, 0, True, True, True, id="eighteen-today"),
        pytest.param(18, 1, True, True, False, id="eighteen-tomorrow"),
        pytest.param(14, 0, True, False, False, id="fourteen"),
        pytest.param(10, 0, False, False, False, id="child"),
    ],
)
def test_declared_age_is_derived_from_the_birth_date(
    pds_stack: Stack,
    new_account: NewAccount,
    years: int,
    days_later: int,
    over_13: bool,
    over_16: bool,
    over_18: bool,
) -> None:
    account = new_account()
    # A declaredAgePref sent back by a client is dropped, never stored.
    stale_age = {"$type": DECLARED_AGE, "isOverAge13": False}
    for _attempt in range(2):
        today = date.today()
        personal = {
            "$type": PERSONAL,
            "birthDate": years_ago(years, days_later=days_later, today=today),
        }
        assert put(pds_stack, account.bearer, [ADULT, personal, stale_age]).status == 200
        stored = get(pds_stack, account.bearer)
        if date.today() == today:
            break  # the server's answer is for the day the birth date was computed on, not the next
    assert stored == [
        ADULT,
        personal,
        {
            "$type": DECLARED_AGE,
            "isOverAge13": over_13,
            "isOverAge16": over_16,
            "isOverAge18": over_18,
        },
    ]


def test_app_passwords_cannot_see_or_set_personal_details(
    pds_stack: Stack, new_account: NewAccount
) -> None:
    account = new_account()
    personal = {"$type": PERSONAL, "birthDate": years_ago(40)}
    assert put(pds_stack, account.bearer, [personal, ADULT]).status == 200
    app = app_password_headers(pds_stack, account)

    age = {"$type": DECLARED_AGE, "isOverAge13": True, "isOverAge16": True, "isOverAge18": True}
    assert get(pds_stack, app) == [ADULT, age]

    refused = put(pds_stack, app, [{"$type": PERSONAL, "birthDate": years_ago(20)}])
    assert refused.status == 400, refused
    assert "Do not have authorization to set preferences" in refused.json()["message"]

    # An app-password put replaces everything it can see and keeps the personal details.
    assert put(pds_stack, app, [MUTED]).status == 200
    assert get(pds_stack, account.bearer) == [personal, MUTED, age]


# -- age arithmetic -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("born", "today", "age"),
    [
        (date(2000, 1, 1), date(2018, 1, 1), 18),
        (date(2000, 1, 2), date(2018, 1, 1), 17),
        (date(2000, 12, 31), date(2018, 12, 30), 17),
        (date(2000, 2, 29), date(2018, 2, 28), 17),
        (date(2000, 2, 29), date(2018, 3, 1), 18),
    ],
)
def test_age_on(born: date, today: date, age: int) -> None:
    assert age_on(born, today) == age
