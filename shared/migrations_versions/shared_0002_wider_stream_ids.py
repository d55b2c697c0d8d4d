"""events.stream_id holds 120 characters: stream ids are namespaced by aggregate type (`product:<serial>`), and
the ids they wrap (serials) may have 80.
"""

import sqlalchemy as sa
from alembic import op

revision = "shared_0002"
down_revision = "shared_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column(
            "stream_id", existing_type=sa.String(length=80), type_=sa.String(length=120), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column(
            "stream_id", existing_type=sa.String(length=120), type_=sa.String(length=80), existing_nullable=False
        )
