"""sequencer_state.pruned_through: how far firehose history has been pruned

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000

Existing databases never pruned anything, so every row starts at 0 (the server default, which
also lets the sequencer keep inserting its state row with `last_seq` alone).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sequencer_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "pruned_through", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sequencer_state", schema=None) as batch_op:
        batch_op.drop_column("pruned_through")
