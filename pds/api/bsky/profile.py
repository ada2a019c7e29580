"""`app.bsky.actor.getProfile` / `getProfiles`: relayed to the AppView, answered here as needed.

The AppView is the authority on profiles (it counts followers, knows every account). But a PDS
with no AppView, or a fresh account the AppView has not indexed yet, would leave clients without
the profile they fetch right after logging in (the `atproto` SDK's `Client.login` does). So for
accounts hosted here the PDS builds a `profileViewDetailed` itself from the account's handle and
its `app.bsky.actor.profile/self` record:

- no AppView configured (and no `atproto-proxy` header): local accounts answered here, others
  get `InvalidRequest` "No service configured ...";
- the AppView answers "not found" (400 `InvalidRequest`, or a 404/501 from one that does not
  serve the method): local accounts answered here, the error relayed otherwise;
- `getProfiles` asks the AppView first and adds local accounts it left out, in request order.

Images point at this PDS's `com.atproto.sync.getBlob`; counts are left out (the PDS cannot know
followers), as the lexicon allows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from atcore import dagcbor, nsids
from atcore.datajson import BlobRef, DataModelError, data_to_json
from atcore.syntax import INVALID_HANDLE, Datetime, is_valid_datetime
from atcore.xrpc import InvalidRequest
from pds.api.bsky.common import (
    decode_params,
    optional_target,
    relay,
    service_authorization,
)
from pds.context import AppContext, context_of
from pds.db import repo as repo_queries
from pds.db.accounts import AccountRow
from pds.proxy import ServiceTarget, UpstreamError, upstream_error

PROFILE_RKEY: Final = "self"
NOT_SERVED_STATUSES: Final = frozenset({404, 501})


async def get_profile(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    actor: str = decode_params(request, nsids.BSKY_ACTOR_GET_PROFILE)["actor"]
    target = await optional_target(request)
    if target is not None:
        try:
            return await relay(
                request, target, iss=credentials.did, lxm=nsids.BSKY_ACTOR_GET_PROFILE
            )
        except UpstreamError as exc:
            if not unknown_upstream(exc):
                raise
            local = await local_profile(ctx, actor)
            if local is None:
                raise
            return web.json_response(local)
    local = await local_profile(ctx, actor)
    if local is None:
        raise InvalidRequest(f"No service configured for {nsids.BSKY_ACTOR_GET_PROFILE}")
    return web.json_response(local)


async def get_profiles(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    actors: list[str] = decode_params(request, nsids.BSKY_ACTOR_GET_PROFILES)["actors"]
    target = await optional_target(request)
    upstream: list[dict[str, Any]] = []
    if target is not None:
        upstream = await _upstream_profiles(request, ctx, target, credentials.did)
    elif not await _any_local(ctx, actors):
        raise InvalidRequest(f"No service configured for {nsids.BSKY_ACTOR_GET_PROFILES}")
    known = {str(p.get("did")) for p in upstream} | {str(p.get("handle")) for p in upstream}
    profiles = list(upstream)
    for actor in actors:
        if actor in known:
            continue
        local = await local_profile(ctx, actor, quiet=True)
        if local is not None and local["did"] not in known:
            profiles.append(local)
            known.update((local["did"], local["handle"]))
    return web.json_response({"profiles": profiles})


def unknown_upstream(exc: UpstreamError) -> bool:
    """True when the upstream does not know the profile or does not serve the method."""
    if exc.upstream_status in NOT_SERVED_STATUSES:
        return True
    return exc.upstream_status == 400 and exc.error == "InvalidRequest"


async def _upstream_profiles(
    request: web.Request, ctx: AppContext, target: ServiceTarget, did: str
) -> list[dict[str, Any]]:
    """The AppView's profiles (read whole: at most 25), or [] when it does not serve them."""
    proxy = context_of(request).proxy
    authorization = await service_authorization(ctx, did, target.did, nsids.BSKY_ACTOR_GET_PROFILES)
    upstream = await proxy.open(
        request, target, authorization=authorization, accept_encoding="identity"
    )
    try:
        if upstream.status >= 400:
            exc = await upstream_error(upstream)
            if exc.upstream_status in NOT_SERVED_STATUSES:
                return []
            raise exc
        body = await proxy.read_body(upstream)
    finally:
        upstream.release()
    try:
        profiles = json.loads(body)["profiles"]
    except (ValueError, KeyError, TypeError):
        profiles = None
    if not isinstance(profiles, list) or not all(isinstance(p, dict) for p in profiles):
        raise UpstreamError(502, "UpstreamFailure", "Upstream sent a malformed response", {})
    return profiles


