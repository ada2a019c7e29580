"""check-in index: checkin, repo_state, source_cursor

Revision ID: 0001
Revises:
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_KEYSET = ["sort_at", "author_did", "collection", "rkey"]


def _create_index(name: str, table: str, columns: list[str], *, hash_sharded: bool = False) -> None:
    """Hash-sharded (`USING HASH`) on CockroachDB only; a plain index everywhere else."""
    if hash_sharded and op.get_context().dialect.name == "cockroachdb":
        op.execute(f"CREATE INDEX {name} ON {table} ({', '.join(columns)}) USING HASH")
    else:
        op.create_index(name, table, columns)


def upgrade() -> None:
    op.create_table(
        "checkin",
        sa.Column("author_did", sa.String(), nullable=False),
        sa.Column("collection", sa.String(), nullable=False),
        sa.Column("rkey", sa.String(), nullable=False),
        sa.Column("cid", sa.String(), nullable=False),
        sa.Column("rev", sa.String(), nullable=False),
        sa.Column("lat_e6", sa.Integer(), nullable=False),
        sa.Column("lon_e6", sa.Integer(), nullable=False),
        sa.Column("h3_r7", sa.BigInteger(), nullable=True),
        sa.Column("h3_r5", sa.BigInteger(), nullable=True),
        sa.Column("h3_r3", sa.BigInteger(), nullable=True),
        sa.Column("place_name", sa.String(), nullable=False),
        sa.Column("place_category", sa.String(), nullable=True),
        sa.Column("place_uri", sa.String(), nullable=True),
        sa.Column("place_locality", sa.String(), nullable=True),
        sa.Column("place_country", sa.String(), nullable=True),
        sa.Column("post_uri", sa.String(), nullable=True),
        sa.Column("post_cid", sa.String(), nullable=True),
        sa.Column("post_exists", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("visited_at", sa.BigInteger(), nullable=True),
        sa.Column("indexed_at", sa.BigInteger(), nullable=False),
        sa.Column("sort_at", sa.BigInteger(), nullable=False),
        sa.Column("visible", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "lat_e6 BETWEEN -90000000 AND 90000000", name=op.f("ck_checkin_lat_range")
        ),
        sa.CheckConstraint(
            "lon_e6 BETWEEN -180000000 AND 180000000", name=op.f("ck_checkin_lon_range")
        ),
        sa.PrimaryKeyConstraint("author_did", "collection", "rkey", name=op.f("pk_checkin")),
    )
    _create_index(
        "ix_checkin_sort_at_author_did_collection_rkey", "checkin", _KEYSET, hash_sharded=True
    )
    for cell in ("h3_r7", "h3_r5", "h3_r3"):
        _create_index(
            f"ix_checkin_{cell}_sort_at_author_did_collection_rkey", "checkin", [cell, *_KEYSET]
        )
    _create_index("ix_checkin_author_did_sort_at", "checkin", ["author_did", "sort_at"])
    _create_index("ix_checkin_post_uri", "checkin", ["post_uri"])

    op.create_table(
        "repo_state",
        sa.Column("did", sa.String(), nullable=False),
        sa.Column("rev", sa.String(), nullable=True),
        sa.Column("data_cid", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("sync_status", sa.String(), nullable=False),
        sa.Column("resync_after", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("did", name=op.f("pk_repo_state")),
    )
    _create_index("ix_repo_state_resync_after", "repo_state", ["resync_after"])

    op.create_table(
        "source_cursor",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_cursor")),
    )


def downgrade() -> None:
    op.drop_table("source_cursor")
    op.drop_table("repo_state")
    op.drop_table("checkin")
