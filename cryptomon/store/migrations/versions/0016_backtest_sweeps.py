"""Backtest sweeps: each variant of ``crypto-monitor backtest --sweep`` is a stored run, linked
to its sweep by ``sweep_id`` (the run id of the sweep's best variant), ``sweep_rank`` (1 for the
best) and ``sweep_metric`` (what the sweep ranked by). Runs stored before were single runs: all
three NULL. The index serves ``GET /api/v1/backtests?sweep=ID`` (its variants by rank).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("backtest_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sweep_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("sweep_rank", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sweep_metric", sa.String(length=32), nullable=True))
    op.create_index(
        "ix_backtest_runs_sweep", "backtest_runs", ["sweep_id", "sweep_rank"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_backtest_runs_sweep", table_name="backtest_runs")
    with op.batch_alter_table("backtest_runs", schema=None) as batch_op:
        batch_op.drop_column("sweep_metric")
        batch_op.drop_column("sweep_rank")
        batch_op.drop_column("sweep_id")
