"""The cash a live derivatives engine takes from the venue when the mark it holds is stale:
after a restart the engine's mark of a position is the last one it knew (its stored position,
the first book it sees), while the venue's margin balance (ccxt's total) holds the position's
unrealized PnL at the venue's mark now. The cash is the wallet (that balance less the
unrealized PnL the venue reports), so the equity counts the move once the engine's mark
catches up, never twice. Through the real ccxt ``binanceusdm`` code on the simulator's USD-M
subset; the venue-side legs rest, so no periodic reconciliation takes the balance again while
the position is open."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.config import load_settings
from cryptomon.hub import Hub
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.risk import RiskState
from tests.usdm import EX, PERP, VENUE_ID, enter, live_engine, live_trading, start_live, top
from tests.util import wait_until

D = Decimal
KEY, SECRET = "cash-key", "cash-secret"
WALLET = D(10_000) - D("0.1") * D(20_000) * D("0.0004")  # after the entry's taker fee


@pytest.mark.asyncio
async def test_a_restart_on_a_stale_mark_takes_the_wallet_as_the_cash() -> None:
    """0.1 long at 20000 (legs at 19400 and 21200 on the venue); the engine stops, the venue's
    mark moves to 20500 (+50 unrealized in its margin balance); the restarted engine first
    sees a 20000 book. Its cash is the wallet (9999.2), not the wallet plus the venue's +50
    (its own unrealized PnL at 20000 being 0); once its mark reaches 20500 the equity is the
    wallet plus 50, not plus 100. Before, the cash stayed 50 too high for as long as the
    position (and so its legs) stayed open."""
    live = await start_live(key=KEY, secret=SECRET, seed=21, native=True)
    engine = live.engine
    try:
        await enter(engine, "buy", stop_loss="19400", take_profit="21200")
        await wait_until(
            lambda: len([a for a in live.venue.book.algos if a["algoStatus"] == "NEW"]) == 2,
            timeout=10,
            message="both legs resting",
        )
        journal = engine.journal
        assert isinstance(journal, MemoryJournal)
        await engine.stop()
        live.venue.set_price(VENUE_ID, D(20_500))

        data = {"trading": live_trading(live.sim.rest_url, key=KEY, secret=SECRET, native=True)}
        hub = Hub()
        journal.close()
        journal.follow(hub)
        engine = live_engine(load_settings(data=data).trading, hub=hub, journal=journal)
        top(hub, 20_000.0)  # the engine's mark: the last it knew
        await engine.start()
        assert engine.risk_state == RiskState.ACTIVE
        pos = engine.portfolio.positions[(EX, PERP)]
        assert pos.amount == D("0.1")
        assert engine.portfolio.cash == WALLET
        top(hub, 20_500.0)
        await wait_until(lambda: pos.mark == D(20_500), timeout=10, message="mark 20500")
        assert engine.portfolio.equity == WALLET + D(50)
    finally:
        await engine.stop()
        await live.sim.stop()
