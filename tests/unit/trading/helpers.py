"""Shared builders for the trading tests: market data events and an engine on the paper broker."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cryptomon.clock import Clock, ManualClock
from cryptomon.config import TradingConfig
from cryptomon.events import Anomaly, BookSnapshot, BookTop, FeedStatus, Severity, Trade
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal

EX = "binance"
SYM = "BTC-USDT"


def book(
    hub: Hub,
    clock: Clock,
    *,
    bid: float,
    ask: float,
    size: float = 1.0,
    levels: int = 5,
    step: float = 1.0,
    exchange: str = EX,
    symbol: str = SYM,
) -> None:
    """Publish a BookSnapshot and a BookTop with ``levels`` levels of ``size`` each side."""
    now = clock.time()
    bids = tuple((bid - i * step, size) for i in range(levels))
    asks = tuple((ask + i * step, size) for i in range(levels))
    hub.publish(
        BookSnapshot(exchange=exchange, symbol=symbol, ts=now, ts_recv=now, bids=bids, asks=asks)
    )
    hub.publish(
        BookTop(
            exchange=exchange,
            symbol=symbol,
            ts=now,
            ts_recv=now,
            bid=bid,
            bid_size=size,
            ask=ask,
            ask_size=size,
            spread=ask - bid,
            spread_bps=(ask - bid) / bid * 1e4,
            bid_depth=size * levels,
            ask_depth=size * levels,
            imbalance=0.0,
            levels=levels,
        )
    )


def trade(
    hub: Hub,
    clock: Clock,
    *,
    price: float,
    amount: float,
    side: str = "buy",
    exchange: str = EX,
    symbol: str = SYM,
) -> None:
    now = clock.time()
    hub.publish(
        Trade(
            exchange=exchange,
            symbol=symbol,
            ts=now,
            ts_recv=now,
            price=price,
            amount=amount,
            side=side,
        )
    )  # type: ignore[arg-type]


def status(hub: Hub, clock: Clock, state: str, *, exchange: str = EX, symbol: str = SYM) -> None:
    now = clock.time()
    hub.publish(
        FeedStatus(
            exchange=exchange, symbol=symbol, ts=now, ts_recv=now, channel="book", status=state
        )
    )  # type: ignore[arg-type]


def anomaly(
    clock: Clock,
    *,
    change: float,
    z: float | None = 4.0,
    kind: str = "volume",
    confidence: float = 90.0,
    exchange: str = EX,
    symbol: str = SYM,
) -> Anomaly:
    now = clock.time()
    return Anomaly(
        exchange=exchange,
        symbol=symbol,
        ts=now,
        ts_recv=now,
        kind=kind,
        severity=Severity.HIGH,
        value=change,
        threshold=1.0,
        confidence=confidence,
        z_score=z,
        price_change_pct=change,
        ts_detected=now,
    )


def trading_config(**overrides: Any) -> TradingConfig:
    base: dict[str, Any] = {
        "auto_trading_enabled": True,
        "max_position_size": 1000.0,
        "max_symbol_exposure": 1000.0,
        "max_total_exposure": 3000.0,
        "poll_interval_s": 0.05,
        "mark_interval_s": 0.05,
        "paper": {
            "taker_fee": 0.001,
            "maker_fee": 0.0005,
            "starting_balance": 10000.0,
            "tick_size": 0.01,
            "lot_size": 0.0001,
            "min_notional": 5.0,
        },
    }
    base.update(overrides)
    return TradingConfig.model_validate(base)


def paper_engine(
    *,
    config: TradingConfig | None = None,
    hub: Hub | None = None,
    clock: Clock | None = None,
    journal: Any = None,
) -> tuple[TradingEngine, PaperBroker, Hub, MarketState, Clock]:
    hub = hub or Hub()
    clock = clock or ManualClock()
    cfg = config or trading_config()
    market = MarketState(hub=hub)
    broker = PaperBroker(
        config=cfg.paper, market=market, hub=hub, clock=clock, allow_short=cfg.allow_short
    )
    journal = journal if journal is not None else MemoryJournal(hub=hub)
    engine = TradingEngine(
        config=cfg, hub=hub, clock=clock, broker=broker, market=market, journal=journal
    )
    return engine, broker, hub, market, clock


class Collector:
    """Collects every event of the given types from the hub."""

    def __init__(self, hub: Hub, *types: type) -> None:
        self.events: list[Any] = []
        for t in types:
            hub.subscribe(t, self.events.append, name=f"collector.{t.__name__}")

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


def d(x: float | str) -> Decimal:
    return Decimal(str(x))


async def advance_until(
    clock: ManualClock,
    predicate: Any,
    *,
    step: float = 1.0,
    limit: int = 500,
    message: str = "condition",
) -> None:
    """Move a ManualClock forward in steps, letting tasks run, until ``predicate()``."""
    import asyncio

    for _ in range(limit):
        if predicate():
            return
        clock.advance(step)
        for _ in range(5):
            await asyncio.sleep(0)
    raise AssertionError(f"{message} not reached after {limit} steps of {step}s")
