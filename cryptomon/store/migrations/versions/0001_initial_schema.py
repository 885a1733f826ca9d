"""Initial schema: market data, detection, trading and operations tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Types are spelled out here (not imported from the package) so this revision stays as it was
written: MONEY is NUMERIC(36, 18) on PostgreSQL and decimal text on SQLite, like
``cryptomon.store.types.Money``; timestamps are ``TIMESTAMP WITH TIME ZONE`` / SQLite text.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(36, 18).with_variant(sa.String(64), "sqlite")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "anomalies",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("severity_rank", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("z_score", sa.Double(), nullable=True),
        sa.Column("price_change_pct", sa.Double(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("window_mean", sa.Double(), nullable=True),
        sa.Column("window_std", sa.Double(), nullable=True),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ts_detected", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomalies")),
    )
    with op.batch_alter_table("anomalies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_anomalies_kind_time", ["kind", "severity", "ts_detected"], unique=False
        )
        batch_op.create_index(
            "ix_anomalies_market_time", ["exchange", "symbol", "ts_detected"], unique=False
        )
        batch_op.create_index("ix_anomalies_time_id", ["ts_detected", "id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_key", sa.String(length=40), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("event_key", name=op.f("uq_audit_log_event_key")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_ts", ["ts"], unique=False)

    op.create_table(
        "book_tops",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bid", sa.Double(), nullable=False),
        sa.Column("bid_size", sa.Double(), nullable=False),
        sa.Column("ask", sa.Double(), nullable=False),
        sa.Column("ask_size", sa.Double(), nullable=False),
        sa.Column("spread", sa.Double(), nullable=False),
        sa.Column("spread_bps", sa.Double(), nullable=False),
        sa.Column("bid_depth", sa.Double(), nullable=False),
        sa.Column("ask_depth", sa.Double(), nullable=False),
        sa.Column("imbalance", sa.Double(), nullable=False),
        sa.Column("levels", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_tops")),
    )
    with op.batch_alter_table("book_tops", schema=None) as batch_op:
        batch_op.create_index(
            "ix_book_tops_market_time", ["exchange", "symbol", "ts"], unique=False
        )

    op.create_table(
        "candles",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("open_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("volume", sa.Double(), nullable=False),
        sa.Column("trade_count", sa.Integer(), nullable=True),
        sa.Column("buy_volume", sa.Double(), nullable=True),
        sa.Column("sell_volume", sa.Double(), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candles")),
        sa.UniqueConstraint(
            "exchange",
            "symbol",
            "interval",
            "open_time",
            name=op.f("uq_candles_exchange_symbol_interval_open_time"),
        ),
    )
    with op.batch_alter_table("candles", schema=None) as batch_op:
        batch_op.create_index("ix_candles_open_time", ["open_time"], unique=False)

    op.create_table(
        "equity_snapshots",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("equity", MONEY, nullable=False),
        sa.Column("cash", MONEY, nullable=False),
        sa.Column("unrealized_pnl", MONEY, nullable=False),
        sa.Column("realized_pnl", MONEY, nullable=False),
        sa.Column("exposure", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equity_snapshots")),
    )
    with op.batch_alter_table("equity_snapshots", schema=None) as batch_op:
        batch_op.create_index("ix_equity_snapshots_ts", ["ts"], unique=False)

    op.create_table(
        "feed_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_key", sa.String(length=40), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_feed_events_event_key")),
    )
    with op.batch_alter_table("feed_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feed_events_market_time", ["exchange", "symbol", "ts"], unique=False
        )

    op.create_table(
        "fills",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("trade_id", sa.String(length=64), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("exchange_order_id", sa.String(length=64), nullable=True),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("fee", MONEY, nullable=False),
        sa.Column("fee_currency", sa.String(length=16), nullable=False),
        sa.Column("liquidity", sa.String(length=8), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("exchange", "trade_id", name=op.f("uq_fills_exchange_trade_id")),
    )
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.create_index("ix_fills_client_order_id", ["client_order_id"], unique=False)
        batch_op.create_index("ix_fills_market_time", ["exchange", "symbol", "ts"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_key", sa.String(length=40), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("ref_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("event_key", name=op.f("uq_notifications_event_key")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_channel_time", ["channel", "ts"], unique=False)
        batch_op.create_index("ix_notifications_status_time", ["status", "ts"], unique=False)

    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("exchange_order_id", sa.String(length=64), nullable=True),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("price", MONEY, nullable=True),
        sa.Column("stop_price", MONEY, nullable=True),
        sa.Column("stop_loss", MONEY, nullable=True),
        sa.Column("take_profit", MONEY, nullable=True),
        sa.Column("filled", MONEY, nullable=False),
        sa.Column("avg_price", MONEY, nullable=True),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("signal_id", sa.String(length=64), nullable=True),
        sa.Column("anomaly_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_order_id", name=op.f("pk_orders")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_market_time", ["exchange", "symbol", "created_at"], unique=False
        )
        batch_op.create_index("ix_orders_state", ["state"], unique=False)

    op.create_table(
        "positions",
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("avg_price", MONEY, nullable=False),
        sa.Column("realized_pnl", MONEY, nullable=False),
        sa.Column("unrealized_pnl", MONEY, nullable=False),
        sa.Column("fees", MONEY, nullable=False),
        sa.Column("mark_price", MONEY, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("exchange", "symbol", name=op.f("pk_positions")),
    )
    op.create_table(
        "risk_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_key", sa.String(length=40), nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=True),
        sa.Column("check", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_risk_events_event_key")),
    )
    with op.batch_alter_table("risk_events", schema=None) as batch_op:
        batch_op.create_index("ix_risk_events_ts", ["ts"], unique=False)

    op.create_table(
        "signals",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("strength", sa.Double(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("price", sa.Double(), nullable=True),
        sa.Column("anomaly_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
    )
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.create_index("ix_signals_market_time", ["exchange", "symbol", "ts"], unique=False)

    op.create_table(
        "trades",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("amount", sa.Double(), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("trade_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
    )
    with op.batch_alter_table("trades", schema=None) as batch_op:
        batch_op.create_index("ix_trades_market_time", ["exchange", "symbol", "ts"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("trades", schema=None) as batch_op:
        batch_op.drop_index("ix_trades_market_time")

    op.drop_table("trades")
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_index("ix_signals_market_time")

    op.drop_table("signals")
    with op.batch_alter_table("risk_events", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_events_ts")

    op.drop_table("risk_events")
    op.drop_table("positions")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_state")
        batch_op.drop_index("ix_orders_market_time")

    op.drop_table("orders")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_status_time")
        batch_op.drop_index("ix_notifications_channel_time")

    op.drop_table("notifications")
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.drop_index("ix_fills_market_time")
        batch_op.drop_index("ix_fills_client_order_id")

    op.drop_table("fills")
    with op.batch_alter_table("feed_events", schema=None) as batch_op:
        batch_op.drop_index("ix_feed_events_market_time")

    op.drop_table("feed_events")
    with op.batch_alter_table("equity_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_equity_snapshots_ts")

    op.drop_table("equity_snapshots")
    with op.batch_alter_table("candles", schema=None) as batch_op:
        batch_op.drop_index("ix_candles_open_time")

    op.drop_table("candles")
    with op.batch_alter_table("book_tops", schema=None) as batch_op:
        batch_op.drop_index("ix_book_tops_market_time")

    op.drop_table("book_tops")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_ts")

    op.drop_table("audit_log")
    with op.batch_alter_table("anomalies", schema=None) as batch_op:
        batch_op.drop_index("ix_anomalies_time_id")
        batch_op.drop_index("ix_anomalies_market_time")
        batch_op.drop_index("ix_anomalies_kind_time")

    op.drop_table("anomalies")
