"""Warming from stored candles (``DetectorEngine.warm_from_candles``): only the completed
buckets, only price and volume, credited to them alone; venue history that arrives after
them reaches the whale window but not the buckets the candles already hold."""

from __future__ import annotations

from typing import Any

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.engine import DetectorEngine
from cryptomon.detect.kernels_nb import R_N
from cryptomon.detect.registry import Source
from cryptomon.detect.volume_nb import V_VOL
from cryptomon.events import Candle, FlaggedTrade, Trade
from cryptomon.hub import Hub

NOW = 1_800_000_030.0  # 30 s into a minute
EX, SYM = "binance", "BTC-USDT"


def candles(n: int, volume: float = 2.0) -> list[Candle]:
    """``n`` candles up to and including NOW's (unfinished) minute."""
    first = (NOW // 60.0 - (n - 1)) * 60.0
    return [
        Candle(
            exchange=EX, symbol=SYM, ts=first + 60.0 * i + 60.0, ts_recv=0.0, interval="1m",
            start=first + 60.0 * i, end=first + 60.0 * i + 60.0, open=100.0, high=101.0,
            low=99.0, close=100.0, volume=volume, trades=3,
        )
        for i in range(n)
    ]  # fmt: skip


def test_completed_buckets_warm_price_and_volume_and_credit_them_alone() -> None:
    engine = DetectorEngine(hub=Hub(), clock=ManualClock(NOW), config=AnomalyDetectionConfig())
    warmed, skipped = engine.warm_from_candles(candles(41), NOW)
    assert (warmed, skipped) == (1, [])
    assert engine.stats()["store_warmed"] == {"candles": 40}  # NOW's minute left to live data
    sid = engine.symbol_id(EX, SYM)
    volume: Any = engine.detectors["volume"]
    whale: Any = engine.detectors["whale"]
    assert volume.roll.state[sid, R_N] == 39  # the 40th bucket runs until a live trade
    assert volume.state[sid, V_VOL] == 2.0
    assert whale.roll.state[sid, R_N] == 0
    # the gate: one live row at NOW passes volume's warm-up (credited), not whale's
    cols = engine._trade_cols([Trade(exchange=EX, symbol=SYM, ts=NOW, ts_recv=NOW,
                                     price=100.0, amount=1.0, side="buy")])  # fmt: skip
    assert engine.gate.passed(volume, Source.TRADES, cols, 0)
    assert not engine.gate.passed(whale, Source.TRADES, cols, 0)


def test_venue_history_after_candles_reaches_whale_not_the_candle_buckets() -> None:
    hub = Hub()
    engine = DetectorEngine(hub=hub, clock=ManualClock(NOW), config=AnomalyDetectionConfig())
    engine.warm_from_candles(candles(41), NOW)
    sid = engine.symbol_id(EX, SYM)
    volume: Any = engine.detectors["volume"]
    whale: Any = engine.detectors["whale"]
    inside = NOW - 120.0  # a bucket the candles hold
    old = Trade(exchange=EX, symbol=SYM, ts=inside, ts_recv=NOW, price=100.0, amount=50.0,
                side="buy")  # fmt: skip
    hub.publish(FlaggedTrade(exchange=EX, symbol=SYM, ts=inside, ts_recv=NOW, trade=old,
                             flag="historical"))  # fmt: skip
    engine.flush()
    assert volume.state[sid, V_VOL] == 2.0  # not added to the candles' last bucket
    assert volume.roll.state[sid, R_N] == 39
    assert engine.history.warmed == 1  # the whale window took it (its running order)
    assert whale.state[sid, 4] == 5000.0  # W_AGG: the running order's notional


def test_a_bucket_of_no_whole_minutes_is_left_out() -> None:
    cfg = AnomalyDetectionConfig(bucket_seconds=30)
    engine = DetectorEngine(hub=Hub(), clock=ManualClock(NOW), config=cfg)
    assert engine.warm_from_candles(candles(41), NOW) == (0, [f"{EX}:{SYM}"])
    assert engine.stats()["store_warmed"] == {}
