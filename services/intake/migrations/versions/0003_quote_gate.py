"""quote gate: intake's copy of the parts catalogue (prices for paid-service quotes)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 18:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

import shared.eventstore.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "part_prices",
        sa.Column("part_number", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=80), nullable=False),
        sa.Column("unit_price", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("registered_at", shared.eventstore.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("registered_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("part_number"),
    )


def downgrade() -> None:
    op.drop_table("part_prices")
