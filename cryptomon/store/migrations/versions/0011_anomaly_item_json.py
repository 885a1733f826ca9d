"""Anomaly items: every anomaly row stores its item of the anomaly list as JSON (``item``: the
columns a page shows, times as epoch seconds), so a page is the items joined by the database
in one statement instead of each row converted and serialized on every read. Rows are never
updated once written; existing rows are filled here, in batches, by the function the store
writes new rows with (``cryptomon.store.anomaly_json.anomaly_item``: imported, not spelled
out, because the bytes must be the ones the store serves), then the column is NOT NULL.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cryptomon.store.anomaly_json import anomaly_item

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
_FLOAT = ("value", "threshold", "confidence", "z_score", "price_change_pct")
_FLOAT2 = ("window_mean", "window_std")
ANOMALIES = sa.table(
    "anomalies",
    *(sa.column(name, sa.String()) for name in ("id", "exchange", "symbol", "kind", "severity")),
    *(sa.column(name, sa.Double()) for name in (*_FLOAT, *_FLOAT2)),
    sa.column("reasons", sa.JSON()),
    sa.column("samples", sa.Integer()),
    sa.column("ts", sa.DateTime(timezone=True)),
    sa.column("ts_detected", sa.DateTime(timezone=True)),
    sa.column("item", sa.Text()),
)


def upgrade() -> None:
    op.add_column("anomalies", sa.Column("item", sa.Text(), nullable=True))
    bind = op.get_bind()
    t = ANOMALIES
    columns = [c for c in t.c if c.name != "item"]
    update = sa.update(t).where(t.c.id == sa.bindparam("key")).values(item=sa.bindparam("new_item"))
    last = None
    while True:
        stmt = sa.select(*columns).order_by(t.c.id).limit(BATCH)
        if last is not None:
            stmt = stmt.where(t.c.id > last)
        rows = bind.execute(stmt).mappings().all()
        if not rows:
            break
        params = [
            {"key": row["id"], "new_item": anomaly_item(dict(row), dialect=bind.dialect.name)}
            for row in rows
        ]
        bind.execute(update, params)
        last = rows[-1]["id"]
    with op.batch_alter_table("anomalies") as batch:
        batch.alter_column("item", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("anomalies") as batch:
        batch.drop_column("item")
