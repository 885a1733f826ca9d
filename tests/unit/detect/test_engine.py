"""DetectorEngine: micro-batching, cooldown with escalation, overrides, bad input, stats."""

from __future__ import annotations

import asyncio
import math

import pytest

from cryptomon.app import build_app
from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig, load_settings
from cryptomon.detect.engine import KINDS, LATENCY_BUCKETS, DetectorEngine
from cryptomon.events import Anomaly, Funding, Liquidation, Ticker, Trade
from cryptomon.hub import Hub
from tests.unit.detect.market import T0, Market, engine, immediate_registry, kinds
from tests.util import wait_until


def whale_trade(t: float, amount: float = 20_000.0, symbol: str = "BTC-USDT") -> Trade:
    notional = 100.0 * amount  # as the units layer computes it from a known spec
    return Trade(
        exchange="x",
        symbol=symbol,
        ts=t,
        ts_recv=t,
        price=100.0,
        amount=amount,
        side="buy",
        notional=notional,
        notional_usd=notional,
    )


def test_cooldown_suppresses_repeats_and_a_higher_severity_passes() -> None:
    """Same kind within cooldown_s: suppressed unless more severe; after it, fires again."""
    eng, got = engine(immediate_whale=True, cooldown_s=60.0, whale_median_multiple=1e9)
    pub = eng.hub.publish
    pub(whale_trade(T0 + 1, 11_000.0))  # 1.1M: low
    pub(whale_trade(T0 + 2, 11_000.0))  # low again within the cooldown: suppressed
    pub(whale_trade(T0 + 3, 30_000.0))  # 3M: critical, passes
    pub(whale_trade(T0 + 4, 11_000.0))  # low, within the cooldown of the critical one
    pub(whale_trade(T0 + 100, 11_000.0))  # after the cooldown
    eng.flush()
    assert [a.severity.value for a in got] == ["low", "critical", "low"]
    assert eng.stats()["suppressed_by_cooldown"] == 2


def test_per_symbol_override_changes_the_threshold() -> None:
    """overrides['x:ETH/USDT'] applies to that market only."""
    eng, got = engine(
        immediate_whale=True,
        whale_median_multiple=1e9,
        overrides={"x:ETH/USDT": {"whale_notional": {"USDT": 10_000.0}}},
    )
    eng.hub.publish(whale_trade(T0 + 1, 200.0, "BTC-USDT"))  # 20k USDT
    eng.hub.publish(whale_trade(T0 + 1, 200.0, "ETH-USDT"))
    eng.flush()
    assert [(a.symbol, a.kind, a.threshold) for a in got] == [("ETH-USDT", "whale", 10_000.0)]


def test_no_running_loop_needs_explicit_flush_or_a_full_batch() -> None:
    """Without a loop nothing runs until flush(); a full batch flushes by itself."""
    eng, got = engine(immediate_whale=True, batch_size=3, whale_median_multiple=1e9)
    eng.hub.publish(whale_trade(T0 + 1))
    eng.hub.publish(whale_trade(T0 + 2, 1.0))
    assert got == []
    eng.hub.publish(whale_trade(T0 + 3, 1.0))
    assert kinds(got) == ["whale"]


@pytest.mark.asyncio
async def test_batch_is_flushed_at_the_end_of_the_loop_iteration() -> None:
    """Inside a running loop the anomaly is published without any explicit flush."""
    eng, got = engine(immediate_whale=True, whale_median_multiple=1e9)
    eng.hub.publish(whale_trade(T0 + 1))
    assert got == []
    await wait_until(lambda: len(got) == 1, timeout=5.0, message="flush via call_soon")
    assert got[0].kind == "whale"


