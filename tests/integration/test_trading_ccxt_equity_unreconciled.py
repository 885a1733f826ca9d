"""A live engine whose first reconciliation fails (the venue refuses its account reads)
stores no equity snapshot until the venue's balance is its cash: before that its cash is a
placeholder (the paper starting balance, or after a restart the stored fills' sum from zero),
and a snapshot of it would stay in the equity history, move the stored drawdown and could be
the UTC day's first snapshot, the start ``daily_loss_limit`` counts from after a restart.
The ccxt ``binance`` broker on the spot simulator."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import TradingConfig
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.trading import API, Fault
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.risk import RiskState
from tests.usdm import sim_top
from tests.util import wait_until

KEY, SECRET = "equity-key", "equity-secret"
SYMBOL = "BTC-USDT"
VENUE_USDT = Decimal(7_500)


@pytest.mark.asyncio
async def test_no_equity_snapshot_is_stored_before_the_cash_is_the_venues() -> None:
    """The venue refuses the first three account reads (401): the engine starts
    ``reducing``, keeps reconciling and its poll loop runs meanwhile. Every stored snapshot
    has the venue's 7,500 USDT as cash and equity, none the 10,000 of the placeholder; once
    reconciled, snapshots are written as before."""
    sim = SimExchange(MarketModel([SYMBOL], seed=4), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": VENUE_USDT})
    refusal = endpoints.faults.add(
        Fault(
            kind="status",
            method="GET",
            path=f"{API}/account",
            status=401,
            after_accept=False,
            times=3,
        )
    )
    await sim.start(run=False)
    cfg = TradingConfig.model_validate(
        {
            "mode": "live",
            "exchange": "simulator",
            "poll_interval_s": 0.05,
            "mark_interval_s": 0.05,
            "equity_snapshot_interval_s": 0.05,
            "paper": {"starting_balance": 10_000},
            "live": {
                "exchange": "binance",
                "api_key": KEY,
                "secret": SECRET,
                "url": sim.rest_url,
                "enable_rate_limit": False,
            },
        }
    )
    hub = Hub()
    await hub.start()
    clock = LiveClock()
    journal = MemoryJournal(hub=hub)
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=CcxtBroker.from_config(cfg, clock=clock),
        market=MarketState(hub=hub),
        journal=journal,
    )
    sim_top(hub, sim, SYMBOL)
    try:
        await engine.start()
        assert engine.risk_state == RiskState.REDUCING
        await wait_until(lambda: refusal.hits == 3, timeout=10, message="three refusals")
        await wait_until(lambda: engine.reconciled, timeout=10, message="reconciled")
        assert engine.risk_state == RiskState.ACTIVE
        assert engine.portfolio.cash == VENUE_USDT
        seen = len(journal.equity)
        await wait_until(lambda: len(journal.equity) > seen, timeout=10, message="snapshot")
        assert {(s["cash"], s["equity"]) for s in journal.equity} == {(VENUE_USDT, VENUE_USDT)}
    finally:
        await engine.stop()
        await hub.stop(1.0)
        await sim.stop()
