"""The real shared recordings replayed through the feed code with the detectors on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cryptomon.clock import LiveClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig
from cryptomon.detect.book_nb import B_TICK
from cryptomon.detect.engine import DetectorEngine
from cryptomon.events import Anomaly, Event
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub

EXCHANGES = ("BINANCE", "BINANCE_FUTURES", "BITFINEX", "GATEIO", "KRAKEN", "OKX")

# sensitive thresholds so the small recordings produce anomalies of several kinds
SENSITIVE = AnomalyDetectionConfig(
    bucket_seconds=1.0,
    lookback_window_minutes=0.5,
    min_samples=3,
    volume_threshold_multiplier=1.0,
    price_change_percentage=0.01,
    ma_deviation_percentage=0.005,
    volatility_z_threshold=1.0,
    whale_median_multiple=2.0,
    whale_quantile_multiple=0.5,
    whale_min_notional={},
    whale_burst_count=2,
    spread_z_threshold=1.0,
    spread_min_ratio=1.01,
    spread_min_ticks=0.0,
    spread_min_bps=0.0,
    book_imbalance_threshold=0.3,
    book_imbalance_min_s=0.0,
    divergence_bps=1.0,
    divergence_min_s=0.0,
    cooldown_s=0.0,
)


def recordings(data: Path) -> dict[str, list[str]]:
    return {n: sorted(str(p) for p in data.glob(f"{n}.*")) for n in EXCHANGES}


@pytest.mark.asyncio
async def test_replaying_every_recording_with_detectors_never_crashes(shared_data: Path) -> None:
    """All six recordings through one hub: no subscriber error, anomalies fully filled."""
    hub = Hub()
    got: list[Anomaly] = []
    hub.subscribe(Anomaly, got.append)
    engine = DetectorEngine(hub=hub, clock=LiveClock(), config=SENSITIVE)
    await engine.start()
    for name, files in recordings(shared_data).items():
        cfg = ExchangeConfig(name=name.lower(), source="replay", files=files, depth=20)
        feed = ReplayFeed(cfg, feed_class=replay_feed_class(name), hub=hub, clock=LiveClock())
        await feed.start()
        await feed.done.wait()
        await feed.stop()
        assert feed.error is None
    await engine.stop()
    stats = engine.stats()
    assert stats["errors"] == 0
    for sub in hub.stats()["subscribers"].values():
        assert sub["errors"] == 0
    assert stats["events"]["trades"] == 2 + 91 + 210 + 9 + 10 + 74
    assert stats["events"]["books"] > 1000
    assert len(got) == stats["anomalies"]["total"] > 0
    assert {"whale", "spread", "volatility"} <= {a.kind for a in got}
    for a in got:
        assert_complete(a)


def assert_complete(a: Anomaly) -> None:
    """Every field of the published anomaly is set and finite."""
    assert isinstance(a, Event)
    assert a.exchange
    assert a.symbol
    for name in ("ts", "ts_recv", "ts_detected", "value", "threshold", "confidence"):
        assert math.isfinite(getattr(a, name)), (a.kind, name)
    assert a.reasons, a.kind
    assert a.samples > 0, a.kind
    assert a.window_mean is not None, a.kind
    # whales compare with the median and a quantile of recent orders: no std
    assert (a.window_std is None) == a.kind.startswith("whale"), a.kind
    if a.kind not in ("liquidations", "funding"):
        assert a.price_change_pct is not None or a.kind in ("spread", "book_imbalance"), a.kind


async def _replay_futures(
    shared_data: Path, **overrides: float
) -> tuple[DetectorEngine, list[Anomaly]]:
    """BINANCE_FUTURES through the replay feed into an engine with short windows."""
    hub = Hub()
    cfg = AnomalyDetectionConfig(
        bucket_seconds=1.0, min_samples=5, lookback_window_minutes=1.0, cooldown_s=5.0, **overrides
    )
    engine = DetectorEngine(hub=hub, clock=LiveClock(), config=cfg)
    got: list[Anomaly] = []
    hub.subscribe(Anomaly, got.append)
    files = recordings(shared_data)["BINANCE_FUTURES"]
    exchange = ExchangeConfig(name="binance_futures", source="replay", files=files, depth=20)
    feed = ReplayFeed(
        exchange, feed_class=replay_feed_class("BINANCE_FUTURES"), hub=hub, clock=LiveClock()
    )
    await feed.start()
    await feed.done.wait()
    await feed.stop()
    await engine.stop()
    return engine, got


@pytest.mark.asyncio
async def test_a_recorded_tick_limited_book_gives_no_spread_alert(shared_data: Path) -> None:
    """SUSHI-USDT-PERP's book (tick 0.001 at ~7.6: 1 tick = 1.3 bps) widens to 4-5 ticks: the
    spread z passes 8 against its 1-tick mean, but under spread_min_ticks nothing fires; the
    tick inferred from the price grid is the exchange's tickSize."""
    _, old = await _replay_futures(shared_data, spread_min_ticks=0.0)
    sushi = [a for a in old if a.kind == "spread" and a.symbol == "SUSHI-USDT-PERP"]
    assert sushi, "the recording no longer shows the few-tick widening"
    assert all(a.z_score is not None and a.z_score >= 6.0 for a in sushi)
    engine, new = await _replay_futures(shared_data)
    assert [a for a in new if a.kind == "spread"] == []
    sid = engine.symbol_id("binance_futures", "SUSHI-USDT-PERP")
    assert engine.detectors["book"].state[sid, B_TICK] == pytest.approx(0.001)
