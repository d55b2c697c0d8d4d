"""the projection moves to DuckDB: its state row (and any generation tables) leave the SQL database

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    names = sa.inspect(bind).get_table_names()
    # Generation tables were data the service created itself (analytics_g<N>_events, _requests, _revisits).
    for name in names:
        parts = name.split("_")
        if len(parts) == 3 and parts[0] == "analytics" and parts[1][:1] == "g" and parts[1][1:].isdigit():
            op.drop_table(name)
    op.drop_table("analytics_state")


def downgrade() -> None:
    op.create_table(
        "analytics_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("active_generation", sa.Integer(), nullable=False),
        sa.Column("building_generation", sa.Integer(), nullable=True),
        sa.Column("rebuild_owner", sa.String(length=64), nullable=True),
        sa.Column("rebuild_heartbeat", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
