"""A live derivatives account's balance (ccxt's total: Binance's margin balance) holds the
unrealized PnL of every open contract position, the engine's and any it does not manage (one
opened by hand on the venue's website, or the rest of a flip by hand). The engine's cash is
that balance less the unrealized PnL of its own positions (the equity adds those at its
marks) and less the unrealized PnL the venue reports for the unmanaged positions: someone
else's position moving does not move the engine's cash, equity or daily PnL. Through the
real ccxt ``binanceusdm`` code on the simulator's USD-M subset."""

from __future__ import annotations

from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from cryptomon.config import load_settings
from cryptomon.hub import Hub
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.risk import RiskState
from tests.integration.test_trading_futures_liquidation_live import KEY, SECRET, Rig, start
from tests.usdm import (
    EX,
    PERP,
    VENUE_ID,
    Live,
    enter,
    live_engine,
    live_trading,
    start_live,
    top,
    usdm_venue,
)
from tests.util import wait_until

D = Decimal
HAND = D(19500)
ETH, ETH_PERP = "ETHUSDT", "ETH-USDT-PERP"


async def settle(rig: Rig | Live, price: Decimal) -> None:
    """The venue's and the engine's mark of the perpetual move to ``price``."""
    rig.venue.set_price(VENUE_ID, price)
    top(rig.hub, float(price))
    pos = rig.engine.portfolio.positions.get((EX, PERP))
    if pos is not None and pos.amount != 0:
        await wait_until(lambda: pos.mark == price, timeout=10, message=f"mark {price}")


@pytest.mark.asyncio
async def test_the_rest_of_a_flip_by_hand_does_not_move_the_cash() -> None:
    """0.1 long; someone sells 0.3 by hand at 19500: the engine adopts the 0.1 that closed
    its long, the venue holds a 0.2 short that is not the engine's. The mark moves to 19000
    (that short gains 100 in the venue's margin balance), then to 20000 (it loses 100): the
    engine's cash stays the wallet, its equity and daily PnL do not move. Once the owner
    closes the short, the engine's own long counts its unrealized PnL as before."""
    rig = await start()
    try:
        engine, venue = rig.engine, rig.venue
        await enter(engine, "buy", stop_loss="19400")
        pos = engine.portfolio.positions[(EX, PERP)]
        venue.close_by_hand(VENUE_ID, HAND, D("0.3"))
        await wait_until(lambda: pos.amount == 0, timeout=30, message="the closing part adopted")
        assert venue.book.positions[VENUE_ID].qty == D("-0.2")
        await engine.reconciler.run(periodic=True)
        assert list(engine.context.unmanaged) == [PERP]
        assert engine.portfolio.cash == venue.book.wallet
        equity = engine.portfolio.equity
        daily = engine.portfolio.daily_pnl(engine.context.now())
        for price, hand_pnl in ((D(19000), D(100)), (D(20000), D(-100))):
            await settle(rig, price)
            assert venue.book.unrealized() == hand_pnl
            assert await engine.reconciler.run(periodic=True) == [engine.context.unmanaged[PERP]]
            assert engine.portfolio.cash == venue.book.wallet, f"at {price}"
            assert engine.portfolio.equity == equity == venue.book.wallet
            assert engine.portfolio.daily_pnl(engine.context.now()) == daily
            assert engine.risk_state == RiskState.ACTIVE
        venue.close_by_hand(VENUE_ID, D(20000))  # the owner closes the short on the venue
        await wait_until(lambda: not engine.context.unmanaged, timeout=30, message="short gone")
        await enter(engine, "buy", stop_loss="19400")
        await settle(rig, D(20500))
        assert await engine.reconciler.run(periodic=True) == []
        assert engine.portfolio.cash == venue.book.wallet
        assert engine.portfolio.equity == venue.book.wallet + D(50)
    finally:
        await rig.stop()


