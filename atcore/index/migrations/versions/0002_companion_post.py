"""companion_post: posts that exist, so a check-in written after its post finds it

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows start empty: until a repo's next resync, only posts seen from now on are known, which
    # is what the index knew before (existence was tracked on the check-in rows alone).
    op.create_table(
        "companion_post",
        sa.Column("author_did", sa.String(), nullable=False),
        sa.Column("rkey", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("author_did", "rkey", name=op.f("pk_companion_post")),
    )


def downgrade() -> None:
    op.drop_table("companion_post")
