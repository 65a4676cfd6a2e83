"""Runs that survive their replica: a lease the running replica renews, the attempt that holds it, the requester
sealed with the audit key (so only what Golden Path accepted can be taken over), and write-ahead intents.

A run left `running` by an older version has no lease: the first replica to look takes it over.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("lease_holder", sa.String(120), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.String(32), nullable=True))
        batch.add_column(sa.Column("requester", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("seal", sa.String(200), nullable=True))
        batch.add_column(sa.Column("seal_key_id", sa.String(200), nullable=True))
        batch.create_index("ix_runs_status_lease_until", ["status", "lease_until"])
    op.create_table(
        "run_intents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("locator", sa.String(500), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("seal", sa.String(200), nullable=True),
        sa.Column("seal_key_id", sa.String(200), nullable=True),
    )
    op.create_index("ix_run_intents_kind_locator", "run_intents", ["kind", "locator"])
    op.create_index("ix_audit_events_run_id", "audit_events", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_run_id", table_name="audit_events")
    op.drop_index("ix_run_intents_kind_locator", table_name="run_intents")
    op.drop_table("run_intents")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_status_lease_until")
        for column in ("seal_key_id", "seal", "requester", "lease_until", "lease_holder", "attempt"):
            batch.drop_column(column)
