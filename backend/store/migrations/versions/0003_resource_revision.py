"""Resource revision: each inventory row carries the inventory revision of its last change, so the catalog feed
re-renders only the services whose rows changed since it last rendered, instead of all of them.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resources") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_resources_revision", "resources", ["revision"])


def downgrade() -> None:
    op.drop_index("ix_resources_revision", table_name="resources")
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("revision")
