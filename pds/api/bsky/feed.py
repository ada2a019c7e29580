"""`app.bsky.feed.getFeed`: relayed to the AppView with a token meant for the feed generator.

The AppView answers getFeed by asking the feed's generator for a skeleton and hydrating it. The
generator must learn who is asking, so the PDS mints the service JWT for the generator, not for
the AppView: `aud` = the generator's service DID (the `did` field of the feed's
`app.bsky.feed.generator` record), `lxm` = `app.bsky.feed.getFeedSkeleton`. The AppView passes
it on unchanged.

The generator record is read from this PDS when the feed's owner is hosted here, otherwise from
the owner's PDS (found through the owner's DID document). A feed whose record cannot be read, is
not a generator record, or names no valid DID is `UnknownFeed`.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import web

from atcore import dagcbor, nsids
from atcore.identity import PDS_SERVICE, IdentityError
from atcore.syntax import AtUri, is_valid_did
from atcore.xrpc import InvalidRequest, XrpcError
from pds.api.bsky.common import decode_params, relay
from pds.context import AppContext, context_of
from pds.db import repo as repo_queries
from pds.proxy import ServiceTarget

log = logging.getLogger(__name__)

UNKNOWN_FEED: Final = "UnknownFeed"


async def get_feed(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request)
    feed = AtUri(decode_params(request, nsids.BSKY_FEED_GET_FEED)["feed"])
    target = await ctx.proxy.target_for(request, nsids.BSKY_FEED_GET_FEED)
    generator_did = await feed_generator_did(request, ctx, feed)
    return await relay(
        request,
        target,
        iss=credentials.did,
        aud=generator_did,
        lxm=nsids.BSKY_FEED_GET_FEED_SKELETON,
    )


async def feed_generator_did(request: web.Request, ctx: AppContext, feed: AtUri) -> str:
    """The service DID named by the feed's generator record."""
    if feed.collection != nsids.BSKY_FEED_GENERATOR or feed.rkey is None:
        raise InvalidRequest("feed must be an app.bsky.feed.generator record", error=UNKNOWN_FEED)
    owner = await _owner_did(ctx, str(feed.authority))
    record = await _local_record(ctx, owner, feed.rkey)
    if record is None and await ctx.accounts.get(owner) is None:
        record = await _remote_record(request, ctx, owner, feed.rkey)
    did = record.get("did") if record is not None else None
    if not isinstance(did, str) or not is_valid_did(did):
        raise InvalidRequest("could not resolve feed did", error=UNKNOWN_FEED)
    return did


async def _owner_did(ctx: AppContext, authority: str) -> str:
    if authority.startswith("did:"):
        return authority
    account = await ctx.accounts.get_by_identifier(authority)
    if account is not None:
        return str(account.did)
    try:
        return str(await ctx.handle_resolver.resolve(authority))
    except IdentityError:
        raise InvalidRequest("could not resolve feed owner", error=UNKNOWN_FEED) from None


async def _local_record(ctx: AppContext, did: str, rkey: str) -> dict[str, Any] | None:
    uri = f"at://{did}/{nsids.BSKY_FEED_GENERATOR}/{rkey}"
    async with ctx.db.read() as conn:
        found = await repo_queries.get_record(conn, uri)
    if found is None:
        return None
    value = dagcbor.decode(found[1])
    return value if isinstance(value, dict) else None


async def _remote_record(
    request: web.Request, ctx: AppContext, did: str, rkey: str
) -> dict[str, Any] | None:
    """The generator record from its owner's PDS (`com.atproto.repo.getRecord`), JSON form."""
    try:
        document = await ctx.did_resolver.resolve(did)
    except IdentityError:
        raise InvalidRequest("could not resolve feed owner", error=UNKNOWN_FEED) from None
    endpoint = document.pds_endpoint
    if endpoint is None:
        raise InvalidRequest("feed owner has no PDS", error=UNKNOWN_FEED)
    pds = ServiceTarget(did, PDS_SERVICE.fragment, endpoint)
    params = {"repo": did, "collection": nsids.BSKY_FEED_GENERATOR, "rkey": rkey}
    proxy = context_of(request).proxy
    try:
        answer = await proxy.query_json(pds, nsids.REPO_GET_RECORD, params)
    except XrpcError as exc:
        log.info("could not read feed generator record of %s: %s", did, exc)
        raise InvalidRequest("could not resolve feed did", error=UNKNOWN_FEED) from None
    value = answer.get("value") if isinstance(answer, dict) else None
    return value if isinstance(value, dict) else None
