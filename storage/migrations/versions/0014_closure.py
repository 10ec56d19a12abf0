"""closure: checklist ticks, photo count and auto-close notice on tickets; evidence photos

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from storage.models import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("checklist", _JSON, nullable=True))
        batch.add_column(sa.Column("photos", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("close_notice_at", UTCDateTime(), nullable=True))
    op.create_table(
        "ticket_evidence",
        sa.Column("id", _ID, nullable=False),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("media_type", sa.String(30), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("person_id", _ID, nullable=True),
        sa.Column("via", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_evidence_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_ticket_evidence_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_evidence")),
        sa.UniqueConstraint("ticket_id", "sha256", name=op.f("uq_ticket_evidence_ticket_id")),
    )
    op.create_index(op.f("ix_ticket_evidence_ticket_id"), "ticket_evidence", ["ticket_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_evidence_ticket_id"), table_name="ticket_evidence")
    op.drop_table("ticket_evidence")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("close_notice_at")
        batch.drop_column("photos")
        batch.drop_column("checklist")
