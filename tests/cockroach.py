"""CockroachDB for the `cockroach`-marked tests: a fresh database per test on `COCKROACH_URL`.

Set `COCKROACH_URL` to a cluster the tests may create databases on, in SQLAlchemy form, e.g.
`cockroachdb://root@127.0.0.1:26257/defaultdb` for an insecure local node
(`cockroach start-single-node --insecure`). Without it, the marked tests are skipped.
"""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from atcore.index.engine import create_index_engine


def cockroach_url() -> str:
    url = os.environ.get("COCKROACH_URL")
    if not url:
        pytest.skip("COCKROACH_URL is not set (a CockroachDB cluster to test against)")
    return url


async def fresh_cockroach_database() -> str:
    """Create an empty database on the cluster; returns its URL."""
    base = cockroach_url()
    name = f"t_{secrets.token_hex(6)}"
    admin = create_index_engine(base, pool_size=1)
    try:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False)
