"""events.actor: who caused each event (`user:<sub>`, `user:<sub>;dealer=<id>`, `system:<service>`).

Events stored before it have no record of who caused them: they get `system:unknown`, the actor the store and
consumers also read for a record without one. The default only fills the existing rows: it is dropped right
after, so that no append can leave the actor out (the column is NOT NULL without a default, as the models say).
"""

import sqlalchemy as sa
from alembic import op

revision = "shared_0003"
down_revision = "shared_0002"
branch_labels = None
depends_on = None

UNKNOWN_ACTOR = "system:unknown"  # shared.events.UNKNOWN_ACTOR, as of this revision


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.Text(), nullable=False, server_default=UNKNOWN_ACTOR))
    # A second step: SQLite rebuilds the table to drop a default, copying the actors the first step filled in.
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("actor", existing_type=sa.Text(), existing_nullable=False, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("actor")
