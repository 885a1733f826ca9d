"""Detector robustness: declared warm-ups, no frozen window after a lull, tick-aware spread."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.base import TradeCols, Warmup
from cryptomon.detect.book_nb import B_TICK
from cryptomon.detect.kernels_nb import R_MIN, R_N
from cryptomon.detect.price_nb import CODE_VOLATILITY
from cryptomon.detect.registry import DeclaresWarmup, Source, default_registry
from cryptomon.events import BookTop
from tests.unit.detect.market import T0, Market, engine, kinds


def test_every_built_in_detector_declares_its_warmup_in_samples_and_time() -> None:
    """Each registered detector declares a warm-up with samples and seconds from the config."""
    cfg = AnomalyDetectionConfig()
    for entry in default_registry():
        det = entry.factory()
        assert isinstance(det, DeclaresWarmup), entry.name
        warm = det.warmup(cfg)
        assert isinstance(warm, Warmup)
        assert warm.samples >= 1, entry.name
        # funding: hours between updates; arbitrage: live quotes, no window: samples only
        if entry.name not in ("funding", "arbitrage"):
            assert warm.seconds >= cfg.min_samples * cfg.bucket_seconds, entry.name


def _imbalance(m: Market) -> None:
    m.imbalance = 0.95
    m.run(6)


def _spread(m: Market) -> None:
    m.run(2)
    m.spread_bps = 60.0
    m.run(0.5)


def _whale(m: Market) -> None:
    m.t += 1
    m.trade(30_000.0, price=100.0)
    m.eng.flush()


def _price(m: Market) -> None:
    m.run(2.5)
    m.price *= 1.2
    m.run(2)


def _volume(m: Market) -> None:
    m.run(3)
    m.trade_rate = 400.0
    m.run(2)


INSIDE: dict[str, Callable[[Market], None]] = {
    "book_imbalance": _imbalance,
    "spread": _spread,
    "whale": _whale,
    "price_change": _price,
    "volume": _volume,
}


@pytest.mark.parametrize("kind", sorted(INSIDE))
def test_nothing_is_reported_inside_the_warmup(kind: str) -> None:
    """An event in a market's first seconds (inside min_samples buckets) is never reported."""
    eng, got = engine(min_samples=10, bucket_seconds=1.0, cooldown_s=0)
    m = Market(eng)
    INSIDE[kind](m)
    assert m.t - 1_700_000_000.0 < 10.0
    assert kind not in kinds(got)
    if kind != "volume":  # volume's own statistics need the buckets anyway
        assert eng.stats()["suppressed_in_warmup"] >= 1


def test_book_imbalance_fires_after_the_warmup() -> None:
    """The same persistent imbalance, once the market is past its warm-up, fires."""
    eng, got = engine(min_samples=10, bucket_seconds=1.0)
    m = Market(eng)
    m.run(12)
    m.imbalance = 0.95
    m.run(6)
    assert "book_imbalance" in kinds(got)


@pytest.mark.parametrize("lull_minutes", [59, 61, 180])
def test_volume_fires_after_any_lull(lull_minutes: int) -> None:
    """An hour (or three) of silence fills the window with zeros; the next bursts still fire,
    and the one after them too (the window is not frozen by clipping)."""
    eng, got = engine(
        bucket_seconds=60.0, lookback_window_minutes=60.0, min_samples=30, cooldown_s=0
    )
    m = Market(eng)
    m.trade_rate = 2.0
    m.run(2400, dt=1.0)
    assert "volume" not in kinds(got)
    for burst in range(2):
        m.t += lull_minutes * 60.0 if burst == 0 else 600.0
        m.trade_rate = 40.0
        m.run(30, dt=1.0)
        vol = [a for a in got if a.kind == "volume"]
        assert len(vol) >= burst + 1, (burst, kinds(got))
        assert vol[-1].z_score is not None
        assert vol[-1].z_score >= 4.0
        m.trade_rate = 2.0
        m.run(120, dt=1.0)
        got.clear()


def grid_book(t: float, bid: float, ask: float) -> BookTop:
    """A balanced book top with the given best prices."""
    return BookTop(
        exchange="x",
        symbol="BTC-USDT",
        ts=t,
        ts_recv=t,
        bid=bid,
        bid_size=1.0,
        ask=ask,
        ask_size=1.0,
        spread=ask - bid,
        spread_bps=(ask - bid) / ((ask + bid) / 2) * 1e4,
        bid_depth=1.0,
        ask_depth=1.0,
        imbalance=0.0,
        levels=1,
    )


def test_spread_of_a_few_ticks_never_fires_but_a_wide_one_does() -> None:
    """A tick-limited book (1-tick spread of 0.1 at price 100) widening to 5 ticks: nothing;
    to 40 ticks (40 bps): 'spread' with the ticks in its reason."""
    eng, got = engine(min_samples=10, bucket_seconds=1.0, cooldown_s=0)
    m = Market(eng)
    t = m.t
    for spread_ticks in (1, 5, 40):
        for _ in range(300 if spread_ticks == 1 else 5):
            t += 0.1
            bid = 100.0 + 0.1 * round(m.rng.normal())  # prices on the 0.1 grid
            eng.hub.publish(grid_book(t, bid, bid + 0.1 * spread_ticks))
        eng.flush()
        sp = [a for a in got if a.kind == "spread"]
        assert bool(sp) == (spread_ticks == 40), (spread_ticks, [a.reasons for a in sp])
    assert any("(40 ticks)" in r for r in sp[0].reasons)
    tick = eng.detectors["book"].state[eng.symbol_id("x", "BTC-USDT"), B_TICK]
    assert tick == pytest.approx(0.1)


def test_the_price_detector_is_ready_when_its_volatility_z_can_first_be_scored() -> None:
    """The volatility z scores the running bucket's return against ``min_samples`` past
    bucket returns, and the first completed bucket has no return (no close before it): the
    kernel needs ``min_samples + 1`` buckets. The warm-up gate must report the price detector
    ready at that bucket, not one bucket early (the old declaration) nor later; its other
    kinds (price change, moving average) stay ready a bucket before."""
    eng, _ = engine(min_samples=10, bucket_seconds=1.0)
    det = eng.detectors["price"]
    m = Market(eng)
    m.t = T0  # the first trade opens a bucket
    sid = eng.symbol_id(m.exchange, m.symbol)
    need = int(det.returns.state[sid, R_MIN])  # type: ignore[attr-defined]
    ready_at = scored_at = others_at = None
    while scored_at is None or ready_at is None:
        assert m.t < T0 + 60.0, "never ready or never scored"
        probe = TradeCols(
            sid=np.array([sid]), ts=np.array([m.t]), px=np.ones(1), amt=np.ones(1), buy=np.ones(1)
        )
        if ready_at is None and eng.gate.passed(det, Source.TRADES, probe, 0, CODE_VOLATILITY):
            ready_at = m.t
        if others_at is None and eng.gate.passed(det, Source.TRADES, probe, 0):
            others_at = m.t
        m.trade(1.0)
        eng.flush()
        if scored_at is None and det.returns.state[sid, R_N] >= need:  # type: ignore[attr-defined]
            scored_at = m.t  # this trade's z had its min_samples returns
        m.t = round(m.t + 0.25, 6)
    assert ready_at == scored_at == T0 + 11.0
    assert others_at == T0 + 10.0
