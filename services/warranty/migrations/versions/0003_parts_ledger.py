"""the parts ledger: catalogue, stock locations, stock per (location, part), part requests, part returns; the
assigned technician's center on the jobs warranty knows (a part request may draw from its store)

Jobs assigned before this revision have no center until dispatch announces an assignment again: their part
requests draw from the technician's van and the warehouses only.

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
    with op.batch_alter_table("warranty_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("center_id", sa.String(length=80), nullable=True))

    op.create_table(
        "warranty_parts",
        sa.Column("part_number", sa.String(length=80), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(length=80), nullable=False),
        sa.Column("view", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("part_number"),
        sa.UniqueConstraint("position"),
    )
    op.create_table(
        "warranty_stock_locations",
        sa.Column("location_id", sa.String(length=80), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("center_id", sa.String(length=80), nullable=True),
        sa.Column("technician_id", sa.String(length=80), nullable=True),
        sa.Column("view", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("location_id"),
        sa.UniqueConstraint("position"),
        sa.UniqueConstraint("technician_id"),
    )
    with op.batch_alter_table("warranty_stock_locations", schema=None) as batch_op:
        batch_op.create_index("ix_warranty_stock_locations_center", ["center_id"], unique=False)

    op.create_table(
        "warranty_stock",
        sa.Column("location_id", sa.String(length=80), nullable=False),
        sa.Column("part_number", sa.String(length=80), nullable=False),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("location_id", "part_number"),
    )
    with op.batch_alter_table("warranty_stock", schema=None) as batch_op:
        batch_op.create_index("ix_warranty_stock_part", ["part_number"], unique=False)

    op.create_table(
        "warranty_part_requests",
        sa.Column("part_request_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.String(length=80), nullable=False),
        sa.Column("dealer_id", sa.String(length=80), nullable=True),
        sa.Column("technician_id", sa.String(length=80), nullable=True),
        sa.Column("part_number", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("location_id", sa.String(length=80), nullable=True),
        sa.Column("view", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("part_request_id"),
        sa.UniqueConstraint("position"),
    )
    with op.batch_alter_table("warranty_part_requests", schema=None) as batch_op:
        batch_op.create_index("ix_warranty_part_requests_job", ["job_id"], unique=False)
        batch_op.create_index("ix_warranty_part_requests_waiting", ["part_number", "status"], unique=False)

    op.create_table(
        "warranty_part_returns",
        sa.Column("return_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("swap_id", sa.String(length=36), nullable=False),
        sa.Column("serial", sa.String(length=80), nullable=False),
        sa.Column("job_id", sa.String(length=80), nullable=False),
        sa.Column("dealer_id", sa.String(length=80), nullable=True),
        sa.Column("view", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("return_id"),
        sa.UniqueConstraint("position"),
        sa.UniqueConstraint("swap_id"),
    )
    with op.batch_alter_table("warranty_part_returns", schema=None) as batch_op:
        batch_op.create_index("ix_warranty_part_returns_job", ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("warranty_part_returns", schema=None) as batch_op:
        batch_op.drop_index("ix_warranty_part_returns_job")
    op.drop_table("warranty_part_returns")
    with op.batch_alter_table("warranty_part_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_warranty_part_requests_waiting")
        batch_op.drop_index("ix_warranty_part_requests_job")
    op.drop_table("warranty_part_requests")
    with op.batch_alter_table("warranty_stock", schema=None) as batch_op:
        batch_op.drop_index("ix_warranty_stock_part")
    op.drop_table("warranty_stock")
    with op.batch_alter_table("warranty_stock_locations", schema=None) as batch_op:
        batch_op.drop_index("ix_warranty_stock_locations_center")
    op.drop_table("warranty_stock_locations")
    op.drop_table("warranty_parts")
    with op.batch_alter_table("warranty_jobs", schema=None) as batch_op:
        batch_op.drop_column("center_id")
