"""Keyed audit chain: each event names the key its MAC was made with (NULL: an earlier, plain SHA-256 event),
and may record a user the caller claimed but nothing verified (actor_claim), apart from the verified actor_user.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("actor_claim", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("actor_claim")
        batch.drop_column("key_id")
