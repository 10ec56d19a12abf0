"""repeat indexes: a report's look for recent tickets of its site or asset is an index range

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_site_updated", "tickets", ["site", "updated_at"])
    op.create_index("ix_tickets_asset_updated", "tickets", ["asset_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_asset_updated", table_name="tickets")
    op.drop_index("ix_tickets_site_updated", table_name="tickets")
