"""Each detector fires on its event and stays quiet on the calm market around it."""

from __future__ import annotations

import math

import pytest

from cryptomon.detect.whale_nb import W_AGG
from cryptomon.events import Anomaly, Funding, Liquidation, Severity, Trade
from tests.unit.detect.market import Market, engine, kinds


def assert_filled(a: Anomaly, *, price: bool = True, z: bool = True) -> None:
    """Every field of a published anomaly is set (the price change needs trades; whales carry
    no z-score)."""
    assert a.kind
    assert isinstance(a.severity, Severity)
    for name in ("value", "threshold", "confidence", "ts", "ts_recv", "ts_detected"):
        assert math.isfinite(getattr(a, name)), name
    assert 0 <= a.confidence <= 100
    assert (a.z_score is not None) == z
    assert a.z_score is None or math.isfinite(a.z_score)
    assert (a.price_change_pct is not None) == price
    assert a.window_mean is not None
    assert (a.window_std is not None) == z
    assert a.samples > 0
    assert a.reasons
    assert all(isinstance(r, str) and r for r in a.reasons)


def calm(**overrides: object) -> tuple[Market, list[Anomaly]]:
    eng, got = engine(**overrides)
    m = Market(eng)
    m.run(120)
    assert got == [], kinds(got)
    return m, got


def test_volume_spike_fires_with_z_score() -> None:
    """A burst of volume in one bucket fires 'volume' with z above the threshold."""
    m, got = calm()
    m.trade_rate = 150.0
    m.run(1.0)
    vol = [a for a in got if a.kind == "volume"]
    assert vol
    # the bucket keeps filling: later alerts only at a higher severity (escalation)
    assert [a.severity.rank for a in vol] == sorted({a.severity.rank for a in vol})
    assert vol[0].z_score is not None
    assert vol[0].z_score >= 4.0
    assert any(r.startswith("Z-score: ") for r in vol[0].reasons)
    assert_filled(vol[0])


def test_volume_min_ratio_also_needs_that_multiple_of_the_mean_bucket() -> None:
    """A bucket of ~3x the mean volume passes the z-test on a steady market; with
    volume_min_ratio 5 it does not fire, with 2 it fires with the ratio as threshold."""
    fired = {}
    for ratio in (0.0, 2.0, 5.0):
        m, got = calm(volume_min_ratio=ratio)
        m.trade_rate = 60.0  # ~3x the calm 20 trades per bucket
        m.run(1.0)
        fired[ratio] = [a for a in got if a.kind == "volume"]
    assert fired[0.0]
    assert fired[2.0]
    assert fired[5.0] == []
    first = fired[2.0][0]
    assert first.window_mean is not None
    assert first.threshold >= 2.0 * first.window_mean
    assert first.value >= first.threshold


def test_a_burst_does_not_blind_the_detector_to_the_next() -> None:
    """Bursts enter the window clipped at the firing level: five in a row all fire."""
    m, got = calm(cooldown_s=0)
    for _ in range(5):
        m.trade_rate = 150.0
        m.run(1.0)
        m.trade_rate = 20.0
        m.run(5.0)
    firsts = [a for a in got if a.kind == "volume" and a.severity.rank == 0]
    assert len({int(a.ts) for a in got if a.kind == "volume"}) >= 5, kinds(got)
    assert all(a.z_score is not None and a.z_score >= 4.0 for a in firsts)


def test_one_sided_busy_bucket_fires_volume_imbalance() -> None:
    """A busy bucket of buys only fires 'volume_imbalance' with value near +1."""
    m, got = calm()
    m.trade_rate, m.buy_prob = 60.0, 1.0
    m.run(1.0)
    imb = [a for a in got if a.kind == "volume_imbalance"]
    assert len(imb) == 1
    assert imb[0].value > 0.8
    assert_filled(imb[0])


