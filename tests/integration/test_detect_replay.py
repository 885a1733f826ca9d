"""The real shared recordings replayed through the feed code with the detectors on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cryptomon.clock import LiveClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig
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
