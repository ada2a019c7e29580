"""email_token: single-use codes mailed to an account (password reset)

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-20 10:00:00.000000

One live code per (purpose, account); a code is unique within its purpose, so the code alone
names the account (`com.atproto.server.resetPassword` carries no DID).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_token",
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("did", sa.String(), nullable=False),
        sa.Column("token", sa.String(), nullable=False),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("purpose", "did", name=op.f("pk_email_token")),
        sa.UniqueConstraint("purpose", "token", name=op.f("uq_email_token_purpose_token")),
    )


def downgrade() -> None:
    op.drop_table("email_token")
