"""Property test of the whole engine on the paper broker: any sequence of manual orders and
price moves leaves every limit respected after each accepted order, and the portfolio
(positions, cash, PnL) always equals an independent computation from the Fill events."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptomon.errors import RiskRejected
from cryptomon.events import Fill
from tests.unit.trading.helpers import EX, Collector, book, paper_engine, trading_config

D = Decimal
SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")
CFG = {
    "max_position_size": 600.0,
    "max_symbol_exposure": 600.0,
    "max_total_exposure": 1000.0,
    "max_open_positions": 2,
    "max_orders_per_minute": 5,
    "max_leverage": 1.0,
    "daily_loss_limit": 80.0,
    "allow_short": True,
    "paper": {
        "starting_balance": 5000.0,
        "taker_fee": 0.001,
        "maker_fee": 0.0005,
        "tick_size": 0.01,
        "lot_size": 0.001,
        "min_notional": 1.0,
    },
}

step = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(SYMBOLS),
        "side": st.sampled_from(["buy", "sell"]),
        "lots": st.integers(min_value=500, max_value=7000) | st.sampled_from([5500, 6500]),
        "price": st.integers(min_value=80, max_value=120),
        "reduce_only": st.sampled_from([False, False, True]),
        "dt": st.integers(min_value=0, max_value=30),
    }
)


async def _run(steps: list[dict[str, Any]]) -> None:
    engine, _, hub, _, clock = paper_engine(config=trading_config(**CFG))
    fills = Collector(hub, Fill)
    mids: dict[str, Decimal] = {}
    for sym in SYMBOLS:
        book(hub, clock, bid=99.9, ask=100.1, size=1000.0, symbol=sym)
        mids[sym] = D(100)
    await engine.start()
    accepted: list[float] = []
    for s in steps:
        clock.advance(s["dt"])
        sym, p = s["symbol"], float(s["price"])
        book(hub, clock, bid=p - 0.1, ask=p + 0.1, size=1000.0, symbol=sym)
        mids[sym] = D(s["price"])
        await asyncio.sleep(0)
        if any(r.is_open for r in engine.book.all()):
            await asyncio.sleep(0)  # let a protective exit finish
        try:
            await engine.place_manual_order(
                actor="prop",
                exchange=EX,
                symbol=sym,
                side=s["side"],
                amount=str(D(s["lots"]) / 1000),
                reduce_only=s["reduce_only"],
            )
        except RiskRejected:
            continue
        accepted.append(clock.time())
        pf = engine.portfolio
        value = {k[1]: abs(pos.amount) * mids[k[1]] for k, pos in pf.positions.items()}
        # limits hold at the mids the decision saw (fills add at most the half spread); the
        # per-symbol cap binds the symbol traded: another symbol's position may have grown
        # past it since its own last order through price moves alone, which no order caused
        slack = D("1.002")
        assert value.get(sym, D(0)) <= D(600) * slack
        assert sum(value.values()) <= D(1000) * slack
        assert sum(1 for pos in pf.positions.values() if pos.amount != 0) <= 2
        assert len([t for t in accepted if t > clock.time() - 60]) <= 5
    # accounting equals the fills, computed independently
    start = D(5000)
    cash = start
    signed: dict[str, Decimal] = dict.fromkeys(SYMBOLS, D(0))
    for f in fills.of(Fill):
        flow = f.amount * f.price
        cash += (-flow if f.side == "buy" else flow) - f.fee
        signed[f.symbol] += f.amount if f.side == "buy" else -f.amount
    pf = engine.portfolio
    assert pf.cash == cash
    for sym in SYMBOLS:
        assert pf.amount(EX, sym) == signed[sym]
    for pos in pf.positions.values():
        pos.mark = mids[pos.symbol]
    realized = sum((p.realized_pnl for p in pf.positions.values()), D(0))
    unrealized = sum((p.unrealized_pnl for p in pf.positions.values()), D(0))
    fees = sum((f.fee for f in fills.of(Fill)), D(0))
    assert pf.equity - start == realized + unrealized - fees
    await engine.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=25))
def test_engine_never_breaches_limits_and_pnl_matches_fills(steps: list[dict[str, Any]]) -> None:
    """Random orders and prices through the real engine and paper broker: limits hold after
    every accepted order; cash, positions and PnL reconcile with the published fills."""
    asyncio.run(_run(steps))
