"""Skyspot's feed generator: every check-in in the network, nearest to the viewer first.

Layout:

- `settings`: `FeedgenSettings.from_env`.
- `app`: `create_app(settings)`, the aiohttp application; `context`: what handlers use.
- `api`: describeFeedGenerator, getFeedSkeleton, the did:web document, health and metrics.
- `auth`: verification of the viewer's service JWT.
- `algos`: the feeds by record key; `algos.bands` (anchor and distance bands), `algos.order`
  (the total order and its keyset arithmetic), `algos.nearby` (serving pages).
- `cursor`: the opaque pagination cursor.
- `db.queries`: all of the feed generator's SQL, read-only on the index (`atcore.index`), and
  the engine reader (PostgreSQL, CockroachDB); `db.sqlite_reader`: the SQLite reader (a page per
  thread hop, per-cell cursors merged lazily).
- `metrics`: the Prometheus collectors; `__main__`: `python -m feedgen` (FEEDGEN_WORKERS).

Errors, per area (all `ValueError`s): `settings.SettingsError`, `auth.AuthError`,
`cursor.BadCursor`, `algos.UnknownFeed`. The API renders them as XRPC errors.
"""
