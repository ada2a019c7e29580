"""reserved_signing_key: signing keys handed out by com.atproto.server.reserveSigningKey

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10 10:00:00.000000

A reserved key waits here until `createAccount` for its DID takes it (or until it ages out).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reserved_signing_key",
        sa.Column("key_did", sa.String(), nullable=False),
        sa.Column("did", sa.String(), nullable=True),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_did", name=op.f("pk_reserved_signing_key")),
        sa.UniqueConstraint("did", name=op.f("uq_reserved_signing_key_did")),
    )
    with op.batch_alter_table("reserved_signing_key", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reserved_signing_key_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reserved_signing_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reserved_signing_key_created_at"))
    op.drop_table("reserved_signing_key")
