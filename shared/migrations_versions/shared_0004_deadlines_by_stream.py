"""deadlines by stream: the unit of work looks up a stream's pending deadlines on every commit of an aggregate
with deadlines; without this index that look-up scanned every pending deadline of the service.
"""

from alembic import op

revision = "shared_0004"
down_revision = "shared_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deadlines", schema=None) as batch_op:
        batch_op.create_index("ix_deadlines_stream", ["stream_id", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deadlines", schema=None) as batch_op:
        batch_op.drop_index("ix_deadlines_stream")
