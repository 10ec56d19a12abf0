"""units of work: audit chain heads on tickets, lanes and senders on inbound events

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

- ``tickets.audit_seq`` / ``audit_hash``: the head of each ticket's audit chain, so a unit of
  work chains a new row without reading the trail (filled from the trail here).
- ``tickets (assignee_id, state)``: engineers' open loads for routing, from the index alone.
- ``inbound_events.lane``: the chat an event belongs to (its events are handled in order, by
  one worker at a time); ``sender_platform`` / ``sender_id``: the claim finds who sent each
  event in the same statement.
- A partial index on the outbox rows still waiting, per destination: the head-of-line check
  reads only those, however long a chat's history.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "status IN ('pending', 'processing')"
_WAITING = "state IN ('pending', 'sending')"


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("audit_seq", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("audit_hash", sa.String(length=64), nullable=False, server_default="0" * 64)
        )
        batch_op.create_index("ix_tickets_assignee_state", ["assignee_id", "state"], unique=False)
    op.execute(
        """
        UPDATE tickets SET
          audit_seq = (SELECT e.seq FROM ticket_events e WHERE e.ticket_id = tickets.id
                       ORDER BY e.seq DESC LIMIT 1),
          audit_hash = (SELECT e.hash FROM ticket_events e WHERE e.ticket_id = tickets.id
                        ORDER BY e.seq DESC LIMIT 1)
        WHERE EXISTS (SELECT 1 FROM ticket_events e WHERE e.ticket_id = tickets.id)
        """
    )
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lane", sa.String(length=330), nullable=True))
        batch_op.add_column(sa.Column("sender_platform", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("sender_id", sa.String(length=200), nullable=True))
    op.create_index(
        "ix_inbound_events_open_lane",
        "inbound_events",
        ["lane", "id"],
        unique=False,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )
    op.create_index(
        "ix_outbox_waiting_destination",
        "outbox",
        ["destination", "id"],
        unique=False,
        sqlite_where=sa.text(_WAITING),
        postgresql_where=sa.text(_WAITING),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_waiting_destination", table_name="outbox")
    op.drop_index("ix_inbound_events_open_lane", table_name="inbound_events")
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.drop_column("sender_id")
        batch_op.drop_column("sender_platform")
        batch_op.drop_column("lane")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_assignee_state")
        batch_op.drop_column("audit_hash")
        batch_op.drop_column("audit_seq")
