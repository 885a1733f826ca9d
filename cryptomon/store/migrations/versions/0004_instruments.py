"""Instrument specs cache: one row per (exchange, symbol) with its contract size, inverse
flag, tick, lot and minimums, so a restart or a replay knows its units offline.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

Types are spelled out (not imported) so this revision stays as written: MONEY is
NUMERIC(36, 18) on PostgreSQL and decimal text on SQLite, like ``cryptomon.store.types.Money``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(36, 18).with_variant(sa.String(64), "sqlite")


def upgrade() -> None:
    op.create_table(
        "instruments",
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("base", sa.String(length=32), nullable=False),
        sa.Column("quote", sa.String(length=32), nullable=False),
        sa.Column("settle", sa.String(length=32), nullable=True),
        sa.Column("contract_size", MONEY, nullable=False),
        sa.Column("inverse", sa.Boolean(), nullable=False),
        sa.Column("tick_size", MONEY, nullable=True),
        sa.Column("lot_size", MONEY, nullable=True),
        sa.Column("min_qty", MONEY, nullable=True),
        sa.Column("min_notional", MONEY, nullable=True),
        sa.Column("expiry", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("exchange", "symbol", name=op.f("pk_instruments")),
    )


def downgrade() -> None:
    op.drop_table("instruments")
