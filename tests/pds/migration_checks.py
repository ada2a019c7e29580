"""The check every PDS schema-migration test ends with: the migrations build exactly the schema
the code declares (`pds.db.schema`), compared by Alembic's autogenerate."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from pds.db import schema
from pds.db.engine import alembic_config


def assert_schema_matches_code(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
    finally:
        engine.dispose()


def upgrade_to_head_and_compare(url: str) -> None:
    """Later revisions add tables of their own: compare at head, not at the revision tested."""
    command.upgrade(alembic_config(url), "head")
    assert_schema_matches_code(url)
