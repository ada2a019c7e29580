"""The PDS's HTTP API: one module per XRPC namespace, each with `add_routes(app)`.

Handlers read inputs through `pds.api.params`, authenticate through the context's
`AuthVerifier`, and raise `atcore.xrpc` errors, which the error middleware renders as JSON.
"""

from __future__ import annotations

from aiohttp import web

from pds.api import (
    admin,
    bsky,
    identity,
    migration,
    repo,
    server,
    server_account,
    server_email,
    well_known,
)


def add_routes(app: web.Application) -> None:
    modules = (well_known, server, server_account, server_email, identity, migration, admin, repo)
    for module in modules:
        module.add_routes(app)
    # Last: it brings the `app.bsky` proxy and the `/xrpc/{nsid}` catch-all (which only sees
    # paths no other route serves), and its own cleanup context, which reads the AppContext.
    bsky.add_routes(app)
