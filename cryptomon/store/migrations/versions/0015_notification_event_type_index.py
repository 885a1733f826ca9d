"""Notification history by event type: an index (event_type, ts, id), so the history's
``event_type`` filter reads a page of a rare type (a kill switch among many anomaly
notifications) from its own index entries, newest first, instead of walking the whole time
order (300k notifications: 90 ms on PostgreSQL, 1.3 s on SQLite; 0.2 ms with the index).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_notifications_event_type_time_id"


def upgrade() -> None:
    op.create_index(NAME, "notifications", ["event_type", "ts", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(NAME, table_name="notifications")
