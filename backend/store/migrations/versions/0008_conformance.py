"""Conformance: the last check of each resource and service against what Golden Path made (issue 14).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conformance",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("locator", sa.String(500), nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("since", sa.String(32), nullable=False),
        sa.Column("checked_at", sa.String(32), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.UniqueConstraint("kind", "locator", name="uq_conformance_kind_locator"),
    )
    op.create_index("ix_conformance_service", "conformance", ["service"])


def downgrade() -> None:
    op.drop_index("ix_conformance_service", table_name="conformance")
    op.drop_table("conformance")
