"""The check-in index shared by the firehose consumer (writer) and the feed generator (reader).

- `schema`: the tables and indexes (the contract; read its docstring first).
- `geo`: microdegrees, H3 cells per feed band, and the cell sets a band query matches.
- `engine`: async engines for SQLite / PostgreSQL / CockroachDB, read-only option, migrations.
- `retry`: re-run whole transactions on SQLSTATE 40001 / SQLite busy with backoff and jitter.
"""

from atcore.index.engine import (
    DEFAULT_URL,
    Backend,
    IndexDatabaseError,
    backend_of,
    create_index_engine,
    migrate,
    parse_database_url,
)
from atcore.index.geo import (
    BANDS,
    Band,
    BandDisk,
    Cells,
    GeoError,
    band_disks,
    cells_for_point,
)
from atcore.index.retry import RetryPolicy, is_retryable, run_transaction
from atcore.index.schema import checkin, metadata, repo_state, source_cursor

__all__ = [
    "BANDS",
    "DEFAULT_URL",
    "Backend",
    "Band",
    "BandDisk",
    "Cells",
    "GeoError",
    "IndexDatabaseError",
    "RetryPolicy",
    "backend_of",
    "band_disks",
    "cells_for_point",
    "checkin",
    "create_index_engine",
    "is_retryable",
    "metadata",
    "migrate",
    "parse_database_url",
    "repo_state",
    "run_transaction",
    "source_cursor",
]
