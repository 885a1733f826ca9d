"""Read indexes: every documented filter of the list routes (anomalies, orders, fills, signals,
alert history) is served newest first straight from an index ending in the sort key (time, id),
so a page reads ``limit`` index entries instead of sorting every matching row.

Anomalies: (exchange, symbol, ts_detected) and (kind, severity, ts_detected) become
(exchange, symbol, ts_detected, id) and (kind, ts_detected, id) (``min_severity`` is a range on
``severity_rank``: filtered while walking the time order); exchange alone and symbol alone get
their own. Orders, fills, signals: symbol alone, and the unfiltered time order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = (
    ("anomalies", "ix_anomalies_market_time", ["exchange", "symbol", "ts_detected"]),
    ("anomalies", "ix_anomalies_kind_time", ["kind", "severity", "ts_detected"]),
)
CREATED = (
    ("anomalies", "ix_anomalies_market_time_id", ["exchange", "symbol", "ts_detected", "id"]),
    ("anomalies", "ix_anomalies_exchange_time_id", ["exchange", "ts_detected", "id"]),
    ("anomalies", "ix_anomalies_symbol_time_id", ["symbol", "ts_detected", "id"]),
    ("anomalies", "ix_anomalies_kind_time_id", ["kind", "ts_detected", "id"]),
    ("orders", "ix_orders_symbol_time", ["symbol", "created_at"]),
    ("orders", "ix_orders_created_at", ["created_at"]),
    ("fills", "ix_fills_symbol_time_id", ["symbol", "ts", "id"]),
    ("fills", "ix_fills_time_id", ["ts", "id"]),
    ("signals", "ix_signals_symbol_time_id", ["symbol", "ts", "id"]),
    ("notifications", "ix_notifications_time_id", ["ts", "id"]),
)


def upgrade() -> None:
    for table, name, _columns in DROPPED:
        op.drop_index(name, table_name=table)
    for table, name, columns in CREATED:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for table, name, _columns in reversed(CREATED):
        op.drop_index(name, table_name=table)
    for table, name, columns in DROPPED:
        op.create_index(name, table, columns, unique=False)
