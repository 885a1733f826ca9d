"""Time indexes for retention: BRIN on PostgreSQL (a plain index on SQLite) on trades.ts and
book_tops.ts, so deleting by age does not scan the whole table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("book_tops", schema=None) as batch_op:
        batch_op.create_index("ix_book_tops_ts", ["ts"], unique=False, postgresql_using="brin")
    with op.batch_alter_table("trades", schema=None) as batch_op:
        batch_op.create_index("ix_trades_ts", ["ts"], unique=False, postgresql_using="brin")


def downgrade() -> None:
    with op.batch_alter_table("trades", schema=None) as batch_op:
        batch_op.drop_index("ix_trades_ts", postgresql_using="brin")
    with op.batch_alter_table("book_tops", schema=None) as batch_op:
        batch_op.drop_index("ix_book_tops_ts", postgresql_using="brin")
