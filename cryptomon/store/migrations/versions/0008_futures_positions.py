"""Futures positions: side, contracts, settle currency, leverage, margin mode, margins,
liquidation estimate and funding of perpetual and dated-future positions (NULL on spot).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

Types are spelled out (not imported) so this revision stays as written: MONEY is
NUMERIC(36, 18) on PostgreSQL and decimal text on SQLite, like ``cryptomon.store.types.Money``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(36, 18).with_variant(sa.String(64), "sqlite")

COLUMNS = (
    ("side", sa.String(length=8)),
    ("settle", sa.String(length=32)),
    ("contracts", MONEY),
    ("base_amount", MONEY),
    ("leverage", MONEY),
    ("margin_mode", sa.String(length=16)),
    ("initial_margin", MONEY),
    ("maintenance_margin", MONEY),
    ("liquidation_price", MONEY),
    ("funding", MONEY),
)


def upgrade() -> None:
    with op.batch_alter_table("positions") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("positions") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
