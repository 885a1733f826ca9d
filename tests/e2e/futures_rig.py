"""A live perpetuals engine (ccxt ``binanceusdm`` on the simulator's USD-M venue, journal and
store writer on a SQLite file) for the crash tests: run as ``python -m tests.e2e.futures_rig
URL DB [native]`` it places one 5x long (with ``native``: its stop-loss and take-profit rest on
the venue) and waits to be killed; the test restarts the same engine on the same database in
its own process."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from cryptomon.clock import LiveClock
from cryptomon.config import load_settings
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.journal import StoreJournal
from cryptomon.store.writer import StoreWriter
from cryptomon.trading.engine import TradingEngine
from tests.usdm import enter, live_engine, live_trading, top

KEY, SECRET = "kill-key", "kill-secret"


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


async def start(url: str, db_path: str, *, native: bool = False) -> Rig:
    """The engine started (reconciled) on the database, with a 20000 mid published (without
    ccxt's request pacing, as :func:`tests.usdm.live_trading` sets it)."""
    settings = load_settings(
        data={
            "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
            "storage": {"batch_max_age_s": 0.05},
            "trading": live_trading(
                url,
                key=KEY,
                secret=SECRET,
                native=native,
                # unpaced, the child sends both legs within milliseconds of the entry's fill:
                # it is often killed before the store writes that fill, and the restart finds
                # the position (and adopts the legs) only in its reconciliation
                live={"recv_window_ms": 500},
                reconcile_interval_s=0.5,
                unknown_lookups=2,
            ),
        }
    )
    hub, clock = Hub(), LiveClock()
    db = Database(settings.database)
    await db.start()
    writer = StoreWriter(hub=hub, db=db, config=settings.storage, clock=clock)
    await writer.start()
    engine = live_engine(settings.trading, hub=hub, journal=StoreJournal(db=db), clock=clock)
    top(hub, 20000.0)
    await engine.start()
    return Rig(engine, writer, db, hub)


async def child(url: str, db_path: str, native: bool) -> None:
    """Place one 5x long of 0.1 (stop 19400, take-profit 21200) and wait to be killed."""
    rig = await start(url, db_path, native=native)
    print("ready", flush=True)
    await enter(rig.engine, "buy", stop_loss="19400", take_profit="21200", actor="crash")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(child(sys.argv[1], sys.argv[2], sys.argv[3:] == ["native"]))
