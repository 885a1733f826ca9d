"""The schema: one DeclarativeBase, ``Mapped[]`` columns (DESIGN.md 3.8).

Schema changes go through alembic only (``cryptomon/store/migrations``); a test proves that
autogenerate finds no difference between these models and the migrations on both dialects.

Conventions: times are :class:`~cryptomon.store.types.UTCDateTime`; order, fill, position and
equity amounts are :class:`~cryptomon.store.types.Money` (exact ``Decimal``); market data and
detector outputs are float64. Rows that come from hub events without a natural key carry an
``event_key`` (a digest of the event) with a unique constraint, so a retried batch is written
exactly once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cryptomon.store.types import Money, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments "INTEGER PRIMARY KEY"; PostgreSQL gets BIGINT identity/serial.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        Decimal: Money(),
        float: Double(),
        str: String(64),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


# --------------------------------------------------------------------------- market data

# The rows retention may delete: live trades and candles. Downloaded and imported history
# (``crypto-monitor download``, ``download --from-file``) is kept. Each is the predicate of a
# partial time index (0013_keep_history), written the same in the index and in retention's
# query so both databases match them: the delete walks only live rows, however much history
# lies below the cutoff.
LIVE_TRADES = "source = 'feed'"
LIVE_CANDLES = "NOT history"


class CandleRow(Base):
    """OHLCV per market and interval; upserted on (exchange, symbol, interval, open_time).

    ``source``: ``exchange`` (the venue's candle: always wins an upsert) or ``trades``
    (aggregated from trades). ``history``: downloaded or imported for backtests, kept by
    retention; an upsert keeps it (``history = old OR new``, ``bulk.upsert_candles``)."""

    __tablename__ = "candles"
    __table_args__ = (
        UniqueConstraint("exchange", "symbol", "interval", "open_time"),
        Index(
            "ix_candles_live_open_time",
            "open_time",
            sqlite_where=text(LIVE_CANDLES),
            postgresql_where=text(LIVE_CANDLES),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    interval: Mapped[str] = mapped_column(String(8))
    open_time: Mapped[datetime]
    close_time: Mapped[datetime]
    open: Mapped[float]
    high: Mapped[float]
    low: Mapped[float]
    close: Mapped[float]
    volume: Mapped[float]
    trade_count: Mapped[int | None] = mapped_column(Integer)
    buy_volume: Mapped[float | None]
    sell_volume: Mapped[float | None]
    closed: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(16), default="trades")
    history: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TradeRow(Base):
    """Public trades: live ones (``source = feed``, only with ``storage.trades: true``) are
    subject to retention; downloaded and imported ones (``download`` / ``import``) are kept."""

    __tablename__ = "trades"
    __table_args__ = (
        Index("ix_trades_market_time", "exchange", "symbol", "ts"),
        # retention deletes live trades by time. A btree, not the BRIN of 0002: with kept
        # history below the cutoff, PostgreSQL's LIMIT plan over BRIN was a sequential scan
        # through every history row before the first live one (0013_keep_history)
        Index(
            "ix_trades_feed_ts",
            "ts",
            sqlite_where=text(LIVE_TRADES),
            postgresql_where=text(LIVE_TRADES),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    price: Mapped[float]
    amount: Mapped[float]
    side: Mapped[str] = mapped_column(String(4))
    trade_id: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="feed", server_default="feed")
    # quote-currency value from the instrument spec (null: spec unknown)
    notional: Mapped[float | None]
    # null: live; "historical" (sent on subscribe) or "bad_print" (quarantined)
    flag: Mapped[str | None] = mapped_column(String(16))


class BusPositionRow(Base):
    """How far the brain's store has committed the market data of its JetStream consumer
    (``bus.stream`` / ``bus.durable``): the stream sequence and stream time (ns) of the
    newest message every row derived from which is written, in the same transaction as
    those rows. A brain restarted after a crash skips the messages redelivered up to it."""

    __tablename__ = "bus_positions"

    consumer: Mapped[str] = mapped_column(String(160), primary_key=True)
    stream_seq: Mapped[int] = mapped_column(BigInteger)
    stream_ts_ns: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class BookTopRow(Base):
    """Best bid/ask and depth summary sampled every ``storage.book_sample_s`` per market."""

    __tablename__ = "book_tops"
    __table_args__ = (
        Index("ix_book_tops_market_time", "exchange", "symbol", "ts"),
        Index("ix_book_tops_ts", "ts", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    bid: Mapped[float]
    bid_size: Mapped[float]
    ask: Mapped[float]
    ask_size: Mapped[float]
    spread: Mapped[float]
    spread_bps: Mapped[float]
    bid_depth: Mapped[float]
    ask_depth: Mapped[float]
    imbalance: Mapped[float]
    levels: Mapped[int] = mapped_column(Integer)


# --------------------------------------------------------------------------- detection


_TIME_RANK = ("ts_detected", "id", "severity_rank")  # page order, then the min_severity key


class AnomalyRow(Base):
    """A detector finding, keyed by the event's id."""

    __tablename__ = "anomalies"
    __table_args__ = (
        # list filters newest first straight from an index (0009_read_indexes), min_severity
        # checked on the index entry (0012_anomaly_rank_in_indexes)
        Index("ix_anomalies_market_time_rank", "exchange", "symbol", *_TIME_RANK),
        Index("ix_anomalies_exchange_time_rank", "exchange", *_TIME_RANK),
        Index("ix_anomalies_symbol_time_rank", "symbol", *_TIME_RANK),
        Index("ix_anomalies_kind_time_rank", "kind", *_TIME_RANK),
        Index("ix_anomalies_time_rank", *_TIME_RANK),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    severity_rank: Mapped[int] = mapped_column(Integer)
    value: Mapped[float]
    threshold: Mapped[float]
    confidence: Mapped[float]
    z_score: Mapped[float | None]
    price_change_pct: Mapped[float | None]
    reasons: Mapped[list[Any]]
    window_mean: Mapped[float | None]
    window_std: Mapped[float | None]
    samples: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime]
    ts_detected: Mapped[datetime]
    # the row's item of the anomaly list as JSON (the columns above but severity_rank,
    # times as epoch seconds), written with the row (rows are never updated): a page is
    # these joined by the database (``store/anomaly_json.py``, 0011_anomaly_item_json)
    item: Mapped[str] = mapped_column(Text)


# --------------------------------------------------------------------------- trading


class SignalRow(Base):
    __tablename__ = "signals"
    __table_args__ = (
        Index("ix_signals_market_time", "exchange", "symbol", "ts"),
        Index("ix_signals_ts", "ts"),
        Index("ix_signals_symbol_time_id", "symbol", "ts", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    side: Mapped[str] = mapped_column(String(4))
    strength: Mapped[float]
    source: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[float | None]
    anomaly_id: Mapped[str | None] = mapped_column(String(64))
    grade: Mapped[str | None] = mapped_column(String(8))


class OrderRow(Base):
    """One order by its deterministic client order id; created from the intent."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_market_time", "exchange", "symbol", "created_at"),
        Index("ix_orders_state", "state"),
        Index("ix_orders_symbol_time", "symbol", "created_at"),
        Index("ix_orders_created_at", "created_at"),
    )

    client_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    exchange_order_id: Mapped[str | None] = mapped_column(String(64))
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(24))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal]
    price: Mapped[Decimal | None]
    stop_price: Mapped[Decimal | None]
    stop_loss: Mapped[Decimal | None]
    take_profit: Mapped[Decimal | None]
    filled: Mapped[Decimal]
    avg_price: Mapped[Decimal | None]
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    origin: Mapped[str] = mapped_column(String(16))
    signal_id: Mapped[str | None] = mapped_column(String(64))
    anomaly_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FillRow(Base):
    """One execution; unique per (exchange, trade_id)."""

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("exchange", "trade_id"),
        Index("ix_fills_market_time", "exchange", "symbol", "ts"),
        Index("ix_fills_client_order_id", "client_order_id"),
        Index("ix_fills_symbol_time_id", "symbol", "ts", "id"),
        Index("ix_fills_time_id", "ts", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    trade_id: Mapped[str] = mapped_column(String(64))
    client_order_id: Mapped[str] = mapped_column(String(64))
    exchange_order_id: Mapped[str | None] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[Decimal]
    price: Mapped[Decimal]
    fee: Mapped[Decimal]
    fee_currency: Mapped[str] = mapped_column(String(16))
    liquidity: Mapped[str] = mapped_column(String(8))
    ts: Mapped[datetime]


class PositionRow(Base):
    """The latest state of each position (signed amount; negative = short)."""

    __tablename__ = "positions"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount: Mapped[Decimal]
    avg_price: Mapped[Decimal]
    realized_pnl: Mapped[Decimal]
    unrealized_pnl: Mapped[Decimal]
    fees: Mapped[Decimal]
    mark_price: Mapped[Decimal | None]
    updated_at: Mapped[datetime]
    # perpetuals and futures (NULL on spot): amounts in the settle currency
    side: Mapped[str | None] = mapped_column(String(8))
    settle: Mapped[str | None] = mapped_column(String(32))
    contracts: Mapped[Decimal | None]
    base_amount: Mapped[Decimal | None]
    leverage: Mapped[Decimal | None]
    margin_mode: Mapped[str | None] = mapped_column(String(16))
    initial_margin: Mapped[Decimal | None]
    maintenance_margin: Mapped[Decimal | None]
    liquidation_price: Mapped[Decimal | None]
    funding: Mapped[Decimal | None]


class ProtectionLevelRow(Base):
    """The latest trailed stop of each market's position (``ProtectionUpdate``): its level,
    the best price it trails from and the entry order whose protection it is. A restart
    takes it for the position that entry opened (never looser than the entry's own stop)."""

    __tablename__ = "protection_levels"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    stop: Mapped[Decimal]
    best: Mapped[Decimal]
    take: Mapped[Decimal | None]
    trail_pct: Mapped[Decimal | None]
    updated_at: Mapped[datetime]


class FundingPaymentRow(Base):
    """One funding payment applied to a contract position (settle currency, negative = paid)
    and the price it was converted to the account currency at: replayed after a restart."""

    __tablename__ = "funding_payments"
    __table_args__ = (
        UniqueConstraint("exchange", "payment_id"),
        Index("ix_funding_payments_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[str] = mapped_column(String(128))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(16))
    rate: Mapped[Decimal | None]
    price: Mapped[Decimal]
    ts: Mapped[datetime]


class EquitySnapshotRow(Base):
    """Account equity over time (written by the portfolio)."""

    __tablename__ = "equity_snapshots"
    __table_args__ = (Index("ix_equity_snapshots_ts", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime]
    equity: Mapped[Decimal]
    cash: Mapped[Decimal]
    unrealized_pnl: Mapped[Decimal]
    realized_pnl: Mapped[Decimal]
    exposure: Mapped[Decimal]


class RiskEventRow(Base):
    __tablename__ = "risk_events"
    __table_args__ = (
        UniqueConstraint("event_key"),
        Index("ix_risk_events_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(40))
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    client_order_id: Mapped[str | None] = mapped_column(String(64))
    check: Mapped[str] = mapped_column(String(64))


class InstrumentRow(Base):
    """The cached contract spec of a market (:class:`~cryptomon.market.instruments.InstrumentSpec`):
    sizes are exact; ``contract_size`` is base units per contract (linear) or quote units per
    contract (inverse); ``lot_size`` and ``min_qty`` are in the venue's quantity units."""

    __tablename__ = "instruments"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    base: Mapped[str] = mapped_column(String(32))
    quote: Mapped[str] = mapped_column(String(32))
    settle: Mapped[str | None] = mapped_column(String(32))
    contract_size: Mapped[Decimal]
    inverse: Mapped[bool] = mapped_column(Boolean)
    tick_size: Mapped[Decimal | None]
    lot_size: Mapped[Decimal | None]
    min_qty: Mapped[Decimal | None]
    min_notional: Mapped[Decimal | None]
    expiry: Mapped[datetime | None]
    updated_at: Mapped[datetime]


# --------------------------------------------------------------------------- operations


class NotificationRow(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_key"),
        Index("ix_notifications_channel_time", "channel", "ts"),
        Index("ix_notifications_status_time", "status", "ts"),
        Index("ix_notifications_time_id", "ts", "id"),
        Index("ix_notifications_event_type_time_id", "event_type", "ts", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime]
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(16))
    event_type: Mapped[str] = mapped_column(String(32))
    ref_id: Mapped[str | None] = mapped_column(String(64))


class AuditRow(Base):
    """Every manual order, config change, kill switch and refused attempt: who, what, from
    where (client address, API request id), with which payload."""

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("event_key"),
        Index("ix_audit_log_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    client: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))


class FeedEventRow(Base):
    """Connect, disconnect, stall, gap and resync of the feeds."""

    __tablename__ = "feed_events"
    __table_args__ = (
        UniqueConstraint("event_key"),
        Index("ix_feed_events_market_time", "exchange", "symbol", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime]
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)


class BacktestRunRow(Base):
    """One ``crypto-monitor backtest`` run: its parameters, summary, trades and HTML report.

    A variant of a sweep (``--sweep``) has ``sweep_id`` (the run id of the sweep's best
    variant), ``sweep_rank`` (1 for the best) and ``sweep_metric`` (what it was ranked by);
    a single run has none of them."""

    __tablename__ = "backtest_runs"
    __table_args__ = (
        Index("ix_backtest_runs_created_at", "created_at"),
        Index("ix_backtest_runs_sweep", "sweep_id", "sweep_rank"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(200))
    symbols: Mapped[list[Any]]
    start: Mapped[datetime]
    end: Mapped[datetime]
    params: Mapped[dict[str, Any]]
    summary: Mapped[dict[str, Any]]
    breakdown: Mapped[dict[str, Any]]
    trades: Mapped[list[Any]]
    digest: Mapped[str] = mapped_column(String(64))
    report_html: Mapped[str | None] = mapped_column(Text)
    sweep_id: Mapped[int | None] = mapped_column(BigInteger)
    sweep_rank: Mapped[int | None] = mapped_column(Integer)
    sweep_metric: Mapped[str | None] = mapped_column(String(32))


MARKET_TABLES = (TradeRow, BookTopRow, CandleRow)
"""Tables subject to ``storage.retention_days`` (time column: ``ts`` or ``open_time``)."""

RETENTION_WHERE: dict[str, str] = {"trades": LIVE_TRADES, "candles": LIVE_CANDLES}
"""Per market table, the rows retention deletes (all of ``book_tops``: never history)."""
