"""The detector registry: one registration line adds a detector; layouts by name."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import ClassVar

import numpy as np
import pytest

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import book_nb
from cryptomon.detect.base import SymbolInfo, TradeCols
from cryptomon.detect.detectors_nb import FINDING, LEVEL_STEPS, Finding, level_nb
from cryptomon.detect.engine import KINDS, DetectorEngine
from cryptomon.detect.registry import DetectorRegistry, Source, default_registry
from cryptomon.events import Anomaly, Trade
from cryptomon.hub import Hub
from cryptomon.kinds import AnomalyKind
from tests import stubs
from tests.unit.detect.market import T0
from tests.util import wait_until


class ExtraKind(StrEnum):
    ROUND_LOT = "round_lot"


class RoundLotDetector:
    """A detector written in the test: trades of a whole number of thousands (plain Python)."""

    kinds: ClassVar[dict[int, str]] = {0: ExtraKind.ROUND_LOT}
    z_kinds: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self.configured: list[str] = []

    def configure(self, info: SymbolInfo) -> None:
        self.configured.append(f"{info.exchange}:{info.symbol}")

    def process(self, cols: TradeCols, fires: np.ndarray, m: int) -> int:
        for row, amount in enumerate(cols.amt.tolist()):
            if amount >= 1000.0 and amount % 1000.0 == 0.0:
                fires[m] = Finding(
                    row=row,
                    code=0,
                    value=amount,
                    threshold=1000.0,
                    z=math.nan,
                    mean=math.nan,
                    std=math.nan,
                    samples=0.0,
                    level=1,
                    aux=0.0,
                )
                m += 1
        return m

    def reasons(self, kind: str, finding: Finding, quote: str) -> list[str]:
        return [f"Round lot: {finding.value:.0f}"]


def trade(t: float, amount: float) -> Trade:
    return stubs.trade(t, amount=amount, exchange="x", trade_id=None)


@pytest.mark.asyncio
async def test_a_registered_detector_publishes_through_the_real_engine_and_hub() -> None:
    """One register() line: the engine configures, runs and reports the new detector."""
    registry = default_registry()
    registry.register("round_lot", Source.TRADES, RoundLotDetector)
    hub = Hub()
    got: list[Anomaly] = []
    hub.subscribe(Anomaly, got.append)
    eng = DetectorEngine(
        hub=hub, clock=ManualClock(T0), config=AnomalyDetectionConfig(), registry=registry
    )
    await eng.start()
    hub.publish(trade(T0 + 1, 3.0))
    hub.publish(trade(T0 + 2, 5000.0))
    await wait_until(lambda: bool(got), message="the round-lot anomaly")
    await eng.stop()
    (anomaly,) = got
    assert (anomaly.kind, anomaly.symbol, anomaly.value) == ("round_lot", "BTC-USDT", 5000.0)
    assert anomaly.severity.value == "medium"
    assert "Round lot: 5000" in anomaly.reasons
    assert eng.detectors["round_lot"].configured == ["x:BTC-USDT"]  # type: ignore[attr-defined]
    by_kind = eng.stats()["anomalies"]["by_kind"]
    assert by_kind["round_lot"] == 1
    assert set(by_kind) == {*KINDS, "round_lot"}


def test_a_registry_of_one_detector_runs_only_that_one() -> None:
    """The engine's detector set is the registry: nothing else runs."""
    registry = DetectorRegistry()
    registry.register("round_lot", Source.TRADES, RoundLotDetector)
    hub = Hub()
    got: list[Anomaly] = []
    hub.subscribe(Anomaly, got.append)
    eng = DetectorEngine(
        hub=hub,
        clock=ManualClock(T0),
        config=AnomalyDetectionConfig(whale_notional={"USDT": 1.0}),
        registry=registry,
    )
    hub.publish(trade(T0 + 1, 2000.0))
    eng.flush()
    assert [a.kind for a in got] == ["round_lot"]
    assert eng.kinds == ("round_lot",)


def test_the_default_registry_reports_every_kind_exactly_once() -> None:
    """Every AnomalyKind comes from exactly one built-in detector."""
    eng = DetectorEngine(hub=Hub(), clock=ManualClock(T0), config=AnomalyDetectionConfig())
    owners = [kind for det in eng.detectors.values() for kind in det.kinds.values()]
    assert sorted(owners) == sorted(AnomalyKind)
    assert eng.kinds == KINDS == tuple(AnomalyKind)


def test_registering_twice_or_with_an_unknown_source_is_a_clear_error() -> None:
    """A duplicate name or a source that is not a Source names what was wrong."""
    registry = default_registry()
    with pytest.raises(ValueError, match="'whale' is already registered"):
        registry.register("whale", Source.TRADES, RoundLotDetector)
    with pytest.raises(ValueError, match="source 'ticks', expected one of trades, books"):
        registry.register("ticks", "ticks", RoundLotDetector)  # type: ignore[arg-type]


def test_findings_and_parameters_are_named_records() -> None:
    """FINDING is built from Finding; book parameters are set by name from the config."""
    assert FINDING.names == Finding._fields
    cfg = AnomalyDetectionConfig()
    eng = DetectorEngine(hub=Hub(), clock=ManualClock(T0), config=cfg)
    sid = eng.symbol_id("x", "BTC-USDT")
    params = eng.detectors["book"].params[sid]  # type: ignore[attr-defined]
    assert params.dtype == book_nb.BOOK_PARAMS
    assert params["imbalance"] == cfg.book_imbalance_threshold
    assert params["imbalance_min_s"] == cfg.book_imbalance_min_s
    assert params["spread_z"] == cfg.spread_z_threshold
    assert params["spread_ratio"] == cfg.spread_min_ratio
    assert params["halflife_s"] == cfg.spread_halflife_s
    assert params["min_samples"] == cfg.min_samples
    assert params["smoothing_s"] == cfg.book_imbalance_smoothing_s


def test_severity_levels_step_at_level_steps() -> None:
    """level_nb changes level exactly at each of LEVEL_STEPS; NaN counts as critical."""
    for lvl, step in enumerate(LEVEL_STEPS):
        assert level_nb(math.nextafter(step, 0.0)) == lvl
        assert level_nb(step) == lvl + 1
    assert level_nb(1.0) == 0
    assert level_nb(math.nan) == len(LEVEL_STEPS)
