"""Retention keeps downloaded and imported history: ``candles.history`` marks the candles of
``crypto-monitor download`` / ``download --from-file`` (trades already carry ``source``), and
the time indexes retention deletes by become partial, covering only the rows it may delete
(``NOT history`` candles, ``source = 'feed'`` trades): a batch finds its live rows below the
cutoff without walking the kept history there.

The trades index is now a partial btree on PostgreSQL too, not 0002's BRIN: with 300k kept
history trades stored before 20k live ones, PostgreSQL planned the batch's ``LIMIT`` as a
sequential scan (the BRIN, partial or not, was never chosen) and read all 300k history rows
to find the first live one (22 ms per batch, growing with the history); over the partial
btree a batch reads ~20 index pages (0.2 ms) whatever the history. Live trades are appended
in time order, so the btree insert is on its rightmost page.

Candles stored before this revision cannot be told apart (a downloaded one was stored like a
venue's live candle): they all become ``history = false``; download them again (only the
missing minutes are fetched, and a stored candle is marked history when a download covers it)
or import them again to keep them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_TRADES = "source = 'feed'"
LIVE_CANDLES = "NOT history"


def upgrade() -> None:
    with op.batch_alter_table("candles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("history", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.drop_index("ix_candles_open_time", table_name="candles")
    op.create_index(
        "ix_candles_live_open_time",
        "candles",
        ["open_time"],
        sqlite_where=sa.text(LIVE_CANDLES),
        postgresql_where=sa.text(LIVE_CANDLES),
    )
    op.drop_index("ix_trades_ts", table_name="trades", postgresql_using="brin")
    op.create_index(
        "ix_trades_feed_ts",
        "trades",
        ["ts"],
        sqlite_where=sa.text(LIVE_TRADES),
        postgresql_where=sa.text(LIVE_TRADES),
    )


def downgrade() -> None:
    op.drop_index("ix_trades_feed_ts", table_name="trades")
    op.create_index("ix_trades_ts", "trades", ["ts"], postgresql_using="brin")
    op.drop_index("ix_candles_live_open_time", table_name="candles")
    op.create_index("ix_candles_open_time", "candles", ["open_time"])
    with op.batch_alter_table("candles", schema=None) as batch_op:
        batch_op.drop_column("history")
