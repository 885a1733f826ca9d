"""Trades carry their units and quality: ``notional`` (quote currency, from the instrument
spec; null when the spec is unknown) and ``flag`` (null for a live trade, ``historical`` for
history sent on subscribe, ``bad_print`` for a quarantined print).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("notional", sa.Double(), nullable=True))
        batch.add_column(sa.Column("flag", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.drop_column("flag")
        batch.drop_column("notional")
