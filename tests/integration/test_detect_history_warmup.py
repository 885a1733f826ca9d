"""History warms the detector windows: BITFINEX's recording sends the last 30 trades of every
market on subscribe (hours old); the quality layer flags them historical, the detector engine
feeds them to its windows and warm-up counts, and nothing is alerted on them."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig
from cryptomon.detect.engine import DetectorEngine
from cryptomon.events import Anomaly, FlaggedTrade, Trade
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.registry import InstrumentRegistry

CFG = AnomalyDetectionConfig(min_samples=10)  # 10 orders and 10 one-minute buckets


async def replay_bitfinex(
    shared_data: Path,
) -> tuple[DetectorEngine, list[Anomaly], list[FlaggedTrade]]:
    hub = Hub()
    anomalies: list[Anomaly] = []
    history: list[FlaggedTrade] = []
    hub.subscribe(Anomaly, anomalies.append, name="test.anomalies")
    hub.subscribe(FlaggedTrade, history.append, name="test.history")
    engine = DetectorEngine(hub=hub, clock=ManualClock(0.0), config=CFG)
    files = sorted(glob.glob(str(shared_data / "BITFINEX.*")))
    feed = ReplayFeed(
        ExchangeConfig(name="bitfinex", source="replay", files=files),
        feed_class=replay_feed_class("BITFINEX"),
        hub=hub,
        clock=ManualClock(0.0),
        market=MarketInputs(registry=InstrumentRegistry()),
    )
    await feed.start()
    await feed.done.wait()
    await feed.stop()
    engine.flush()
    return engine, anomalies, history


def whale_after(last: Trade, median: float) -> Trade:
    """A live buy of 1000x the median order, a second after the newest historical trade."""
    return Trade(
        exchange=last.exchange,
        symbol=last.symbol,
        ts=last.ts + 1.0,
        ts_recv=last.ts + 1.0,
        price=last.price,
        amount=1000.0 * median / last.price,
        side="buy",
    )


@pytest.mark.asyncio
async def test_history_on_subscribe_warms_the_windows_and_never_alerts(
    shared_data: Path,
) -> None:
    """Every historical trade reaches the windows (none skipped), no anomaly comes from
    them, and the next live whale on a market fires at once, where an engine that saw no
    history is still inside its warm-up."""
    engine, anomalies, history = await replay_bitfinex(shared_data)
    assert len(history) == 210
    assert {h.flag for h in history} == {"historical"}
    assert engine.history.warmed == 210
    assert engine.history.skipped == 0
    assert engine.stats()["history_warmed"] == 210
    trade_kinds = {k for det in engine.detectors.values() for k in det.kinds.values()}
    book_only = {"spread", "book_imbalance", "divergence", "arbitrage"}
    assert [a for a in anomalies if a.kind in trade_kinds - book_only] == []
    dog = [h.trade for h in history if h.symbol == "DOG-USD"]
    assert len(dog) == 30
    assert dog[-1].ts - dog[0].ts > 10 * 60  # the history spans the time warm-up
    median = sorted(t.price * t.amount for t in dog)[15]
    whale = whale_after(dog[-1], median)

    before = len(anomalies)
    engine.hub.publish(whale)
    engine.flush()
    fired = [a for a in anomalies[before:] if a.kind == "whale"]
    assert [(a.symbol, a.ts) for a in fired] == [("DOG-USD", whale.ts)]

    cold_hub = Hub()
    cold: list[Anomaly] = []
    cold_hub.subscribe(Anomaly, cold.append, name="test.cold")
    cold_engine = DetectorEngine(hub=cold_hub, clock=ManualClock(0.0), config=CFG)
    cold_hub.publish(whale)
    cold_engine.flush()
    assert cold == []


@pytest.mark.asyncio
async def test_history_older_than_the_live_window_is_skipped(shared_data: Path) -> None:
    """History that arrives after live trades of its market (a reconnect) cannot go back in
    time: it is counted as skipped and changes no window."""
    engine, _anomalies, history = await replay_bitfinex(shared_data)
    old = history[0]
    sid = engine.symbol_id(old.exchange, old.symbol)
    whale = engine.detectors["whale"]
    before = whale.roll.state[sid].copy()  # type: ignore[attr-defined]
    engine.hub.publish(FlaggedTrade(**{**_fields(old), "flag": "historical"}))
    engine.flush()
    assert engine.history.skipped == 1
    assert engine.history.warmed == 210
    assert (whale.roll.state[sid] == before).all()  # type: ignore[attr-defined]


def _fields(ev: FlaggedTrade) -> dict[str, object]:
    return {
        "exchange": ev.exchange,
        "symbol": ev.symbol,
        "ts": ev.ts,
        "ts_recv": ev.ts_recv,
        "trade": ev.trade,
    }