@pytest.mark.parametrize("pct", [8.0, -8.0])
def test_price_jump_fires_price_change(pct: float) -> None:
    """A jump of 8% fires 'price_change' with the signed change; volatility fires too."""
    m, got = calm()
    m.price *= 1 + pct / 100
    m.run(1.0)
    pc = [a for a in got if a.kind == "price_change"]
    assert len(pc) == 1
    assert pc[0].price_change_pct is not None
    assert math.isclose(pc[0].price_change_pct, pct, abs_tol=1.0)
    assert f"Price change: {pc[0].price_change_pct:.2f}%" in pc[0].reasons
    assert pc[0].severity == Severity.HIGH  # 8 / 5 = 1.6: medium from 1.25, high from 1.6
    assert "volatility" in kinds(got)
    assert_filled(pc[0])


def test_price_change_rearms_on_a_move_the_other_way() -> None:
    """After an up-move alert, a crash below the window high fires again."""
    m, got = calm(cooldown_s=0)
    m.price *= 1.08
    m.run(2.0)
    m.price *= 0.9
    m.run(2.0)
    pcs = [a.value for a in got if a.kind == "price_change"]
    assert len(pcs) == 2
    assert pcs[0] > 0 > pcs[1]


def test_drift_away_from_moving_average_fires_ma_deviation() -> None:
    """A 4% level shift fires 'ma_deviation' against the moving average of closes."""
    m, got = calm(price_change_percentage=50.0)
    m.price *= 1.04
    m.run(1.0)
    ma = [a for a in got if a.kind == "ma_deviation"]
    assert len(ma) == 1
    assert ma[0].value > 3.0
    assert_filled(ma[0])


def test_persistent_book_imbalance_fires_after_min_time_only() -> None:
    """An imbalance lasting less than book_imbalance_min_s is quiet; a longer one fires."""
    m, got = calm()
    m.imbalance = 0.8
    m.run(2.0)
    m.imbalance = 0.0
    m.run(10.0)
    assert "book_imbalance" not in kinds(got)
    m.imbalance = 0.8
    m.run(6.0)
    bi = [a for a in got if a.kind == "book_imbalance"]
    assert bi
    assert bi[0].value >= 0.5
    assert bi[0].ts - bi[0].ts_recv == 0
    assert [a.severity.rank for a in bi] == sorted({a.severity.rank for a in bi})
    assert any("for " in r and r.endswith("s") for r in bi[0].reasons)
    assert_filled(bi[0])


def test_spread_blowout_fires_and_a_doubling_does_not() -> None:
    """A spread at 2x its mean stays quiet (min ratio 3); at 20x it fires 'spread'."""
    m, got = calm()
    m.spread_bps = 4.0
    m.run(0.5)
    assert "spread" not in kinds(got)
    m.spread_bps = 2.0
    m.run(30)
    m.spread_bps = 40.0
    m.run(0.5)
    sp = [a for a in got if a.kind == "spread"]
    assert len(sp) == 1
    assert sp[0].value > 30
    assert sp[0].severity == Severity.CRITICAL
    assert_filled(sp[0])


def test_whale_fires_on_multiples_of_the_median_and_a_high_quantile() -> None:
    """A 20,000 USDT order against ~100 USDT orders passes 50x the median, 1.5x the 99th
    percentile and the 2,500 USDT minimum: 'whale' with the median as the window mean."""
    m, got = calm(whale_median_multiple=50.0)
    m.t += 0.01
    m.trade(200.0, price=100.0)
    m.eng.flush()
    wh = [a for a in got if a.kind == "whale"]
    assert len(wh) == 1
    assert wh[0].value == 20_000.0
    assert wh[0].window_mean is not None
    assert 50.0 < wh[0].window_mean < 250.0
    assert wh[0].threshold == pytest.approx(50.0 * wh[0].window_mean)
    assert_filled(wh[0], z=False)


def test_whale_rule_holds_on_a_narrow_size_distribution() -> None:
    """Wash-trading-like identical orders (std 0) neither blind nor sharpen the rule: 60x the
    median fires, 40x does not."""
    eng, got = engine(whale_min_notional={}, whale_median_multiple=50.0)
    m = Market(eng)
    for _ in range(600):
        m.t += 0.1
        m.trade(1.0, side="buy" if m.rng.random() < 0.5 else "sell")
    eng.flush()
    m.t += 0.1
    m.trade(40.0)
    m.t += 0.1
    m.trade(1.0)
    m.t += 0.1
    m.trade(60.0, side="sell")
    eng.flush()
    assert [(a.kind, a.value) for a in got if a.kind.startswith("whale")] == [("whale", 6000.0)]


