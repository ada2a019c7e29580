"""The `app.bsky` side of the PDS, and the proxy for every method it does not serve itself.

- `preferences`: `app.bsky.actor.getPreferences` / `putPreferences`, stored here.
- `profile`: `app.bsky.actor.getProfile` / `getProfiles`, relayed, or answered here for local
  accounts the AppView does not know (or with no AppView at all).
- `feed`: `app.bsky.feed.getFeed`, relayed with a token for the feed generator.
- `catchall`: `/xrpc/{nsid}`, relaying `app.bsky.*`, `chat.bsky.*` and `atproto-proxy` calls.
- `common`: parameters, service-auth relaying and `LocalRoutes` (what the catch-all leaves alone).

`add_routes(app)` registers all of it. The handlers use the application's `AppContext` (its
`proxy` and lexicon `catalog`). The catch-all only sees paths no other route matches, whatever
the registration order (aiohttp tries exact paths before patterns).

Errors are `atcore.xrpc` errors throughout, plus `pds.proxy.UpstreamError` for relayed ones.
"""

from __future__ import annotations

from aiohttp import web

from atcore import nsids
from pds.api.bsky.catchall import CATCHALL_PATH, proxy_unserved
from pds.api.bsky.common import LOCAL_ROUTES, LocalRoutes
from pds.api.bsky.feed import get_feed
from pds.api.bsky.preferences import get_preferences, put_preferences
from pds.api.bsky.profile import get_profile, get_profiles

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app[LOCAL_ROUTES] = LocalRoutes()
    app.router.add_routes(
        [
            web.get(nsids.xrpc_path(nsids.BSKY_ACTOR_GET_PREFERENCES), get_preferences),
            web.post(nsids.xrpc_path(nsids.BSKY_ACTOR_PUT_PREFERENCES), put_preferences),
            web.get(nsids.xrpc_path(nsids.BSKY_ACTOR_GET_PROFILE), get_profile),
            web.get(nsids.xrpc_path(nsids.BSKY_ACTOR_GET_PROFILES), get_profiles),
            web.get(nsids.xrpc_path(nsids.BSKY_FEED_GET_FEED), get_feed),
            web.route("*", CATCHALL_PATH, proxy_unserved),
        ]
    )
