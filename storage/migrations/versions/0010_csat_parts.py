"""csat and parts: the customer's 1–5 rating of a closed ticket; the parts a ticket waits for

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from storage.models import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("parts", _JSON, nullable=True))
        batch.add_column(sa.Column("parts_eta", UTCDateTime(), nullable=True))
    op.create_table(
        "csat_ratings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("rater_id", _ID, nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("asked_at", UTCDateTime(), nullable=False),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("rated_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_csat_ratings_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"], ["people.id"], name=op.f("fk_csat_ratings_rater_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_csat_ratings")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_csat_ratings_ticket_id")),
    )
    op.create_index(op.f("ix_csat_ratings_asked_at"), "csat_ratings", ["asked_at"])
    op.create_index(op.f("ix_csat_ratings_rated_at"), "csat_ratings", ["rated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_csat_ratings_rated_at"), table_name="csat_ratings")
    op.drop_index(op.f("ix_csat_ratings_asked_at"), table_name="csat_ratings")
    op.drop_table("csat_ratings")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("parts_eta")
        batch.drop_column("parts")
