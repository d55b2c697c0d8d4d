"""namespaced stream ids: `product:<serial>`, `claim:<id>`, `coverage:<request id>`

Before, a unit's stream was its bare serial, a claim's its bare id and a coverage check's the bare request id,
so a serial chosen equal to another dealer's claim id appended product events to that claim's stream. Each
stored event moves to the stream of its own aggregate type (events.stream_type says which, per event), so a
stream that collided is split in two; the events of a split stream are renumbered 1..n in their stored order.

Already published events are unaffected: their subject on Kafka was, and stays, the business id (the relay
strips the namespace, `publish_business_ids`); the outbox refers to events by position, which does not change.
Only events of a split stream that are still in the outbox are published with their renumbered `ce_sequence`.
Warranty policies were already namespaced (`policy:<product line>`).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = "shared_0002"  # stream ids of 120 characters

NAMESPACES = {"unit": "product:", "claim": "claim:", "coverage_check": "coverage:"}


def upgrade() -> None:
    bind = op.get_bind()
    for stream_type, prefix in NAMESPACES.items():
        bind.execute(
            sa.text(
                "UPDATE events SET stream_id = :prefix || stream_id "
                "WHERE stream_type = :stream_type AND stream_id NOT LIKE :pattern"
            ),
            {"prefix": prefix, "stream_type": stream_type, "pattern": prefix + "%"},
        )
    _renumber_split_streams(bind)


def _renumber_split_streams(bind) -> None:
    """Versions 1..n in position order, in the streams where they are not (only streams that were split)."""
    rows = bind.execute(
        sa.text(
            "SELECT stream_id, position, version FROM events WHERE stream_type IN ('unit', 'claim', 'coverage_check') "
            "ORDER BY stream_id, position"
        )
    ).all()
    streams: dict[str, list[tuple[int, int]]] = {}
    for stream_id, position, version in rows:
        streams.setdefault(stream_id, []).append((position, version))
    for stored in streams.values():
        if [version for _, version in stored] == list(range(1, len(stored) + 1)):
            continue
        # Through negative versions first: (stream_id, version) is unique at every step.
        for position, _ in stored:
            bind.execute(sa.text("UPDATE events SET version = -position WHERE position = :p"), {"p": position})
        for number, (position, _) in enumerate(stored, start=1):
            bind.execute(sa.text("UPDATE events SET version = :v WHERE position = :p"), {"v": number, "p": position})


def downgrade() -> None:
    bind = op.get_bind()
    for stream_type, prefix in NAMESPACES.items():
        bind.execute(
            sa.text(
                "UPDATE events SET stream_id = substr(stream_id, :start) "
                "WHERE stream_type = :stream_type AND stream_id LIKE :pattern"
            ),
            {"start": len(prefix) + 1, "stream_type": stream_type, "pattern": prefix + "%"},
        )