def test_whale_rule_needs_the_minimum_notional() -> None:
    """On a market of 1 USDT orders a 60x order (60 USDT) is below the 2,500 USDT minimum."""
    m, got = calm()
    m.price = 1.0
    m.run(30)
    m.t += 0.01
    m.trade(60.0)
    m.eng.flush()
    assert "whale" not in kinds(got)


def test_whale_fires_on_absolute_notional_per_quote() -> None:
    """A 2M USDT trade passes the 1M USDT threshold; the same size in XYZ (none) does not."""
    m, got = calm(whale_median_multiple=1e9)
    m.t += 0.01
    m.trade(20_000.0, price=100.0)
    m.eng.flush()
    wh = [a for a in got if a.kind == "whale"]
    assert len(wh) == 1
    assert wh[0].threshold == 1_000_000.0
    assert wh[0].value == 2_000_000.0
    assert "Taker order notional: 2,000,000 USDT (buy)" in wh[0].reasons
    x, got_x = calm(whale_median_multiple=1e9)
    x.symbol = "BTC-XYZ"
    x.run(60)
    x.trade(20_000.0, price=100.0)
    x.eng.flush()
    assert "whale" not in kinds(got_x)


def test_absolute_whale_reads_the_trades_own_notional_and_skips_unknown_specs() -> None:
    """The absolute rule compares Trade.notional (from the instrument spec), not price x
    amount: a 2M price x amount worth 2,000 fires nothing, 100 x 1 worth 2M fires with the
    venue's value; the same 2M order on a market without a spec (notional None) is silent."""
    m, got = calm(whale_median_multiple=1e9)
    pub = m.hub.publish
    base = {"exchange": "x", "symbol": "BTC-USDT", "side": "buy"}
    m.t += 0.01
    pub(Trade(**base, ts=m.t, ts_recv=m.t, price=100.0, amount=20_000.0, notional=2_000.0))
    m.t += 0.01
    pub(Trade(**base, ts=m.t, ts_recv=m.t, price=100.0, amount=1.0, notional=2_000_000.0))
    m.eng.flush()
    wh = [a for a in got if a.kind == "whale"]
    assert [(a.value, a.threshold, a.ts) for a in wh] == [(2_000_000.0, 1_000_000.0, m.t)]
    blind, got_blind = engine(whale_median_multiple=1e9)
    u = Market(blind)
    u.spec_known = False
    u.run(120)
    u.t += 0.01
    u.trade(20_000.0, price=100.0)
    blind.flush()
    assert "whale" not in kinds(got_blind)


def test_whale_in_usd_where_the_quote_has_no_threshold() -> None:
    """A quote without its own whale_notional entry is judged on notional_usd against
    whale_notional_usd (reasons in USD); without a USD value it is not judged."""
    m, got = calm(whale_median_multiple=1e9, whale_notional={})
    m.symbol = "BTC-TRY"
    m.run(120)
    pub = m.hub.publish
    base = {"exchange": "x", "symbol": "BTC-TRY", "side": "sell", "price": 100.0}
    m.t += 0.01
    pub(Trade(**base, ts=m.t, ts_recv=m.t, amount=50_000.0, notional=5e6, notional_usd=None))
    m.t += 0.01
    pub(Trade(**base, ts=m.t, ts_recv=m.t, amount=50_000.0, notional=5e6, notional_usd=1.5e6))
    m.eng.flush()
    wh = [a for a in got if a.kind == "whale"]
    assert [(a.value, a.threshold) for a in wh] == [(1.5e6, 1e6)]
    assert "Taker order notional: 1,500,000 USD (sell)" in wh[0].reasons


def test_fills_of_one_taker_order_are_summed() -> None:
    """Ten fills with the same time and side count as one order (and fire once)."""
    m, got = calm()
    m.t += 0.01
    for i in range(10):
        m.trade(20.0, price=100.0 + i * 0.01)
    m.eng.flush()
    wh = [a for a in got if a.kind == "whale"]
    assert wh
    assert [a.severity.rank for a in wh] == sorted({a.severity.rank for a in wh})
    partial = [sum(20.0 * (100.0 + i * 0.01) for i in range(k)) for k in range(1, 11)]
    assert all(any(math.isclose(a.value, p) for p in partial[1:]) for a in wh)
    sid = m.eng.symbol_id("x", "BTC-USDT")
    assert math.isclose(m.eng.detectors["whale"].state[sid, W_AGG], partial[-1])


