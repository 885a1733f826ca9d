"""A live perpetuals engine (ccxt ``binanceusdm`` on the simulator's USD-M venue, journal and
store writer on a SQLite file) for the crash tests: run as ``python -m tests.e2e.futures_rig
URL DB [native]`` it places one 5x long (with ``native``: its stop-loss and take-profit rest on
the venue) and waits to be killed; the test restarts the same engine on the same database in
its own process."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from decimal import Decimal

from cryptomon.clock import LiveClock
from cryptomon.config import load_settings
from cryptomon.events import BookTop
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.state import MarketState
from cryptomon.store.db import Database
from cryptomon.store.journal import StoreJournal
from cryptomon.store.writer import StoreWriter
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.engine import TradingEngine

EX, PERP = "binanceusdm", "BTC-USDT-PERP"
KEY, SECRET = "kill-key", "kill-secret"
SPEC = InstrumentSpec(
    exchange=EX,
    symbol=PERP,
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDT",
    settle="USDT",
    tick_size=Decimal("0.1"),
    lot_size=Decimal("0.001"),
)


@dataclass
class Rig:
    engine: TradingEngine
    writer: StoreWriter
    db: Database
    hub: Hub

    async def stop(self) -> None:
        await self.engine.stop()
        await self.writer.stop()
        await self.db.stop()


def specs(exchange: str, symbol: str) -> InstrumentSpec | None:
    return SPEC if (exchange, symbol) == (EX, PERP) else None


def top(hub: Hub, mid: float) -> None:
    now = time.time()
    hub.publish(
        BookTop(
            exchange=EX,
            symbol=PERP,
            ts=now,
            ts_recv=now,
            bid=mid - 0.05,
            bid_size=5.0,
            ask=mid + 0.05,
            ask_size=5.0,
            spread=0.1,
            spread_bps=0.05,
            bid_depth=25.0,
            ask_depth=25.0,
            imbalance=0.0,
            levels=5,
        )
    )


async def start(url: str, db_path: str, *, native: bool = False) -> Rig:
    """The engine started (reconciled) on the database, with a 20000 mid published."""
    settings = load_settings(
        data={
            "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
            "storage": {"batch_max_age_s": 0.05},
            "trading": {
                "mode": "live",
                "exchange": EX,
                "symbols": [PERP],
                "leverage": 5,
                "max_leverage": 5,
                "max_position_size": 10_000,
                "max_symbol_exposure": 10_000,
                "max_total_exposure": 10_000,
                "poll_interval_s": 0.05,
                "reconcile_interval_s": 0.5,
                "unknown_lookups": 2,
                "live": {
                    "exchange": EX,
                    "api_key": KEY,
                    "secret": SECRET,
                    "url": url,
                    "recv_window_ms": 500,
                    "native_stop_loss": native,
                },
            },
        }
    )
    hub, clock = Hub(), LiveClock()
    db = Database(settings.database)
    await db.start()
    writer = StoreWriter(hub=hub, db=db, config=settings.storage, clock=clock)
    await writer.start()
    cfg = settings.trading
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=CcxtBroker.from_config(cfg, clock=clock),
        market=MarketState(hub=hub),
        journal=StoreJournal(db=db),
        starting_cash=Decimal(0),
        specs=specs,
    )
    top(hub, 20000.0)
    await engine.start()
    return Rig(engine, writer, db, hub)


async def child(url: str, db_path: str, native: bool) -> None:
    """Place one 5x long of 0.1 (stop 19400, take-profit 21200) and wait to be killed."""
    rig = await start(url, db_path, native=native)
    print("ready", flush=True)
    await rig.engine.place_manual_order(
        actor="crash",
        exchange=EX,
        symbol=PERP,
        side="buy",
        amount="0.1",
        stop_loss="19400",
        take_profit="21200",
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(child(sys.argv[1], sys.argv[2], sys.argv[3:] == ["native"]))