def test_malformed_market_data_never_crashes_and_is_skipped() -> None:
    """NaN/inf/zero/negative values are skipped; valid data around them still works."""
    eng, got = engine()
    m = Market(eng)
    m.run(30)
    bad = [math.nan, math.inf, -1.0, 0.0]
    for v in bad:
        m.t += 0.01
        eng.hub.publish(
            Trade(
                exchange="x",
                symbol="BTC-USDT",
                ts=m.t,
                ts_recv=m.t,
                price=v,
                amount=1.0,
                side="buy",
            )
        )
        eng.hub.publish(
            Trade(
                exchange="x",
                symbol="BTC-USDT",
                ts=m.t,
                ts_recv=m.t,
                price=m.price,
                amount=v,
                side="sell",
            )
        )
        if not math.isfinite(v):
            eng.hub.publish(
                Trade(
                    exchange="x",
                    symbol="BTC-USDT",
                    ts=v,
                    ts_recv=m.t,
                    price=m.price,
                    amount=1.0,
                    side="sell",
                )
            )
            eng.hub.publish(Funding(exchange="x", symbol="BTC-USDT", ts=m.t, ts_recv=m.t, rate=v))
        m.book(spread_bps=v, imbalance=v)
    m.run(60)
    assert got == [], kinds(got)
    assert eng.stats()["errors"] == 0
    assert eng.hub.stats()["subscribers"]["detectors.trade"]["errors"] == 0
    m.trade_rate = 200.0
    m.run(1.0)
    assert "volume" in kinds(got)


def test_stats_shape_counts_and_latency_histogram() -> None:
    """stats(): events, anomalies by kind and severity, cumulative latency buckets."""
    hub = Hub()
    clock = ManualClock(T0)
    eng = DetectorEngine(
        hub=hub,
        clock=clock,
        config=AnomalyDetectionConfig(whale_median_multiple=1e9),
        registry=immediate_registry(),
    )
    hub.publish(whale_trade(T0 - 0.0003))
    hub.publish(Ticker(exchange="x", symbol="BTC-USDT", ts=T0, ts_recv=T0, bid=1.0, ask=1.1))
    eng.flush()
    st = eng.stats()
    assert st["events"] == {"trades": 1, "tickers": 1}
    assert st["events_processed"] == 2
    assert st["anomalies"]["total"] == 1
    assert set(st["anomalies"]["by_kind"]) == set(KINDS)
    assert st["anomalies"]["by_kind"]["whale"] == 1
    assert st["anomalies"]["by_severity"] == {"low": 0, "medium": 0, "high": 1, "critical": 0}
    buckets = st["latency_seconds"]["buckets"]
    assert list(buckets) == [*map(str, LATENCY_BUCKETS), "+Inf"]
    assert buckets["0.00025"] == 0
    assert buckets["0.0005"] == 1
    assert buckets["+Inf"] == 1
    assert st["latency_seconds"]["count"] == 1
    assert math.isclose(st["latency_seconds"]["sum"], 0.0003, rel_tol=1e-3)


def test_anomaly_carries_event_times_and_detection_time() -> None:
    """ts/ts_recv come from the triggering event, ts_detected from the clock."""
    hub = Hub()
    clock = ManualClock(T0 + 5)
    got: list[Anomaly] = []
    hub.subscribe(Anomaly, got.append)
    eng = DetectorEngine(
        hub=hub,
        clock=clock,
        config=AnomalyDetectionConfig(whale_median_multiple=1e9),
        registry=immediate_registry(),
    )
    hub.publish(
        Trade(
            exchange="x",
            symbol="BTC-USDT",
            ts=T0,
            ts_recv=T0 + 1,
            price=100.0,
            amount=20_000.0,
            side="sell",
            notional=2_000_000.0,
            notional_usd=2_000_000.0,
        )
    )
    eng.flush()
    (a,) = got
    assert (a.ts, a.ts_recv, a.ts_detected) == (T0, T0 + 1, T0 + 5)


