"""`app.bsky.actor.getPreferences` / `putPreferences`: private settings the PDS keeps itself.

As in the reference PDS:

- Only `app.bsky.*` preference types are accepted; a put replaces them all (full replace, one
  transaction, order kept).
- `personalDetailsPref` (the birth date) is visible to, and writable by, full sessions only (the
  account password, not an app password); a put from an app-password session leaves it alone.
- `declaredAgePref` is derived on read from the birth date (over 13 / 16 / 18) and never stored:
  clients that send it back have it dropped.
- An `atproto-proxy` header naming another AppView sends the call there instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

from aiohttp import web

from atcore import nsids
from atcore.datajson import DataModelError, json_to_data
from atcore.xrpc import InvalidRequest
from pds.api.bsky.common import checked, relay_if_elsewhere
from pds.api.params import json_body
from pds.auth.tokens import ACCESS_STANDARD, AuthScope
from pds.context import context_of
from pds.db.prefs import in_namespace, read_preferences, replace_preferences

PERSONAL_DETAILS_PREF: Final = f"{nsids.BSKY_ACTOR_DEFS}#personalDetailsPref"
DECLARED_AGE_PREF: Final = f"{nsids.BSKY_ACTOR_DEFS}#declaredAgePref"
MAX_PREFERENCES_BODY: Final = 1024 * 1024


async def get_preferences(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, scopes=ACCESS_STANDARD | {AuthScope.TAKENDOWN})
    relayed = await relay_if_elsewhere(request, credentials.did, nsids.BSKY_ACTOR_GET_PREFERENCES)
    if relayed is not None:
        return relayed
    async with ctx.db.read() as conn:
        stored = await read_preferences(conn, credentials.did, namespace=nsids.BSKY_NAMESPACE)
    full_access = credentials.scope == AuthScope.ACCESS
    preferences = visible_preferences(stored, full_access=full_access, today=date.today())
    return web.json_response({"preferences": preferences})


async def put_preferences(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, check_takedown=True)
    relayed = await relay_if_elsewhere(request, credentials.did, nsids.BSKY_ACTOR_PUT_PREFERENCES)
    if relayed is not None:
        return relayed
    body = await json_body(request, max_bytes=MAX_PREFERENCES_BODY)
    try:
        data = json_to_data(body.data)
    except DataModelError as exc:
        raise InvalidRequest(f"Input is not valid atproto data: {exc}") from None
    catalog = context_of(request).catalog
    checked(lambda: catalog.validate_input(nsids.BSKY_ACTOR_PUT_PREFERENCES, data))
    full_access = credentials.scope == AuthScope.ACCESS
    preferences = writable_preferences(body.data["preferences"], full_access=full_access)
    async with ctx.db.transaction() as conn:
        await replace_preferences(
            conn,
            credentials.did,
            preferences,
            namespace=nsids.BSKY_NAMESPACE,
            preserve=() if full_access else (PERSONAL_DETAILS_PREF,),
        )
    return web.Response()


def writable_preferences(
    preferences: Sequence[Mapping[str, Any]], *, full_access: bool
) -> list[Mapping[str, Any]]:
    """The preferences to store, after the namespace and authorization checks."""
    types = [preference["$type"] for preference in preferences]
    if not all(in_namespace(name, nsids.BSKY_NAMESPACE) for name in types):
        raise InvalidRequest(f"Some preferences are not in the {nsids.BSKY_NAMESPACE} namespace")
    if not full_access and PERSONAL_DETAILS_PREF in types:
        raise InvalidRequest(
            f"Do not have authorization to set preferences: {PERSONAL_DETAILS_PREF}"
        )
    return [preference for preference in preferences if preference["$type"] != DECLARED_AGE_PREF]


def visible_preferences(
    stored: Sequence[dict[str, Any]], *, full_access: bool, today: date
) -> list[dict[str, Any]]:
    """What a session may read: derived age brackets added, personal details for full sessions."""
    preferences = list(stored)
    details = next((p for p in stored if p.get("$type") == PERSONAL_DETAILS_PREF), None)
    birth_date = _birth_date(details.get("birthDate")) if details is not None else None
    if birth_date is not None:
        age = age_on(birth_date, today)
        preferences.append(
            {
                "$type": DECLARED_AGE_PREF,
                "isOverAge13": age >= 13,
                "isOverAge16": age >= 16,
                "isOverAge18": age >= 18,
            }
        )
    if full_access:
        return preferences
    return [p for p in preferences if p.get("$type") != PERSONAL_DETAILS_PREF]


def age_on(birth_date: date, today: date) -> int:
    """Whole years from `birth_date` to `today`."""
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - int(before_birthday)


def _birth_date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        return None
