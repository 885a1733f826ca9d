"""A restart warms the detectors from the store (``anomaly_detection.warm_from_store``):
40 minutes written by a real store writer (1-minute candles; with ``storage.trades`` the
trades too), then a new hub and detector engine warmed by the daemon's warm-start component
before any live trade. A volume burst in the first live minute alerts (a cold engine is still
in its 30-minute warm-up), nothing is alerted on the stored data itself (it holds a burst and
a whale of its own), and the whale detector is warmed only by stored trades, never by
candles. On SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import pytest
from structlog.testing import capture_logs

from cryptomon.app.build import build_app
from cryptomon.app.warmstart import StoreWarmStart
from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig, StorageConfig, load_settings
from cryptomon.detect.engine import DetectorEngine
from cryptomon.detect.kernels_nb import R_N
from cryptomon.events import Anomaly, Trade
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.writer import StoreWriter

EX, SYM = "binance", "BTC-USDT"
NOW = 1_800_000_000.0 + 20.0  # 20 s into a minute
MINUTES = 40
PRICE = 50_000.0
CFG = AnomalyDetectionConfig()  # min_samples 30, 60 s buckets, 60 min lookback


def _trade(ts: float, amount: float, price: float = PRICE, side: str = "buy") -> Trade:
    return Trade(exchange=EX, symbol=SYM, ts=ts, ts_recv=ts, price=price, amount=amount, side=side)  # type: ignore[arg-type]


def stored_trades() -> list[Trade]:
    """Four small trades a minute over the 40 minutes before NOW's minute, a volume burst
    and a whale (0.5 BTC, 50x the median order) in minute 35: both would alert live."""
    start = math.floor(NOW / 60.0) * 60.0 - MINUTES * 60.0
    out = []
    for minute in range(MINUTES):
        for k in range(4):
            ts = start + minute * 60.0 + 5.0 + 12.0 * k
            amount = 0.01 * (1.0 + 0.1 * ((minute + k) % 3 - 1))
            price = PRICE * (1.0 + 0.0002 * ((minute * 7 + k) % 5 - 2))
            out.append(_trade(ts, amount, price, "buy" if k % 2 else "sell"))
        if minute == 35:
            out.append(_trade(start + minute * 60.0 + 50.0, 0.5))
    return out


async def store_previous_run(
    db: Database, *, trades: bool, symbols: tuple[str, ...] = (SYM,)
) -> None:
    """The previous run: its store writer folds the trades into 1-minute candles (and stores
    the trades with ``storage.trades``); stopping it writes everything. ``symbols``: the
    same trades on each of these markets."""
    hub = Hub()
    writer = StoreWriter(
        hub=hub, db=db, config=StorageConfig(trades=trades), clock=ManualClock(NOW - 60.0)
    )
    await writer.start()
    await hub.start()
    for t in stored_trades():
        for symbol in symbols:
            hub.publish(dataclasses.replace(t, symbol=symbol) if symbol != SYM else t)
    await hub.stop()
    await writer.stop()


async def restart(
    db: Database, *, trades: bool, max_trades: int = 100_000
) -> tuple[DetectorEngine, list[Anomaly], Hub, dict[str, Any]]:
    """A new hub and detector engine, warmed by the daemon's warm-start component; its
    ``detectors.warm_start`` log line."""
    hub = Hub()
    anomalies: list[Anomaly] = []
    hub.subscribe(Anomaly, anomalies.append, name="test.anomalies")
    published: list[Any] = []
    hub.subscribe(Trade, published.append, name="test.trades")
    clock = ManualClock(NOW)
    engine = DetectorEngine(hub=hub, clock=clock, config=CFG)
    await engine.start()
    warm = StoreWarmStart(
        db=db,
        detectors=engine,
        clock=clock,
        config=CFG,
        markets=[(EX, SYM)],
        trades=trades,
        max_trades=max_trades,
    )
    with capture_logs() as logs:
        await warm.start()
    engine.flush()
    assert published == []  # nothing stored went through the hub
    line = [e for e in logs if e["event"] == "detectors.warm_start"]
    assert len(line) == 1, logs
    assert line[0]["source"] == ("trades" if trades else "candles")
    assert line[0]["markets"] == 1
    assert line[0]["minutes"] >= (MINUTES if max_trades > 1000 else 10)
    return engine, anomalies, hub, line[0]


def cold_engine() -> tuple[DetectorEngine, list[Anomaly], Hub]:
    hub = Hub()
    anomalies: list[Anomaly] = []
    hub.subscribe(Anomaly, anomalies.append, name="test.cold")
    return DetectorEngine(hub=hub, clock=ManualClock(NOW), config=CFG), anomalies, hub


def live(engine: DetectorEngine, hub: Hub, trade: Trade) -> None:
    hub.publish(trade)
    engine.flush()


@pytest.mark.asyncio
async def test_stored_candles_warm_price_and_volume_never_whale(db: Database) -> None:
    await store_previous_run(db, trades=False)
    engine, anomalies, hub, line = await restart(db, trades=False)
    assert line["detectors"] == ["price", "volume"]
    assert anomalies == []  # the stored burst and whale alerted nothing
    stats = engine.stats()
    assert stats["store_warmed"] == {"candles": MINUTES}
    assert stats["store_warmed_markets"] == 1
    sid = engine.symbol_id(EX, SYM)
    price: Any = engine.detectors["price"]
    assert price.closes.state[sid, R_N] == MINUTES - 1  # the closes of the completed buckets
    assert abs(price.change_pct(sid)) < 1.0  # the context of the next anomaly is known
    whale = engine.detectors["whale"]
    assert whale.roll.state[sid, R_N] == 0  # type: ignore[attr-defined]  # an empty window
    assert not engine.gate.ready(whale)[sid]

    # the first live minute: a whale-sized order (100x the median) is a volume burst
    burst = _trade(NOW + 1.0, 1.0)
    live(engine, hub, burst)
    kinds = {a.kind for a in anomalies}
    assert "volume" in kinds
    assert "whale" not in kinds  # the whale window is empty: candles never warm it

    cold, cold_anomalies, cold_hub = cold_engine()
    live(cold, cold_hub, burst)
    assert cold_anomalies == []  # without the warm start: the 30-minute warm-up


@pytest.mark.asyncio
async def test_stored_trades_warm_every_trade_detector(db: Database) -> None:
    await store_previous_run(db, trades=True)
    engine, anomalies, hub, line = await restart(db, trades=True)
    assert (line["rows"], line["cut"]) == (len(stored_trades()), 0)
    assert anomalies == []
    assert engine.stats()["store_warmed"] == {"trades": len(stored_trades())}
    assert engine.history.warmed == 0  # venue history is counted apart

    burst = _trade(NOW + 1.0, 5.0)  # 500x the median order, 10x the stored whale
    live(engine, hub, burst)
    kinds = {a.kind for a in anomalies}
    assert {"volume", "whale"} <= kinds


@pytest.mark.asyncio
async def test_a_market_whose_trades_the_cap_cuts_gets_its_candles_too(db: Database) -> None:
    """60 stored trades (a busy market's share of the cap) span 15 minutes: the market's
    candles fill the price and volume buckets before them; the whale window holds the 60
    orders but its 30-minute warm-up is not met by them, so it stays quiet."""
    await store_previous_run(db, trades=True)
    engine, anomalies, hub, line = await restart(db, trades=True, max_trades=60)
    assert (line["cut"], line["candles"], line["rows"]) == (1, MINUTES, 60)
    assert anomalies == []
    assert engine.stats()["store_warmed"] == {"candles": MINUTES, "trades": 60}
    live(engine, hub, _trade(NOW + 1.0, 5.0))
    kinds = {a.kind for a in anomalies}
    assert "volume" in kinds
    assert "whale" not in kinds


@pytest.mark.asyncio
async def test_a_bucket_of_no_whole_minutes_is_not_warmed_from_candles(db: Database) -> None:
    await store_previous_run(db, trades=False)
    cfg = AnomalyDetectionConfig(bucket_seconds=90)
    hub = Hub()
    engine = DetectorEngine(hub=hub, clock=ManualClock(NOW), config=cfg)
    warm = StoreWarmStart(
        db=db, detectors=engine, clock=engine.clock, config=cfg, markets=[(EX, SYM)], trades=False
    )
    with capture_logs() as logs:
        await warm.start()
    line = next(e for e in logs if e["event"] == "detectors.warm_start")
    assert line["markets"] == 0
    assert line["not_warmed"] == [f"{EX}:{SYM}"]
    assert line["detectors"] == []  # none warmed (it listed price and volume, as if they were)
    assert "storage.trades: true" in line["hint"]  # what warms such a market
    assert engine.stats()["store_warmed"] == {}


@pytest.mark.asyncio
async def test_an_empty_store_and_a_cut_read(db: Database) -> None:
    """No stored row: nothing warmed, the start goes on. A budget the read cannot meet:
    the start goes on, and says so."""
    hub = Hub()
    engine = DetectorEngine(hub=hub, clock=ManualClock(NOW), config=CFG)
    warm = StoreWarmStart(
        db=db, detectors=engine, clock=engine.clock, config=CFG, markets=[(EX, SYM)], trades=True
    )
    with capture_logs() as logs:
        await warm.start()
    line = next(e for e in logs if e["event"] == "detectors.warm_start")
    assert (line["markets"], line["rows"], line["cut"]) == (0, 0, False)
    cut = StoreWarmStart(
        db=db,
        detectors=engine,
        clock=engine.clock,
        config=CFG,
        markets=[(EX, SYM)],
        trades=True,
        budget_s=0.0,
    )
    with capture_logs() as logs:
        await cut.start()
    assert [e["event"] for e in logs if e["event"].startswith("detectors.warm")] == [
        "detectors.warm_start_cut",
        "detectors.warm_start",
    ]


def test_the_daemon_warms_between_the_detectors_and_the_feeds(tmp_path: Any) -> None:
    """build_app places the warm start after the detectors and before the feeds, for the
    configured live markets; warm_from_store: false leaves it out."""
    data = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"},
        "exchanges": [{"name": EX, "symbols": [SYM, "ETH-USDT"]}],
        "storage": {"trades": True},
        "api": {"enabled": False},
    }
    app = build_app(load_settings(data=data))
    names = [c.name for c in app.components]
    assert names.index("detectors") < names.index("detector-warm-start") < names.index("feeds")
    warm = next(c for c in app.components if isinstance(c, StoreWarmStart))
    assert warm.markets == [(EX, SYM), (EX, "ETH-USDT")]
    assert warm.trades is True
    data["anomaly_detection"] = {"warm_from_store": False}
    app = build_app(load_settings(data=data))
    assert "detector-warm-start" not in [c.name for c in app.components]


@pytest.mark.asyncio
async def test_the_daemon_starts_warm_over_its_stored_candles(tmp_path: Any) -> None:
    """The whole daemon (build_app, the simulator venue, a SQLite file): the previous run's
    store writer left 40 minutes of 1-minute candles; the next start warms price and volume
    of the market from them before its feed runs."""
    from cryptomon.clock import LiveClock
    from cryptomon.sim.exchange import SimExchange
    from cryptomon.sim.market import MarketModel
    from tests.util import wait_until

    url = f"sqlite+aiosqlite:///{tmp_path / 'daemon.db'}"
    clock = LiveClock()
    first = math.floor(clock.time() / 60.0) * 60.0 - MINUTES * 60.0
    db = Database(load_settings(data={"database": {"url": url}}).database)
    await db.start()
    hub = Hub()
    writer = StoreWriter(hub=hub, db=db, config=StorageConfig(), clock=clock)
    await writer.start()
    await hub.start()
    for minute in range(MINUTES):
        ts = first + minute * 60.0 + 10.0
        hub.publish(
            Trade(
                exchange="simulator",
                symbol=SYM,
                ts=ts,
                ts_recv=ts,
                price=PRICE,
                amount=0.01,
                side="buy",
            )
        )
    await hub.stop()
    await writer.stop()
    await db.stop()

    sim = SimExchange(MarketModel([SYM], seed=3), interval=0.05)
    await sim.start()
    try:
        settings = load_settings(
            data={
                "exchanges": [{"name": "simulator", "url": sim.rest_url, "symbols": [SYM]}],
                "database": {"url": url},
                "api": {"enabled": False},
                "logging": {"level": "WARNING"},
            }
        )
        app = build_app(settings)
        await app.start()
        try:
            detectors = app.services.detectors
            assert detectors is not None
            stats = detectors.stats()
            assert stats["store_warmed"] == {"candles": MINUTES}
            assert stats["store_warmed_markets"] == 1
            # the feed runs after it: live trades reach the warmed engine
            await wait_until(lambda: detectors.stats()["events"].get("trades", 0) > 0)
        finally:
            await app.stop()
    finally:
        await sim.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("trades", [False, True])
async def test_a_store_that_stopped_long_before_the_start_is_not_used(
    db: Database, trades: bool
) -> None:
    """The daemon was down 20 minutes: the store's newest data is that old, and the minutes
    in between would enter the windows as quiet buckets (volume 0, the price flat), lowering
    the volume mean a live burst is measured against. The warm start is skipped, saying why;
    the detectors start cold, as without it. Down no longer than three buckets (a restart,
    a deploy): warmed (the other tests)."""
    await store_previous_run(db, trades=trades)
    hub = Hub()
    clock = ManualClock(NOW + 20 * 60.0)
    engine = DetectorEngine(hub=hub, clock=clock, config=CFG)
    warm = StoreWarmStart(
        db=db, detectors=engine, clock=clock, config=CFG, markets=[(EX, SYM)], trades=trades
    )
    with capture_logs() as logs:
        await warm.start()
    line = next(e for e in logs if e["event"] == "detectors.warm_start")
    assert line["markets"] == 0
    assert line["skipped"].startswith("the store's newest data is 20.")
    assert "min old" in line["skipped"]
    assert engine.stats()["store_warmed"] == {}


@pytest.mark.asyncio
@pytest.mark.parametrize("trades", [False, True])
async def test_each_market_is_measured_by_its_own_bucket_for_the_time_down(
    db: Database, trades: bool
) -> None:
    """A per-market ``bucket_seconds`` of 5 s beside the 60 s default, both markets stored
    until about 40 s before the start (a restart): the 60 s market is warmed (40 s is less
    than three of its buckets); the 5 s one starts cold (40 s is eight of its buckets, which
    would enter its windows as quiet ones) and the line names it and says why. The largest
    bucket of all the markets decided for every one of them, so the 5 s market was warmed
    over its gap."""
    other = "ETH-USDT"
    await store_previous_run(db, trades=trades, symbols=(SYM, other))
    cfg = AnomalyDetectionConfig(
        overrides={f"{EX}:{other}": {"bucket_seconds": 5.0, "lookback_window_minutes": 10}}
    )
    hub = Hub()
    clock = ManualClock(NOW)
    engine = DetectorEngine(hub=hub, clock=clock, config=cfg)
    await engine.start()
    warm = StoreWarmStart(
        db=db,
        detectors=engine,
        clock=clock,
        config=cfg,
        markets=[(EX, SYM), (EX, other)],
        trades=trades,
    )
    with capture_logs() as logs:
        await warm.start()
    line = next(e for e in logs if e["event"] == "detectors.warm_start")
    assert line["markets"] == 1, line
    assert line["cold"] == [f"{EX}:{other}"], line
    # about 40 s (a trade) or 20 s (a candle, which ends at its minute's end) old
    assert re.match(
        r"the store's newest data is [2-4][0-9]\.[0-9] s old, more than 3 of their buckets",
        line["cold_why"],
    ), line
    assert "skipped" not in line
    assert engine.stats()["store_warmed_markets"] == 1
    price: Any = engine.detectors["price"]
    assert price.closes.state[engine.symbol_id(EX, SYM), R_N] > 0


@pytest.mark.asyncio
async def test_buckets_of_seconds_say_the_store_is_seconds_old_not_minutes(db: Database) -> None:
    """Buckets of 1 s (the demo's) and a restart 40 s after the last stored trade: skipped,
    in seconds and buckets ("40.x s old, more than 3 buckets (3.0 s ...)"), not "0.7 min old
    ... the minutes in between"."""
    await store_previous_run(db, trades=True)
    cfg = AnomalyDetectionConfig(bucket_seconds=1.0, lookback_window_minutes=1.0, min_samples=5)
    hub = Hub()
    engine = DetectorEngine(hub=hub, clock=ManualClock(NOW), config=cfg)
    warm = StoreWarmStart(
        db=db, detectors=engine, clock=engine.clock, config=cfg, markets=[(EX, SYM)], trades=True
    )
    with capture_logs() as logs:
        await warm.start()
    line = next(e for e in logs if e["event"] == "detectors.warm_start")
    assert line["markets"] == 0
    assert " s old, more than 3 buckets (3.0 s; the daemon was down)" in line["skipped"], line
    assert "min" not in line["skipped"]
