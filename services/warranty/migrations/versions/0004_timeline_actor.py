"""warranty_timeline.actor: who caused each entry of a unit's history (the event's `ce_actor`).

Entries added before it are of events stored or received before actors were kept: `system:unknown`, what the
event stores (shared_0003) and consumers say of those events too. The default only fills those rows.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = "shared_0003"


def upgrade() -> None:
    with op.batch_alter_table("warranty_timeline", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.Text(), nullable=False, server_default="system:unknown"))
    with op.batch_alter_table("warranty_timeline", schema=None) as batch_op:
        batch_op.alter_column("actor", existing_type=sa.Text(), existing_nullable=False, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("warranty_timeline", schema=None) as batch_op:
        batch_op.drop_column("actor")