def test_burst_of_large_same_side_trades_fires_whale_burst() -> None:
    """Five large sells within the burst window fire 'whale_burst'."""
    m, got = calm()
    for _ in range(5):
        m.t += 1.0
        m.trade(40.0, side="sell", price=100.0)  # over half the whale threshold
    m.eng.flush()
    wb = [a for a in got if a.kind == "whale_burst"]
    assert len(wb) == 1
    assert wb[0].value == 5
    assert "Burst: 5 large sell trades" in wb[0].reasons
    assert_filled(wb[0], z=False)


def test_cross_exchange_divergence_needs_min_time() -> None:
    """A 100 bps gap between two exchanges fires after divergence_min_s, not before."""
    eng, got = engine()
    a = Market(eng, exchange="a", seed=1)
    b = Market(eng, exchange="b", seed=2)
    for _ in range(30):
        a.run(1.0)
        b.t, b.price = a.t, a.price
        b.book()
    eng.flush()
    assert got == []
    for step in range(8):
        a.t += 1.0
        a.book()
        b.t, b.price = a.t, a.price * 1.01
        b.book()
        eng.flush()
        if step < 4:
            assert "divergence" not in kinds(got)
    dv = [x for x in got if x.kind == "divergence"]
    assert {x.exchange for x in dv} == {"a", "b"}
    assert all(abs(x.value) >= 50 for x in dv)


def test_liquidation_volume_spike_fires() -> None:
    """Liquidated volume per bucket far above its history fires 'liquidations'."""
    eng, got = engine()
    t = 1_700_000_000.0
    for i in range(40):
        t += 1.0
        eng.hub.publish(
            Liquidation(
                exchange="x",
                symbol="BTC-USDT-PERP",
                ts=t,
                ts_recv=t,
                side="sell",
                price=100.0,
                amount=1.0 + (i % 3) * 0.1,
            )
        )
    t += 1.0
    eng.hub.publish(
        Liquidation(
            exchange="x",
            symbol="BTC-USDT-PERP",
            ts=t,
            ts_recv=t,
            side="sell",
            price=100.0,
            amount=50.0,
        )
    )
    eng.flush()
    assert kinds(got) == ["liquidations"]
    assert_filled(got[0], price=False)


def test_funding_jump_fires() -> None:
    """A funding-rate change of 0.001 fires 'funding'; small changes do not."""
    eng, got = engine()
    rates = [0.0001, 0.00012, 0.0001, 0.00011, 0.0011]
    for i, r in enumerate(rates):
        t = 1_700_000_000.0 + i * 3600
        eng.hub.publish(Funding(exchange="x", symbol="BTC-USDT-PERP", ts=t, ts_recv=t, rate=r))
    assert kinds(got) == ["funding"]
    assert math.isclose(got[0].value, 0.00099)
    assert got[0].reasons


def test_an_unknown_funding_rate_is_no_jump() -> None:
    """Updates without a rate (None: unknown) between two equal rates neither fire nor
    break the detector: 0.0001, None, 0.0001 is no change (read as 0 it was two jumps of
    0.0001, each over a threshold of 0.00005)."""
    eng, got = engine(funding_jump=0.00005)
    for i, r in enumerate([0.0001, None, 0.0001]):
        t = 1_700_000_000.0 + i * 3600
        eng.hub.publish(Funding(exchange="x", symbol="BTC-USDT-PERP", ts=t, ts_recv=t, rate=r))
    assert got == []
    assert eng.stats()["errors"] == 0
    assert eng.hub.stats()["subscribers"]["detectors.funding"]["errors"] == 0


def test_warm_up_suppresses_statistical_detectors() -> None:
    """Before min_samples buckets, a huge volume spike does not fire."""
    eng, got = engine()
    m = Market(eng)
    m.run(5.0)
    m.trade_rate = 200.0
    m.run(1.0)
    assert "volume" not in kinds(got)
