"""Scenarios: labels with absolute times, injections applied at their times at full speed."""

from __future__ import annotations

import pytest

from cryptomon.clock import ManualClock
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.scenarios import KINDS, SCENARIOS, Injection, Label, Scenario, standard


def test_standard_covers_every_kind_with_labels() -> None:
    """standard() schedules every label kind once after the warm-up."""
    sc = standard(warmup_s=60, spacing_s=30)
    kinds = [i.kind for i in sc.injections]
    assert set(kinds) == set(KINDS)
    assert min(i.at for i in sc.injections) == 60
    assert set(SCENARIOS) >= {"volume_burst", "price_jump", "price_crash", "whale", "stall"}


def test_unknown_kind_is_rejected() -> None:
    """An injection kind outside the documented list is a ValueError naming the valid ones."""
    with pytest.raises(ValueError, match="volume"):
        Injection("meteor", "BTC-USDT", 1.0)


@pytest.mark.asyncio
async def test_injections_happen_at_their_times() -> None:
    """Price jump, volume burst, imbalance and spread change the model inside their labels."""
    clock = ManualClock(start=1_000.0)
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=9), clock=clock)
    sc = Scenario(
        "t",
        [
            Injection("price_change", "BTC-USDT", 5.0, 2.0, 10.0),
            Injection("volume", "BTC-USDT", 10.0, 3.0, 20.0),
            Injection("book_imbalance", "BTC-USDT", 15.0, 3.0, 8.0),
            Injection("spread", "BTC-USDT", 20.0, 3.0, 50.0),
        ],
    ).attach(sim)
    assert sc.labels[0] == Label("price_change", "simulator", "BTC-USDT", 1_005.0, 1_007.0)
    m = sim.market.market("BTC-USDT")
    await sim.advance(4.9)
    before = m.mid
    await sim.advance(0.2)
    assert m.mid / before - 1 > 0.09
    await sim.advance(5.0)  # t = 10.1
    assert m.volume_mult == 20.0
    await sim.advance(3.5)  # t = 13.6: burst over
    assert m.volume_mult == 1.0
    await sim.advance(1.5)  # t = 15.1
    bids, asks = m.book(10)
    assert sum(s for _, s in bids) > 3 * sum(s for _, s in asks)
    await sim.advance(5.0)  # t = 20.1
    bids, asks = m.book(1)
    assert round((asks[0][0] - bids[0][0]) / m.spec.tick) >= 50
    await sim.advance(4.0)
    bids, asks = m.book(1)
    assert round((asks[0][0] - bids[0][0]) / m.spec.tick) <= 2
    assert sc.applied == 4
    assert sc.finished(clock.time())


def test_whale_trade_is_a_large_public_trade() -> None:
    """A whale injection prints one trade of magnitude x the median trade size."""
    clock = ManualClock()
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=4), clock=clock)
    sc = Scenario("w", [Injection("whale", "BTC-USDT", 1.0, 1.0, 100.0)]).attach(sim)
    m = sim.market.market("BTC-USDT")
    m.take_trades()
    clock.advance(1.0)
    assert sc._on_step(sim, clock.time()) is None
    trades = m.take_trades()
    assert len(trades) == 1
    assert trades[0].amount == pytest.approx(100 * m.spec.trade_size)
    assert trades[0].side == "buy"
