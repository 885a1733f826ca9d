"""A tiny synthetic market for detector tests: trades and book tops published on a hub."""

from __future__ import annotations

import math

import numpy as np

from cryptomon.clock import ManualClock
from cryptomon.config import DEFAULT_USD_QUOTES, AnomalyDetectionConfig
from cryptomon.detect.base import Warmup, quote_of
from cryptomon.detect.engine import DetectorEngine
from cryptomon.detect.registry import DetectorRegistry, default_registry
from cryptomon.detect.whale import WhaleDetector
from cryptomon.events import Anomaly, BookTop, Trade
from cryptomon.hub import Hub

T0 = 1_700_000_000.0
FAST = {
    "bucket_seconds": 1.0,
    "lookback_window_minutes": 1.0,
    "min_samples": 10,
    "volume_threshold_multiplier": 4.0,
}


class Market:
    """Calm random market of one (exchange, symbol); knobs inject events."""

    def __init__(
        self,
        eng: DetectorEngine,
        *,
        exchange: str = "x",
        symbol: str = "BTC-USDT",
        price: float = 100.0,
        seed: int = 0,
    ) -> None:
        self.eng = eng
        self.hub = eng.hub
        self.exchange = exchange
        self.symbol = symbol
        self.price = price
        self.rng = np.random.default_rng(seed)
        self.t = T0
        self.spread_bps = 2.0
        self.imbalance = 0.0
        self.trade_rate = 20.0
        self.size = 1.0
        self.buy_prob = 0.5
        self.spec_known = True  # False: trades carry no notional (no instrument spec)

    def trade(self, amount: float, side: str = "buy", price: float | None = None) -> None:
        px = self.price if price is None else price
        notional = px * amount if self.spec_known else None
        usd = notional if quote_of(self.symbol) in DEFAULT_USD_QUOTES else None
        self.hub.publish(
            Trade(
                exchange=self.exchange,
                symbol=self.symbol,
                ts=self.t,
                ts_recv=self.t,
                price=px,
                amount=amount,
                side=side,
                notional=notional,
                notional_usd=usd,
            )
        )

    def book(self, spread_bps: float | None = None, imbalance: float | None = None) -> None:
        sp = self.spread_bps if spread_bps is None else spread_bps
        imb = self.imbalance if imbalance is None else imbalance
        half = self.price * sp / 2e4
        self.hub.publish(
            BookTop(
                exchange=self.exchange,
                symbol=self.symbol,
                ts=self.t,
                ts_recv=self.t,
                bid=self.price - half,
                bid_size=1.0,
                ask=self.price + half,
                ask_size=1.0,
                spread=2 * half,
                spread_bps=sp,
                bid_depth=1 + imb,
                ask_depth=1 - imb,
                imbalance=imb,
                levels=10,
            )
        )

    def run(self, seconds: float, dt: float = 0.1) -> None:
        """Advance ``seconds``: random walk, Poisson trades, a noisy book top every step."""
        rng = self.rng
        for _ in range(round(seconds / dt)):
            self.t += dt
            self.price *= math.exp(rng.normal(0.0, 2e-4 * math.sqrt(dt)))
            for _ in range(rng.poisson(self.trade_rate * dt)):
                side = "buy" if rng.random() < self.buy_prob else "sell"
                self.trade(self.size * rng.lognormal(0.0, 0.5), side)
            self.book(
                self.spread_bps * (1 + 0.05 * rng.normal()),
                float(np.clip(self.imbalance + 0.1 * rng.normal(), -1, 1)),
            )
        self.eng.flush()


class ImmediateWhale(WhaleDetector):
    """The whale detector without a warm-up: engine tests fire it with one large trade."""

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """No warm-up."""
        return Warmup(samples=0, seconds=0.0)


def immediate_registry() -> DetectorRegistry:
    """The built-in detectors with :class:`ImmediateWhale` in place of the whale detector."""
    registry = DetectorRegistry()
    for entry in default_registry():
        factory = ImmediateWhale if entry.name == "whale" else entry.factory
        registry.register(entry.name, entry.source, factory)
    return registry


def engine(
    *, immediate_whale: bool = False, **overrides: object
) -> tuple[DetectorEngine, list[Anomaly]]:
    """A DetectorEngine on a fresh hub with fast windows; the list collects its anomalies."""
    hub = Hub()
    got: list[Anomaly] = []
    hub.subscribe(Anomaly, got.append)
    values = {**FAST, **overrides}
    cfg = AnomalyDetectionConfig.model_validate(values)
    registry = immediate_registry() if immediate_whale else None
    return DetectorEngine(hub=hub, clock=ManualClock(T0), config=cfg, registry=registry), got


def kinds(got: list[Anomaly]) -> list[str]:
    return [a.kind for a in got]
