"""The arbitrage detector on two venues' books, through the real engine and hub."""

from __future__ import annotations

import pytest

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig, ArbitrageConfig
from cryptomon.detect.arbitrage import group_key
from cryptomon.detect.engine import DetectorEngine
from cryptomon.events import Anomaly, BookTop
from cryptomon.hub import Hub
from cryptomon.sim.market import MarketModel, SymbolMarket

T0 = 1_700_000_000.0
FEES = {"venue-a": 0.001, "venue-b": 0.002}  # 10 bps and 20 bps taker


def top(
    exchange: str,
    symbol: str,
    t: float,
    *,
    bid: float,
    ask: float,
    bid_size: float = 1.0,
    ask_size: float = 1.0,
) -> BookTop:
    return BookTop(
        exchange=exchange,
        symbol=symbol,
        ts=t,
        ts_recv=t,
        bid=bid,
        bid_size=bid_size,
        ask=ask,
        ask_size=ask_size,
        spread=ask - bid,
        spread_bps=(ask - bid) / bid * 1e4,
        bid_depth=bid_size,
        ask_depth=ask_size,
        imbalance=0.0,
        levels=1,
    )


def _engine(**arb: object) -> tuple[DetectorEngine, list[Anomaly]]:
    hub = Hub()
    got: list[Anomaly] = []
    hub.subscribe(Anomaly, lambda a: got.append(a) if a.kind == "arbitrage" else None)
    cfg = AnomalyDetectionConfig(
        cooldown_s=0.0,
        arbitrage=ArbitrageConfig.model_validate({"taker_fees": FEES, "min_edge_bps": 5.0, **arb}),
    )
    return DetectorEngine(hub=hub, clock=ManualClock(T0), config=cfg), got


def _edge_bps(buy_ask: float, buy_fee: float, sell_bid: float, sell_fee: float) -> float:
    return (sell_bid * (1 - sell_fee) / (buy_ask * (1 + buy_fee)) - 1) * 1e4


def test_a_gap_inside_the_fees_is_no_anomaly() -> None:
    """venue-b bids 0.25% above venue-a's ask: 30 bps of fees eat it, nothing fires."""
    eng, got = _engine()
    eng.hub.publish(top("venue-a", "BTC-USDT", T0, bid=99.9, ask=100.0, ask_size=2.0))
    eng.hub.publish(top("venue-b", "BTC-USDT", T0 + 0.1, bid=100.25, ask=100.4, bid_size=1.5))
    eng.flush()
    assert _edge_bps(100.0, 0.001, 100.25, 0.002) < 0
    assert got == []


def test_a_gap_beyond_the_fees_fires_once_with_the_executable_size() -> None:
    """venue-b bids 1% above venue-a's ask: one anomaly, net edge after both fees, the size
    the smaller top of the two legs (1.5 of 2 asked and 1.5 bid), both legs named; a repeat
    of the same opportunity does not fire again."""
    eng, got = _engine()
    eng.hub.publish(top("venue-a", "BTC-USDT", T0, bid=99.9, ask=100.0, ask_size=2.0))
    eng.hub.publish(top("venue-b", "BTC-USDC", T0 + 0.1, bid=101.0, ask=101.2, bid_size=1.5))
    eng.hub.publish(top("venue-b", "BTC-USDC", T0 + 0.2, bid=101.0, ask=101.2, bid_size=1.5))
    eng.flush()
    assert len(got) == 1
    a = got[0]
    assert a.value == pytest.approx(_edge_bps(100.0, 0.001, 101.0, 0.002))
    assert a.value == pytest.approx(69.7, abs=0.1)
    assert a.threshold == 5.0
    assert a.window_mean == pytest.approx(100.0)  # gross edge, bps
    assert (a.exchange, a.symbol) == ("venue-b", "BTC-USDC")
    assert "Buy venue-a BTC-USDT at 100, sell venue-b BTC-USDC at 101" in a.reasons
    assert "Executable size: 1.5 BTC (150.00 USDT)" in a.reasons
    assert any("(10.0 + 20.0 bps)" in r for r in a.reasons)


