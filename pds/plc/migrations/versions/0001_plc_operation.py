"""the operation log

Revision ID: 0001
Revises:
Create Date: 2026-11-23 22:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plc_operation",
        sa.Column("did", sa.String(), nullable=False),
        sa.Column("cid", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("nullified", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("did", "cid"),
        sa.UniqueConstraint("seq"),
    )
    op.create_index("ix_plc_operation_did_seq", "plc_operation", ["did", "seq"])
    op.create_index("ix_plc_operation_created_at", "plc_operation", ["created_at", "cid"])


def downgrade() -> None:
    op.drop_index("ix_plc_operation_created_at", table_name="plc_operation")
    op.drop_index("ix_plc_operation_did_seq", table_name="plc_operation")
    op.drop_table("plc_operation")
