"""The firehose consumer: verified, exactly-once indexing of check-ins into SQL.

`python -m firehose_consumer` subscribes to the `subscribeRepos` sources in `FIREHOSE_SERVICES`
and keeps the index (`atcore.index`) in `DATABASE_URL` up to date. Layout:

- `stream`: WebSocket readers (reconnect with backoff and jitter, stall timeout, FutureCursor);
- `decode`: frames to typed `events`, dropping unrelated commits before any record decoding;
- `verify`: signatures, commit fields, Sync 1.1 inversion and chain;
- `process`: per-DID event handling into index `changes`; `resync`: `getRepo` snapshots;
- `indexer`: the batched writer (index changes + cursors in one transaction);
- `pipeline`: queue, per-DID lanes, cursor watermarks; `runner`: wiring, signals, metrics;
- `backfill`: whole-PDS backfill (`listRepos` + `getRepo`); `db.queries`: all SQL.
"""
