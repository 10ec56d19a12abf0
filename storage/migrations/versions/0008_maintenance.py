"""maintenance: preventive-maintenance runs and repeat-failure suggestions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from storage.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pm_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("plan_key", sa.String(length=200), nullable=False),
        sa.Column("asset_id", _ID, nullable=False),
        sa.Column("slot", sa.String(length=40), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("due_meter", sa.Double(), nullable=True),
        sa.Column("ticket_id", _ID, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_pm_runs_asset_id_assets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pm_runs")),
        sa.UniqueConstraint(
            "plan_key", "asset_id", "slot", name=op.f("uq_pm_runs_plan_asset_slot")
        ),
    )
    op.create_index(op.f("ix_pm_runs_asset_id"), "pm_runs", ["asset_id"])
    op.create_index(op.f("ix_pm_runs_ticket_id"), "pm_runs", ["ticket_id"])
    op.create_table(
        "maintenance_suggestions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("asset_id", _ID, nullable=False),
        sa.Column("trigger_ticket_id", _ID, nullable=False),
        sa.Column("tickets", _JSON, nullable=False),
        sa.Column("days", sa.Double(), nullable=False),
        sa.Column("teams", _JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_maintenance_suggestions_asset_id_assets")
        ),
        sa.ForeignKeyConstraint(
            ["trigger_ticket_id"],
            ["tickets.id"],
            name=op.f("fk_maintenance_suggestions_trigger_ticket_id_tickets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_suggestions")),
        sa.UniqueConstraint(
            "asset_id", "trigger_ticket_id", name=op.f("uq_maintenance_suggestions_asset")
        ),
    )
    op.create_index(
        op.f("ix_maintenance_suggestions_asset_id"), "maintenance_suggestions", ["asset_id"]
    )
    op.create_index(
        op.f("ix_maintenance_suggestions_created_at"), "maintenance_suggestions", ["created_at"]
    )


def downgrade() -> None:
    op.drop_table("maintenance_suggestions")
    op.drop_table("pm_runs")
