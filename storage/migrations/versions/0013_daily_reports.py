"""daily reports: one row per (local day, chat) a health report was posted to; an index on the
audit trail's (kind, at) for the figures' period queries

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "daily_reports",
        sa.Column("id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("chat", sa.String(length=330), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_reports")),
        sa.UniqueConstraint("day", "chat", name="uq_daily_reports_day_chat"),
    )
    op.create_index("ix_ticket_events_kind_at", "ticket_events", ["kind", "at"])


def downgrade() -> None:
    op.drop_index("ix_ticket_events_kind_at", table_name="ticket_events")
    op.drop_table("daily_reports")
