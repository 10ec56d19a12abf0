"""assets: organisations, sites and assets; tickets name their asset and what they merged into

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from storage.models import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("code", name=op.f("uq_organisations_code")),
    )
    op.create_table(
        "sites",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organisation_id", _ID, nullable=True),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_sites_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("code", name=op.f("uq_sites_code")),
    )
    op.create_index(op.f("ix_sites_organisation_id"), "sites", ["organisation_id"])
    op.create_table(
        "assets",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("aliases", _JSON, nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("site_id", _ID, nullable=True),
        sa.Column("organisation_id", _ID, nullable=True),
        sa.Column("install_date", sa.Date(), nullable=True),
        sa.Column("warranty_end", sa.Date(), nullable=True),
        sa.Column("preferred_engineer", sa.String(length=200), nullable=True),
        sa.Column("meter", sa.Double(), nullable=True),
        sa.Column("meter_unit", sa.String(length=20), nullable=True),
        sa.Column("meter_at", UTCDateTime(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_assets_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_assets_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("code", name=op.f("uq_assets_code")),
    )
    op.create_index(op.f("ix_assets_site_id"), "assets", ["site_id"])
    op.create_index(op.f("ix_assets_organisation_id"), "assets", ["organisation_id"])
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("asset_id", _ID, nullable=True))
        batch_op.add_column(sa.Column("merged_into", _ID, nullable=True))
        batch_op.create_index(batch_op.f("ix_tickets_asset_id"), ["asset_id"])
        batch_op.create_index(batch_op.f("ix_tickets_merged_into"), ["merged_into"])
        batch_op.create_foreign_key(
            batch_op.f("fk_tickets_asset_id_assets"), "assets", ["asset_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_tickets_merged_into_tickets"), "tickets", ["merged_into"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tickets_merged_into_tickets"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_tickets_asset_id_assets"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_tickets_merged_into"))
        batch_op.drop_index(batch_op.f("ix_tickets_asset_id"))
        batch_op.drop_column("merged_into")
        batch_op.drop_column("asset_id")
    op.drop_table("assets")
    op.drop_table("sites")
    op.drop_table("organisations")
