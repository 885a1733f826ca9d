"""Signals: anomaly rules and the indicator strategy, published on the hub as ``Signal``.

Anomaly rules (``trading.signal_rules``) map an ``Anomaly`` to a side:

- ``momentum`` trades with the price move (up -> buy, down -> sell);
- ``reversion`` trades against it (a spike up -> sell, a drop -> buy), usually with
  ``max_price_change_pct`` to skip crashes.

Conditions read the anomaly itself and the anomalies of the same market seen within
``window_s``: the price change comes from the newest one carrying ``price_change_pct``, the
volume z-score from the strongest ``volume`` anomaly. The first matching rule
fires; the strength is the rule's ``strength`` or the anomaly's confidence. The signal's
``reason`` says what caused it and ``anomaly_id`` links it.

The indicator strategy votes on closed candles of ``indicators.interval``: it buys pullbacks
in an uptrend and sells rallies in a downtrend. Trend votes: SMA(20) vs SMA(50), EMA(12) vs
EMA(26), the MACD(12,26,9) line above/below zero. Oscillator votes (contrarian): RSI(14)
below oversold (buy) / above overbought (sell), the close below the lower (buy) / above the
upper (sell) Bollinger(20, 2) band. Each vote is +1, -1 or 0. With T the mean trend vote and
O the mean oscillator vote, the side is the sign of T, the strength ``(|T| + |O|) / 2`` in
[0, 1], and nothing fires when the oscillators point against the trend (an overextended move)
or T is 0. Uptrend + close under the lower band scores 0.75, with RSI oversold too 1.0.
Signals below ``min_signal_strength`` are not published.

The settings are read from the :class:`~cryptomon.trading.runtime.TradingRuntime` the
generator shares with the order engine, when each event arrives: a runtime change of
``min_signal_strength`` (the API's ``update_limits``) applies to the next candle.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import structlog

from cryptomon.clock import Clock
from cryptomon.events import Anomaly, Candle, Severity, Side, Signal
from cryptomon.hub import Hub
from cryptomon.ids import signal_id
from cryptomon.market.state import MarketState
from cryptomon.trading.indicators_nb import bollinger_nb, ema_nb, macd_nb, rsi_nb, sma_nb
from cryptomon.trading.runtime import TradingRuntime

if TYPE_CHECKING:
    from cryptomon.config import IndicatorStrategyConfig, SignalRuleConfig, TradingConfig

log = structlog.get_logger()
MarketKey = tuple[str, str]


def evaluate_rule(
    rule: SignalRuleConfig, anomaly: Anomaly, recent: list[Anomaly]
) -> tuple[Side, float, str] | None:
    """(side, strength, reason) when ``rule`` fires on ``anomaly`` given ``recent`` ones."""
    if rule.kinds and anomaly.kind not in rule.kinds:
        return None
    if anomaly.severity.rank < Severity(rule.min_severity).rank:
        return None
    pool = [anomaly, *[a for a in reversed(recent) if a.id != anomaly.id]]
    change = next((a.price_change_pct for a in pool if a.price_change_pct is not None), None)
    if change is None or change == 0:
        return None
    if abs(change) < rule.min_price_change_pct:
        return None
    if rule.max_price_change_pct is not None and abs(change) > rule.max_price_change_pct:
        return None
    z_scores = [a.z_score for a in pool if a.z_score is not None and a.kind == "volume"]
    volume_z = max(z_scores) if z_scores else None
    if rule.min_volume_z is not None and (volume_z is None or volume_z < rule.min_volume_z):
        return None
    up = change > 0
    side: Side = (
        ("buy" if up else "sell") if rule.style == "momentum" else ("sell" if up else "buy")
    )
    if side not in rule.sides:
        return None
    strength = rule.strength if rule.strength is not None else anomaly.confidence
    strength = min(1.0, max(0.0, float(strength)))
    volume_text = f", volume z {volume_z:.2f}" if volume_z is not None else ""
    reason = f"{rule.name} ({rule.style}): {anomaly.kind} anomaly, price change {change:+.2f}%"
    return side, strength, reason + volume_text


def indicator_votes(closes: np.ndarray, cfg: IndicatorStrategyConfig) -> dict[str, float] | None:
    """The five votes on the newest close, or None without enough history."""
    need = 1 + max(
        cfg.sma_slow,
        cfg.macd_slow + cfg.macd_signal,
        cfg.bb_period,
        cfg.rsi_period + 1,
        cfg.ema_slow,
    )
    if closes.shape[0] < need:
        return None
    close = closes[-1]
    rsi = rsi_nb(closes, cfg.rsi_period)[-1]
    line, _, _ = macd_nb(closes, cfg.macd_fast, cfg.macd_slow, cfg.macd_signal)
    _, upper, lower = bollinger_nb(closes, cfg.bb_period, cfg.bb_std)
    sma_fast = sma_nb(closes, cfg.sma_fast)[-1]
    sma_slow = sma_nb(closes, cfg.sma_slow)[-1]
    ema_fast = ema_nb(closes, cfg.ema_fast)[-1]
    ema_slow = ema_nb(closes, cfg.ema_slow)[-1]
    return {
        "rsi": 1.0 if rsi <= cfg.rsi_oversold else (-1.0 if rsi >= cfg.rsi_overbought else 0.0),
        "macd": float(np.sign(line[-1])),
        "bollinger": 1.0 if close < lower[-1] else (-1.0 if close > upper[-1] else 0.0),
        "sma": float(np.sign(sma_fast - sma_slow)),
        "ema": float(np.sign(ema_fast - ema_slow)),
        "_rsi": float(rsi),
    }


TREND_VOTES = ("sma", "ema", "macd")
OSCILLATOR_VOTES = ("rsi", "bollinger")


def score(votes: dict[str, float]) -> tuple[Side | None, float]:
    """Votes -> (side, strength in [0, 1]); see the module docstring."""
    trend = sum(votes[k] for k in TREND_VOTES) / len(TREND_VOTES)
    oscillators = sum(votes[k] for k in OSCILLATOR_VOTES) / len(OSCILLATOR_VOTES)
    if trend == 0 or trend * oscillators < 0:
        return None, 0.0
    return ("buy" if trend > 0 else "sell"), min(1.0, (abs(trend) + abs(oscillators)) / 2)


class SignalGenerator:
    """Hub component: Anomaly and Candle in, Signal out (for the traded markets only)."""

    name = "trading-signals"

    def __init__(
        self,
        *,
        config: TradingConfig,
        hub: Hub,
        clock: Clock,
        market: MarketState | None = None,
        runtime: TradingRuntime | None = None,
    ) -> None:
        """``runtime``: the settings shared with the engine (default: one of ``config``)."""
        self.runtime = runtime or TradingRuntime(config=config, hub=hub, clock=clock)
        self.hub = hub
        self.clock = clock
        self.market = market
        self._recent: dict[MarketKey, deque[Anomaly]] = {}
        self._closes: dict[MarketKey, deque[float]] = {}
        self._last_signal: dict[tuple[str, str, str], float] = {}
        self._subs = [
            hub.subscribe(Anomaly, self.on_anomaly, name="trading-signals.anomaly"),
            hub.subscribe(Candle, self.on_candle, name="trading-signals.candle"),
        ]

    @property
    def config(self) -> TradingConfig:
        """The current trading settings (the shared runtime's)."""
        return self.runtime.config

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()

    def trades(self, exchange: str, symbol: str) -> bool:
        cfg = self.config
        return (cfg.exchange is None or cfg.exchange == exchange) and (
            not cfg.symbols or symbol in cfg.symbols
        )

    def _price(self, exchange: str, symbol: str, fallback: float | None) -> float | None:
        if self.market is not None:
            mid = self.market.mid(exchange, symbol)
            if mid is not None:
                return mid
        return fallback

    def on_anomaly(self, anomaly: Anomaly) -> None:
        key = (anomaly.exchange, anomaly.symbol)
        if not self.trades(*key):
            return
        ring = self._recent.setdefault(key, deque(maxlen=64))
        now = anomaly.ts_detected or anomaly.ts
        recent = [a for a in ring if now - (a.ts_detected or a.ts) <= self._window()]
        ring.append(anomaly)
        for rule in self.config.signal_rules:
            window = [a for a in recent if now - (a.ts_detected or a.ts) <= rule.window_s]
            fired = evaluate_rule(rule, anomaly, window)
            if fired is None:
                continue
            side, strength, reason = fired
            self._publish(
                anomaly.exchange,
                anomaly.symbol,
                side,
                strength,
                source=f"rule:{rule.name}",
                reason=reason,
                anomaly_id=anomaly.id,
                ts=anomaly.ts,
            )
            return

    def _window(self) -> float:
        return max((r.window_s for r in self.config.signal_rules), default=0.0)

    def on_candle(self, candle: Candle) -> None:
        cfg = self.config.indicators
        if not cfg.enabled or not candle.closed or candle.interval != cfg.interval:
            return
        key = (candle.exchange, candle.symbol)
        if not self.trades(*key):
            return
        ring = self._closes.setdefault(key, deque(maxlen=cfg.max_candles))
        ring.append(candle.close)
        votes = indicator_votes(np.fromiter(ring, dtype=np.float64, count=len(ring)), cfg)
        if votes is None:
            return
        side, strength = score(votes)
        if side is None or strength < self.config.min_signal_strength:
            return
        last = self._last_signal.get((*key, side))
        if last is not None and candle.end - last < cfg.cooldown_s:
            return
        self._last_signal[(*key, side)] = candle.end
        shown = ", ".join(f"{k} {v:+.0f}" for k, v in votes.items() if not k.startswith("_"))
        reason = (
            f"indicators on {cfg.interval} close {candle.close}: {shown}; RSI {votes['_rsi']:.1f}"
        )
        self._publish(
            candle.exchange,
            candle.symbol,
            side,
            strength,
            source="indicators",
            reason=reason,
            anomaly_id=None,
            ts=candle.end,
            price=candle.close,
        )

    def _publish(
        self,
        exchange: str,
        symbol: str,
        side: Side,
        strength: float,
        *,
        source: str,
        reason: str,
        anomaly_id: str | None,
        ts: float,
        price: float | None = None,
    ) -> None:
        sig = Signal(
            exchange=exchange,
            symbol=symbol,
            ts=ts,
            ts_recv=self.clock.time(),
            side=side,
            strength=strength,
            source=source,
            reason=reason,
            price=self._price(exchange, symbol, price),
            anomaly_id=anomaly_id,
            id=signal_id(exchange, symbol, source=source, side=side, ts=ts, anomaly=anomaly_id),
        )
        log.info(
            "trading.signal",
            exchange=exchange,
            symbol=symbol,
            side=side,
            strength=round(strength, 3),
            source=source,
            reason=reason,
        )
        self.hub.publish(sig)
