"""alerts name the requests behind them (process findings raised as alerts)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("analytics_active_alerts", sa.Column("request_ids", sa.Text(), nullable=True))
    op.add_column("analytics_alert_history", sa.Column("request_ids", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("analytics_alert_history", "request_ids")
    op.drop_column("analytics_active_alerts", "request_ids")
