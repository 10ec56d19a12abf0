"""parts catalog: the spare parts the stores keep, and each store's stock of them

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from storage.models import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "parts_catalog",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("aliases", _JSON, nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parts_catalog")),
        sa.UniqueConstraint("code", name=op.f("uq_parts_catalog_code")),
    )
    op.create_table(
        "part_stock",
        sa.Column("id", _ID, nullable=False),
        sa.Column("part_id", _ID, nullable=False),
        sa.Column("store", sa.String(length=100), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["part_id"], ["parts_catalog.id"], name=op.f("fk_part_stock_part_id_parts_catalog")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_part_stock")),
        sa.UniqueConstraint("part_id", "store", name=op.f("uq_part_stock_part_id")),
    )
    op.create_index(op.f("ix_part_stock_part_id"), "part_stock", ["part_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_part_stock_part_id"), table_name="part_stock")
    op.drop_table("part_stock")
    op.drop_table("parts_catalog")