@pytest.mark.asyncio
async def test_a_position_opened_by_hand_elsewhere_does_not_move_the_cash() -> None:
    """Someone opens a 2 ETH short by hand at 1000 on the account while the engine holds its
    own 0.1 BTC long: ETH falls to 950 (+100 for that short), BTC rises to 20500 (+50 for
    the engine's long). The engine's cash is the wallet, its equity the wallet plus its own
    50; when ETH rises to 1100 (-200 for that short) nothing of the engine's moves."""
    sim, venue = await usdm_venue(key=KEY, secret=SECRET, seed=12)
    venue.book.symbols[ETH] = ("ETH", "USDT")
    venue.set_price(ETH, D(1000))
    data = {
        "trading": live_trading(
            sim.rest_url,
            key=KEY,
            secret=SECRET,
            native=False,
            margin_mode="isolated",
            allow_short=True,
        )
    }
    hub = Hub()
    engine = live_engine(load_settings(data=data).trading, hub=hub, journal=MemoryJournal(hub=hub))
    top(hub, 20000.0)
    await engine.start()
    live = Live(sim, venue, engine, hub)
    try:
        await enter(engine, "buy", stop_loss="19400")
        venue.book.new_order(
            {
                "symbol": ETH,
                "side": "SELL",
                "type": "MARKET",
                "quantity": "2",
                "newClientOrderId": "web_by_hand_eth",
            }
        )
        venue.set_price(ETH, D(950))
        await settle(live, D(20500))
        assert venue.book.unrealized() == D(150)
        await engine.reconciler.run(periodic=True)
        unmanaged = await engine.reconciler.run(periodic=True)
        assert [u.split(":")[0] for u in unmanaged] == [ETH_PERP]
        assert engine.portfolio.cash == venue.book.wallet
        assert engine.portfolio.equity == venue.book.wallet + D(50)
        daily = engine.portfolio.daily_pnl(engine.context.now())
        venue.set_price(ETH, D(1100))
        await engine.reconciler.run(periodic=True)
        assert engine.portfolio.cash == venue.book.wallet
        assert engine.portfolio.equity == venue.book.wallet + D(50)
        assert engine.portfolio.daily_pnl(engine.context.now()) == daily
        assert engine.risk_state == RiskState.ACTIVE
    finally:
        await live.stop()


@pytest.mark.asyncio
async def test_an_unmanaged_position_without_unrealized_pnl_is_told_once() -> None:
    """A venue that reports no unrealized PnL for a position: nothing is guessed (the cash
    keeps it, as the venue's balance does) and a warning says so once, not at every run."""
    rig = await start_live(
        key=KEY,
        secret=SECRET,
        seed=13,
        native=False,
        margin_mode="isolated",
        allow_short=True,
        reconcile_interval_s=3600,  # only the test's runs
    )
    try:
        engine, venue = rig.engine, rig.venue
        venue.book.omit_unrealized = True
        venue.book.new_order(
            {
                "symbol": VENUE_ID,
                "side": "SELL",
                "type": "MARKET",
                "quantity": "0.2",
                "newClientOrderId": "web_by_hand_1",
            }
        )
        await settle(rig, D(19000))
        with capture_logs() as logs:
            for _ in range(3):
                await engine.reconciler.run(periodic=True)
        (told,) = [e for e in logs if e["event"] == "trading.unmanaged_pnl_unknown"]
        assert told["symbol"] == PERP
        assert list(engine.context.unmanaged) == [PERP]
        assert venue.book.unrealized() == D(200)  # 0.2 short from 20000 at 19000
        assert engine.portfolio.cash == venue.book.wallet + D(200)  # as the venue's balance
    finally:
        await rig.stop()


@pytest.mark.asyncio
async def test_a_position_added_to_by_hand_leaves_the_added_part_out_of_the_cash() -> None:
    """The engine's 0.1 long from 20000; someone buys 0.2 more by hand at 21000 (the venue's
    0.3 long at their average entry). At 22000 the venue's margin balance holds the unrealized
    PnL: the engine's own 0.1's and the 200 of the 0.2 added by hand. The engine's
    cash is the wallet and its equity the wallet plus its own 0.1's PnL; before, the added
    0.2 took the venue's figure pro rata (priced at the venue's average entry) and the cash
    came out short of the wallet by 0.1 times the gap between the two entries."""
    rig = await start_live(
        key=KEY,
        secret=SECRET,
        seed=14,
        native=False,
        margin_mode="isolated",
        reconcile_interval_s=3600,  # only the test's runs
    )
    try:
        engine, venue = rig.engine, rig.venue
        await enter(engine, "buy", stop_loss="19400", take_profit="30000")
        pos = engine.portfolio.positions[(EX, PERP)]
        await settle(rig, D(21000))
        venue.book.new_order(
            {
                "symbol": VENUE_ID,
                "side": "BUY",
                "type": "MARKET",
                "quantity": "0.2",
                "newClientOrderId": "web_by_hand_add",
            }
        )
        await settle(rig, D(22000))
        own = pos.unrealized_pnl
        assert own == D("0.1") * (D(22000) - pos.avg_price)
        tiny = D("1e-12")  # the venue's average entry of 0.3 is a rounded quotient
        assert abs(venue.book.unrealized() - (own + D(200))) < tiny
        await engine.reconciler.run(periodic=True)
        assert abs(engine.portfolio.cash - venue.book.wallet) < tiny
        assert abs(engine.portfolio.equity - (venue.book.wallet + own)) < tiny
    finally:
        await rig.stop()
