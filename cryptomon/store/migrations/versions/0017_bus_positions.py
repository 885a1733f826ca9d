"""Bus positions: how far the brain's store has committed the market data of its JetStream
consumer (stream sequence and stream time of the newest message whose rows are all written),
written in the same transaction as those rows, so a brain restarted after a crash skips what
it gets again of them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bus_positions",
        sa.Column("consumer", sa.String(length=160), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("stream_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", name=op.f("pk_bus_positions")),
    )


def downgrade() -> None:
    op.drop_table("bus_positions")
