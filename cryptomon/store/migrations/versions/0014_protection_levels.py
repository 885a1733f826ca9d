"""Protection levels: the latest trailed stop of each market's position (its level, the best
price it trails from, the entry order it protects), written as it moves on the book, so a
restart protects the position at the trailed level instead of its entry's stop.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Types are spelled out (not imported) so this revision stays as written: MONEY is
NUMERIC(36, 18) on PostgreSQL and decimal text on SQLite, like ``cryptomon.store.types.Money``;
times are timezone-aware like ``cryptomon.store.types.UTCDateTime``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(36, 18).with_variant(sa.String(64), "sqlite")


def upgrade() -> None:
    op.create_table(
        "protection_levels",
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("stop", MONEY, nullable=False),
        sa.Column("best", MONEY, nullable=False),
        sa.Column("take", MONEY, nullable=True),
        sa.Column("trail_pct", MONEY, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("exchange", "symbol", name=op.f("pk_protection_levels")),
    )


def downgrade() -> None:
    op.drop_table("protection_levels")
