"""a request's job is found by its id (derived from the request's): no unique index on the jobs' request ids;
a technician's queue and open jobs from one index

Every job inserted paid a page of the request-id index (random ids: a page of its own nearly every time) for a
uniqueness the primary key already keeps, since a job's id is derived from its request's (`job_id_for`); and
two indexes on (technician_id, …) where one serves both the queue and the open-job count.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 08:30:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLite keeps a UNIQUE constraint without a name; the batch's reflection names it by this convention so that it
# can be dropped (the table is rebuilt without it). PostgreSQL named it when it was made.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_UNIQUE_REQUEST = {"sqlite": "uq_dispatch_jobs_request_id"}
_POSTGRESQL_NAME = "dispatch_jobs_request_id_key"


def upgrade() -> None:
    name = _UNIQUE_REQUEST.get(op.get_bind().dialect.name, _POSTGRESQL_NAME)
    with op.batch_alter_table("dispatch_jobs", naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint(name, type_="unique")
        batch_op.drop_index("ix_dispatch_jobs_load")
        batch_op.drop_index("ix_dispatch_jobs_queue")
        batch_op.create_index("ix_dispatch_jobs_open", ["technician_id", "is_load", "queue_key"], unique=False)


def downgrade() -> None:
    name = _UNIQUE_REQUEST.get(op.get_bind().dialect.name, _POSTGRESQL_NAME)
    with op.batch_alter_table("dispatch_jobs", naming_convention=_NAMING) as batch_op:
        batch_op.drop_index("ix_dispatch_jobs_open")
        batch_op.create_index("ix_dispatch_jobs_queue", ["technician_id", "queue_key"], unique=False)
        batch_op.create_index("ix_dispatch_jobs_load", ["technician_id", "is_load"], unique=False)
        batch_op.create_unique_constraint(name, ["request_id"])