def test_the_reverse_direction_and_the_rearm() -> None:
    """The edge may run the other way (buy on b, sell on a); after it closes the detector
    re-arms and the next opening fires again."""
    eng, got = _engine()
    pub = eng.hub.publish
    pub(top("venue-a", "ETH-USD", T0, bid=2030.0, ask=2031.0, bid_size=3.0))
    pub(top("venue-b", "ETH-USDT", T0 + 0.1, bid=1999.0, ask=2000.0, ask_size=0.4))
    pub(top("venue-b", "ETH-USDT", T0 + 0.2, bid=2029.0, ask=2030.0, ask_size=0.4))  # closed
    pub(top("venue-b", "ETH-USDT", T0 + 0.3, bid=1999.0, ask=2000.0, ask_size=0.5))  # again
    eng.flush()
    assert len(got) == 2
    assert all(
        "Buy venue-b ETH-USDT at 2000, sell venue-a ETH-USD at 2030" in a.reasons[0] for a in got
    )
    assert "Executable size: 0.4 ETH" in got[0].reasons[2]
    assert "Executable size: 0.5 ETH" in got[1].reasons[2]


@pytest.mark.parametrize(
    ("other", "why"),
    [
        (top("venue-a", "BTC-USDC", T0 + 0.1, bid=101.0, ask=101.2), "same venue"),
        (top("venue-b", "BTC-EUR", T0 + 0.1, bid=101.0, ask=101.2), "quote does not track"),
        (top("venue-b", "BTC-USDT", T0 + 5.0, bid=101.0, ask=101.2), "stale other quote"),
        (top("venue-b", "BTC-USDT-PERP", T0 + 0.1, bid=101.0, ask=101.2), "perp vs spot"),
    ],
)
def test_markets_that_are_not_comparable_never_fire(other: BookTop, why: str) -> None:
    """Same venue, a non-tracking quote, a stale quote (> max_age_s) or another instrument
    type: no comparison, no anomaly."""
    eng, got = _engine()
    eng.hub.publish(top("venue-a", "BTC-USDT", T0, bid=99.9, ask=100.0))
    eng.hub.publish(other)
    eng.flush()
    assert got == [], why


def test_min_notional_and_disabled() -> None:
    """An edge whose executable size is below min_notional, or with the detector disabled,
    does not fire."""
    for arb in ({"min_notional": 1000.0}, {"enabled": False}):
        eng, got = _engine(**arb)
        eng.hub.publish(top("venue-a", "BTC-USDT", T0, bid=99.9, ask=100.0))
        eng.hub.publish(top("venue-b", "BTC-USDT", T0 + 0.1, bid=101.0, ask=101.2))
        eng.flush()
        assert got == [], arb


def test_group_keys() -> None:
    """Tracking quotes share a group; other quotes and instrument types do not."""
    tracking = ["USDT", "USDC", "USD"]
    assert group_key("BTC-USDT", tracking) == group_key("BTC-USD", tracking)
    assert group_key("BTC-EUR", tracking) != group_key("BTC-USDT", tracking)
    assert group_key("BTC-USDT-PERP", tracking) != group_key("BTC-USDT", tracking)


def _sim_top(exchange: str, symbol: str, market: SymbolMarket, t: float) -> BookTop:
    bids, asks = market.book(1)
    (bid, bid_size), (ask, ask_size) = bids[0], asks[0]
    return top(exchange, symbol, t, bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size)


@pytest.mark.parametrize(("jump_pct", "fires"), [(0.2, False), (1.0, True)])
def test_two_simulated_venues(jump_pct: float, fires: bool) -> None:
    """Two venues of the simulator's market model start with the same book; venue-b's mid
    jumps: by 0.2% (inside the 30 bps of fees plus the spread) nothing fires, by 1% one
    anomaly whose edge and size come from the two simulated books' best levels."""
    venue_a = MarketModel(["BTC-USDT"], seed=5).market("BTC-USDT")
    venue_b = MarketModel(["BTC-USDT"], seed=5).market("BTC-USDT")
    venue_b.jump(jump_pct)
    venue_b.step(1e-9, T0)  # the book follows the jump
    eng, got = _engine()
    a_top = _sim_top("venue-a", "BTC-USDT", venue_a, T0)
    b_top = _sim_top("venue-b", "BTC-USDC", venue_b, T0 + 0.05)
    eng.hub.publish(a_top)
    eng.hub.publish(b_top)
    eng.flush()
    edge = _edge_bps(a_top.ask, 0.001, b_top.bid, 0.002)
    if not fires:
        assert edge < 5.0
        assert got == []
        return
    assert len(got) == 1
    assert got[0].value == pytest.approx(edge)
    size = min(a_top.ask_size, b_top.bid_size)
    assert f"Executable size: {size:g} BTC" in got[0].reasons[2]
