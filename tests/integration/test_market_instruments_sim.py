"""Instrument specs through ccxt from the loopback simulator: ccxt's real Binance market
loading against the SimExchange gives the specs the simulator declares for itself."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.config import LiveTradingConfig
from cryptomon.market.ccxt_specs import ccxt_loader
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.instruments import simulator_specs
from cryptomon.sim.market import MarketModel
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.ccxt_client import build_exchange

SYMBOLS = ["BTC-USDT", "SOL-USDT", "XRP-USDT"]


@pytest.mark.asyncio
async def test_ccxt_load_markets_from_the_simulator_matches_its_own_specs() -> None:
    """load_markets through ccxt yields the same tick, lot, minimums as simulator_specs()."""
    sim = SimExchange(MarketModel(SYMBOLS, seed=3), clock=ManualClock(time.time()))
    install(sim, api_key="k", api_secret="s", min_notional=Decimal(5))
    await sim.start(run=False)
    client = build_exchange(LiveTradingConfig(exchange="binance", url=sim.rest_url))
    try:
        registry = InstrumentRegistry(loaders={"simulator": ccxt_loader("simulator", client)})
        assert await registry.load("simulator") == len(SYMBOLS)
        for expected in simulator_specs(SYMBOLS):
            assert await registry.resolve("simulator", expected.symbol) == expected
    finally:
        await client.close()
        await sim.stop()
