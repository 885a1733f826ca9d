"""A live restart rounds the restored protection's levels to the market's tick, end to end
through the real ccxt ``binanceusdm`` code on the simulator (tick 0.1): the restored levels
are armed once the broker has started and the market is known. Before, they were armed before
``broker.start`` (the market info asked of a broker not started: a warning at every live
start), so a level from the configured percentage stayed off the tick, and a missing venue
leg placed again at it could be refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from cryptomon.config import load_settings
from cryptomon.hub import Hub
from cryptomon.trading.journal import MemoryJournal
from tests.usdm import EX, PERP, enter, live_engine, live_trading, start_live, top

D = Decimal
KEY, SECRET = "tick-key", "tick-secret"
PCT = 3.33333  # 20000 x 1.0333333 = 20666.666: 20666.7 on the 0.1 tick (rounded away)


@pytest.mark.asyncio
async def test_a_restored_take_profit_from_the_percentage_is_on_the_tick() -> None:
    """The entry sets only its stop; its take-profit comes from take_profit_percentage,
    20666.7 on the tick. After a restart on the same journal the restored take-profit is
    20666.7 again (not 20666.666), and no market info is asked of a broker not started."""
    live = await start_live(
        key=KEY, secret=SECRET, seed=9, native=False, take_profit_percentage=PCT
    )
    try:
        await enter(live.engine, "buy", stop_loss="19400")
        first = live.engine.protection.protections[(EX, PERP)]
        assert first.take == D("20666.7")
        journal = live.engine.journal
        assert isinstance(journal, MemoryJournal)
        await live.engine.stop()
        data = {
            "trading": live_trading(
                live.sim.rest_url, key=KEY, secret=SECRET, native=False, take_profit_percentage=PCT
            )
        }
        hub = Hub()
        journal.close()
        journal.follow(hub)
        engine = live_engine(load_settings(data=data).trading, hub=hub, journal=journal)
        live.engine = engine
        top(hub, 20000.0)
        with capture_logs() as logs:
            await engine.start()
        prot = engine.protection.protections[(EX, PERP)]
        assert prot.stop == D("19400")
        assert prot.take == D("20666.7")
        assert [e for e in logs if e["event"] == "trading.restored_market_info"] == []
    finally:
        await live.stop()
