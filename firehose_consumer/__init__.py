"""The firehose consumer: verified, exactly-once indexing of check-ins into SQL.

`python -m firehose_consumer` subscribes to the `subscribeRepos` sources in `FIREHOSE_SERVICES`
and keeps the index (`atcore.index`) in `DATABASE_URL` up to date. Layout:

- `settings`: configuration from the environment;
- `stream`: WebSocket readers (reconnect with backoff and jitter, stall timeout, FutureCursor);
- `decode`: frames to typed `events`, dropping unrelated commits before any record decoding;
- `verify`: signatures, commit fields, Sync 1.1 inversion and chain;
- `process`: per-DID event handling into index `changes`, using `records` (check-in rows) and
  `state` (per-repo chain state); `resync`: `getRepo` snapshots; `resync_scheduler`: queued ones;
- `indexer`: the batched writer (index changes + cursors in one transaction), `db.queries`: SQL;
- `pipeline`: frame queue, per-DID lanes, cursor watermarks; `runner`: wiring, signals, shutdown;
- `backfill`: whole-host backfill (`listRepos` + `getRepo`); `metrics`: Prometheus.
"""
