"""each technician's open jobs kept in a row of their own (ranking the candidates no longer counts jobs)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dispatch_technician_load",
        sa.Column("technician_id", sa.String(length=64), nullable=False),
        sa.Column("open_jobs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("technician_id"),
    )
    # The jobs already open count from the start: what the job projector would have kept.
    op.execute(
        "INSERT INTO dispatch_technician_load (technician_id, open_jobs) "
        "SELECT technician_id, count(*) FROM dispatch_jobs "
        "WHERE is_load AND technician_id IS NOT NULL GROUP BY technician_id"
    )


def downgrade() -> None:
    op.drop_table("dispatch_technician_load")
