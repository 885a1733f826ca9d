"""Funding payments: every payment the engine applied to a contract position (paper: from
``Funding`` events; live: the venue's income history), with the price it was converted at, so
a restart replays them with the fills (a paper account's funding survives restarts).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

Types are spelled out (not imported) so this revision stays as written: MONEY is
NUMERIC(36, 18) on PostgreSQL and decimal text on SQLite, like ``cryptomon.store.types.Money``;
times are timezone-aware like ``cryptomon.store.types.UTCDateTime``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(36, 18).with_variant(sa.String(64), "sqlite")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "funding_payments",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=128), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("rate", MONEY, nullable=True),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_payments")),
        sa.UniqueConstraint(
            "exchange", "payment_id", name=op.f("uq_funding_payments_exchange_payment_id")
        ),
    )
    op.create_index("ix_funding_payments_ts", "funding_payments", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_funding_payments_ts", table_name="funding_payments")
    op.drop_table("funding_payments")