async def _any_local(ctx: AppContext, actors: list[str]) -> bool:
    for actor in actors:
        if await ctx.accounts.get_by_identifier(actor) is not None:
            return True
    return False


async def local_profile(
    ctx: AppContext, actor: str, *, quiet: bool = False
) -> dict[str, Any] | None:
    """The detailed profile view of a local account (None when `actor` is not hosted here).

    Suspended and deactivated accounts raise the AppView's errors, or read as absent when
    `quiet` (for `getProfiles`, which leaves such accounts out).
    """
    account = await ctx.accounts.get_by_identifier(actor)
    if account is None:
        return None
    if account.taken_down or account.deactivated:
        if quiet:
            return None
        if account.taken_down:
            raise InvalidRequest("Account has been suspended", error="AccountTakedown")
        raise InvalidRequest("Account is deactivated", error="AccountDeactivated")
    uri = f"at://{account.did}/{nsids.BSKY_ACTOR_PROFILE}/{PROFILE_RKEY}"
    async with ctx.db.read() as conn:
        found = await repo_queries.get_record(conn, uri)
    record = dagcbor.decode(found[1]) if found is not None else None
    return profile_view(
        account,
        record if isinstance(record, dict) else None,
        record_cid=found[0] if found is not None else None,
        public_url=ctx.settings.public_url,
    )


def profile_view(
    account: AccountRow,
    record: dict[str, Any] | None,
    *,
    record_cid: str | None,
    public_url: str,
) -> dict[str, Any]:
    """An `app.bsky.actor.defs#profileViewDetailed` from the account row and profile record."""
    did = str(account.did)
    view: dict[str, Any] = {"did": did, "handle": account.handle or INVALID_HANDLE}
    record = record or {}
    for name in ("displayName", "description", "pronouns", "website"):
        if isinstance(record.get(name), str):
            view[name] = record[name]
    for name in ("avatar", "banner"):
        image = _blob_url(public_url, did, record.get(name))
        if image is not None:
            view[name] = image
    created = record.get("createdAt")
    view["createdAt"] = (
        created if isinstance(created, str) and is_valid_datetime(created) else _iso(account)
    )
    pinned = record.get("pinnedPost")
    if isinstance(pinned, dict) and {"uri", "cid"} <= pinned.keys():
        view["pinnedPost"] = {"uri": pinned["uri"], "cid": pinned["cid"]}
    view["labels"] = _self_labels(did, record, record_cid, view["createdAt"])
    rendered: dict[str, Any] = data_to_json(view)
    return rendered


def _blob_url(public_url: str, did: str, value: object) -> str | None:
    try:
        blob = BlobRef.from_data(value)
    except DataModelError:
        return None
    query = urlencode({"did": did, "cid": str(blob.ref)})
    return f"{public_url}/xrpc/{nsids.SYNC_GET_BLOB}?{query}"


def _self_labels(
    did: str, record: dict[str, Any], record_cid: str | None, created_at: str
) -> list[dict[str, Any]]:
    """The record's self-labels in `com.atproto.label.defs#label` form, as an AppView shows them."""
    labels = record.get("labels")
    if not isinstance(labels, dict) or record_cid is None:
        return []
    values = labels.get("values")
    if not isinstance(values, list):
        return []
    uri = f"at://{did}/{nsids.BSKY_ACTOR_PROFILE}/{PROFILE_RKEY}"
    return [
        {"src": did, "uri": uri, "cid": record_cid, "val": item["val"], "cts": created_at}
        for item in values
        if isinstance(item, dict) and isinstance(item.get("val"), str)
    ]


def _iso(account: AccountRow) -> str:
    moment = datetime.fromtimestamp(account.created_at / 1000, tz=UTC)
    return str(Datetime.from_datetime(moment))
