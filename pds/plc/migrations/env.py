"""Alembic environment for the local PLC directory's database (run by `PlcStore.migrate`, or a
developer's `alembic` command; see `atcore.migrations`)."""

from __future__ import annotations

from atcore.migrations import run_online
from pds.plc.store import VERSION_TABLE, metadata

run_online(metadata, VERSION_TABLE)
