"""Venue clock skew against the simulator with a skewed clock: the ccxt broker measures the
offset from the venue's time endpoint and signs with it; while the venue refuses signed
requests the engine is ``reducing`` and an alert notice goes out; orders never stay unknown."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import TradingConfig
from cryptomon.events import Notice, OrderIntent, OrderState
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.trading import API, Fault, TradingEndpoints
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.risk import RiskState
from tests.usdm import manual_buy, sim_top
from tests.util import wait_until

KEY, SECRET = "clock-key", "clock-secret"
SYMBOL = "BTC-USDT"


@dataclass
class Rig:
    endpoints: TradingEndpoints
    engine: TradingEngine
    broker: CcxtBroker
    notices: list[Notice]


async def _rig(skew_s: float) -> tuple[Rig, Callable[[], Any]]:
    sim = SimExchange(MarketModel([SYMBOL], seed=5), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(7_500)})
    endpoints.skew_s = skew_s
    await sim.start(run=False)
    cfg = TradingConfig.model_validate(
        {
            "auto_trading_enabled": True,
            "mode": "live",
            "exchange": "simulator",
            "poll_interval_s": 0.05,
            "order_timeout_s": 2.0,
            "live": {
                "exchange": "binance",
                "api_key": KEY,
                "secret": SECRET,
                "url": sim.rest_url,
                "recv_window_ms": 2500,
                "max_clock_skew_ms": 1000,
                # no ccxt request pacing (Binance's openOrders weight) against the loopback
                # simulator; the venue's 429/418 gate stays in force
                "enable_rate_limit": False,
            },
        }
    )
    hub = Hub()
    await hub.start()
    notices: list[Notice] = []
    hub.subscribe(Notice, notices.append, name="test.notices")
    clock = LiveClock()
    broker = CcxtBroker.from_config(cfg, clock=clock)
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=broker,
        market=MarketState(hub=hub),
        journal=MemoryJournal(hub=hub),
    )
    sim_top(hub, sim, SYMBOL)
    await engine.start()

    async def close() -> None:
        await engine.stop()
        await hub.stop(1.0)
        await sim.stop()

    return Rig(endpoints, engine, broker, notices), close


@pytest_asyncio.fixture
async def skewed() -> AsyncIterator[Rig]:
    rig, close = await _rig(skew_s=-4.0)
    try:
        yield rig
    finally:
        await close()


@pytest_asyncio.fixture
async def in_sync() -> AsyncIterator[Rig]:
    rig, close = await _rig(skew_s=0.0)
    try:
        yield rig
    finally:
        await close()


def buy(key: str) -> OrderIntent:
    return manual_buy(key, SYMBOL)


def codes(rig: Rig) -> list[str]:
    return [n.code for n in rig.notices]


@pytest.mark.asyncio
async def test_orders_are_signed_with_the_measured_venue_offset(skewed: Rig) -> None:
    """With the venue's clock 4 s behind, the offset is measured at start, the order fills
    (no -1021, never unknown) and an alert names the skew past the 1 s bound."""
    assert skewed.broker.venue_clock.offset_s == pytest.approx(-4.0, abs=0.5)
    assert skewed.engine.risk_state == RiskState.ACTIVE
    record = await skewed.engine.executor.submit(buy("skewed"))
    await wait_until(lambda: record.state == OrderState.FILLED, timeout=10)
    await wait_until(lambda: "venue_clock_skew" in codes(skewed), timeout=10)
    notice = next(n for n in skewed.notices if n.code == "venue_clock_skew")
    assert notice.level == "error"
    assert "-4." in notice.message


@pytest.mark.asyncio
async def test_engine_reduces_while_signing_fails_and_resumes(in_sync: Rig) -> None:
    """The venue's clock jumps 4 s back while its time endpoint fails: the order is rejected
    (not unknown), the engine goes reducing with an alert; once the offset can be measured
    again signing works and the engine is active (the 4 s offset is still past the bound)."""
    rig = in_sync
    rig.endpoints.skew_s = -4.0
    rig.endpoints.faults.add(
        Fault(kind="status", method="GET", path=f"{API}/time", status=503, times=10_000)
    )
    record = await rig.engine.executor.submit(buy("refused"))
    assert record.state == OrderState.REJECTED
    assert "clock skew" in record.reason
    assert rig.endpoints.order_posts == 0  # refused at the signature check: nothing placed
    await wait_until(lambda: rig.engine.risk_state == RiskState.REDUCING, timeout=10)
    await wait_until(lambda: "venue_clock_skew" in codes(rig), timeout=10)
    rig.endpoints.faults.clear()
    await wait_until(lambda: rig.engine.risk_state == RiskState.ACTIVE, timeout=15)
    assert "venue_clock_ok" not in codes(rig)
    assert rig.broker.venue_clock.offset_s == pytest.approx(-4.0, abs=0.5)