def test_new_symbols_grow_the_state_arrays() -> None:
    """Hundreds of markets get their own ids and state rows; each keeps its own statistics."""
    eng, got = engine(immediate_whale=True, whale_median_multiple=1e9)
    for i in range(300):
        eng.hub.publish(
            Trade(
                exchange="x",
                symbol=f"S{i}-USDT",
                ts=T0,
                ts_recv=T0,
                price=100.0,
                amount=1.0,
                side="buy",
            )
        )
        eng.hub.publish(
            Liquidation(
                exchange="x",
                symbol=f"S{i}-USDT",
                ts=T0,
                ts_recv=T0,
                price=100.0,
                amount=1.0,
                side="buy",
            )
        )
    eng.hub.publish(whale_trade(T0 + 1, symbol="S299-USDT"))
    eng.flush()
    assert eng.stats()["symbols"] == 300
    assert [a.symbol for a in got] == ["S299-USDT"]
    assert eng.detectors["price"].state.shape[0] >= 300
    assert eng.detectors["whale"].roll.buf.shape[0] >= 300


@pytest.mark.asyncio
async def test_build_app_wires_the_engine_unless_disabled() -> None:
    """_build_detect adds the 'detectors' component; enabled: false leaves it out."""
    on = build_app(load_settings(data={}), clock=ManualClock(), hub=Hub())
    names = [c.name for c in on.components]
    assert "detectors" in names
    assert isinstance(on.services.detectors, DetectorEngine)
    off = build_app(load_settings(data={"anomaly_detection": {"enabled": False}}), hub=Hub())
    assert "detectors" not in [c.name for c in off.components]
    assert off.services.detectors is None


@pytest.mark.asyncio
async def test_start_compiles_and_stop_flushes_and_unsubscribes() -> None:
    """stop() publishes what is buffered, then the engine no longer receives events."""
    eng, got = engine(immediate_whale=True, whale_median_multiple=1e9)
    await eng.start()
    eng.hub.publish(whale_trade(T0 + 1))
    await eng.stop()
    assert kinds(got) == ["whale"]
    eng.hub.publish(whale_trade(T0 + 1000))
    await asyncio.sleep(0)
    assert eng.stats()["events"]["trades"] == 1


def test_bad_threshold_config_is_rejected_with_key_path() -> None:
    """A negative threshold or a bad override names the key and the expectation."""
    from cryptomon.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_settings(data={"anomaly_detection": {"spread_min_ratio": 0.5}})
    assert "anomaly_detection.spread_min_ratio" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"anomaly_detection": {"overrides": {"binance:BTC/USDT": {"nope": 1}}}})
    assert "nope" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"anomaly_detection": {"whale_notional": {"USDT": -5}}})
    assert "whale_notional" in str(exc.value)


def test_a_long_warmup_says_it_compiles_and_a_cached_one_is_silent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first start after an install compiles the kernels for ~10 s: a line says so while
    it runs (the loop is held, so from a timer thread) and another when it is done."""
    import time

    from structlog.testing import capture_logs

    import cryptomon.detect.warmup as warmup_mod

    with capture_logs() as logs:

        def compiling(engine: object, registry: object = None) -> None:  # until the notice
            deadline = time.monotonic() + 10.0
            while not any(e["event"] == "detectors.compiling" for e in logs):
                assert time.monotonic() < deadline, "no detectors.compiling line"
                time.sleep(0.005)

        monkeypatch.setattr(warmup_mod, "COMPILE_NOTICE_S", 0.02)
        monkeypatch.setattr(warmup_mod, "warmup", compiling)
        seconds = warmup_mod.warmup_with_notice(DetectorEngine)
    assert [e["event"] for e in logs] == ["detectors.compiling", "detectors.compiled"]
    assert "cache" in logs[0]["hint"]
    assert logs[0]["cache_dir"]
    assert seconds >= 0.02
    assert logs[1]["seconds"] == round(seconds, 1)

    monkeypatch.setattr(warmup_mod, "COMPILE_NOTICE_S", 5.0)
    monkeypatch.setattr(warmup_mod, "warmup", lambda engine, registry=None: None)
    with capture_logs() as logs:
        assert warmup_mod.warmup_with_notice(DetectorEngine) < 5.0
    assert logs == []
