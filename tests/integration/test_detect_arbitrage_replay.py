"""The arbitrage detector on two real recordings of the same asset in two quote currencies:
OKX BTC-USDT (May 2022) and Gate.io BTC-USDC (April 2021), replayed through the feed code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig
from cryptomon.detect.arbitrage import ArbitrageDetector
from cryptomon.detect.engine import DetectorEngine
from cryptomon.events import Anomaly, BookTop
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub

PAIR = {("okx", "BTC-USDT"), ("gateio", "BTC-USDC")}


def _engine(hub: Hub) -> DetectorEngine:
    return DetectorEngine(
        hub=hub, clock=ManualClock(0.0), config=AnomalyDetectionConfig(cooldown_s=0.0)
    )


def _files(shared_data: Path, name: str) -> list[str]:
    return sorted(str(p) for p in shared_data.glob(f"{name}.*"))


async def _replay(shared_data: Path, hub: Hub) -> None:
    for name in ("OKX", "GATEIO"):
        files = _files(shared_data, name)
        cfg = ExchangeConfig(name=name.lower(), source="replay", files=files, depth=20)
        feed = ReplayFeed(cfg, feed_class=replay_feed_class(name), hub=hub, clock=LiveClock())
        await feed.start()
        await feed.done.wait()
        await feed.stop()
        assert feed.error is None


@pytest.mark.asyncio
async def test_replayed_recordings_are_grouped_and_compared_only_when_fresh(
    shared_data: Path,
) -> None:
    """Replayed as recorded (a year apart) the two BTC markets share one arbitrage group
    across USDT/USDC but never compare (the other quote is stale): no anomaly. Their book
    tops placed in one time window give one anomaly: buy the cheaper OKX ask, sell the Gate.io
    bid, net of both default taker fees, for the smaller of the two top sizes."""
    hub = Hub()
    tops: list[BookTop] = []
    found: list[Anomaly] = []
    hub.subscribe(BookTop, lambda t: tops.append(t) if (t.exchange, t.symbol) in PAIR else None)
    hub.subscribe(Anomaly, lambda a: found.append(a) if a.kind == "arbitrage" else None)
    engine = _engine(hub)
    await engine.start()
    await _replay(shared_data, hub)
    engine.flush()
    det = engine.detectors["arbitrage"]
    assert isinstance(det, ArbitrageDetector)
    okx, gate = (engine.symbol_id(ex, sym) for ex, sym in sorted(PAIR, reverse=True))
    assert det.group_of[okx] == det.group_of[gate]
    assert {(t.exchange, t.symbol) for t in tops} == PAIR
    assert found == []

    # the same book tops in one window: the Gate.io top right after the first OKX one
    okx_tops = [t for t in tops if t.exchange == "okx"]
    gate_top = next(t for t in tops if t.exchange == "gateio")
    first = okx_tops[0]
    moved = dataclasses.replace(gate_top, ts=first.ts + 0.01, ts_recv=first.ts_recv + 0.01)
    hub2 = Hub()
    again: list[Anomaly] = []
    hub2.subscribe(Anomaly, lambda a: again.append(a) if a.kind == "arbitrage" else None)
    engine2 = _engine(hub2)
    hub2.publish(first)
    hub2.publish(moved)
    engine2.flush()
    assert len(again) == 1
    a = again[0]
    want = (gate_top.bid * 0.999 / (first.ask * 1.001) - 1) * 1e4
    assert a.value == pytest.approx(want)
    size = min(first.ask_size, gate_top.bid_size)
    assert (
        f"Buy okx BTC-USDT at {first.ask:g}, sell gateio BTC-USDC at {gate_top.bid:g}"
        in (a.reasons[0])
    )
    assert f"Executable size: {size:g} BTC" in a.reasons[2]
