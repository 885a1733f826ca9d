"""``SignalGenerator``: anomaly rules and the indicator strategy, published as ``Signal``.

Every signal carries its grade (``trading.grades``) and is published whatever its strength:
the store keeps it and the order engine trades it only when its strength reaches
``min_signal_strength`` and its grade is not ``ignore``. The signal's ``reason`` says what
caused it and ``anomaly_id`` links a rule signal to its anomaly.

The indicator strategy reads closed candles of ``indicators.interval`` and updates its
indicators incrementally (:mod:`.indicators`); it scores with ``indicators.scoring``
(:mod:`.scoring`) once ``min_candles`` closes (at most ``max_candles``) were seen, and a side
fires at most once per ``cooldown_s`` (unless with a better grade than the last).

The settings are read from the :class:`~cryptomon.trading.runtime.TradingRuntime` the
generator shares with the order engine, when each event arrives: a runtime change of
``min_signal_strength`` (the API's ``update_limits``) applies to the next signal.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import structlog

from cryptomon.clock import Clock
from cryptomon.events import Anomaly, Candle, Event, Side, Signal
from cryptomon.hub import Hub
from cryptomon.ids import signal_id
from cryptomon.kinds import SignalGrade
from cryptomon.log import info_enabled
from cryptomon.market.state import MarketState
from cryptomon.trading.runtime import TradingRuntime
from cryptomon.trading.signals.grades import GRADE_RANK, grade_for
from cryptomon.trading.signals.indicators import IndicatorSet
from cryptomon.trading.signals.rules import Recent, evaluate_rule
from cryptomon.trading.signals.scoring import Outcome, spec_score, votes_score

if TYPE_CHECKING:
    from cryptomon.config import TradingConfig

log = structlog.get_logger()
MarketKey = tuple[str, str]
# one closed candle's indicator signal for :meth:`SignalGenerator.indicator_count`:
# (outcome, candle end, close, the market's mid, the market's RSI reading)
IndicatorItem = tuple[Outcome, float, float, float, float]


class Publisher(Protocol):
    """Where the generator publishes its signals: its hub, or a backtest's sink."""

    def publish(self, event: Event) -> None: ...


@dataclass(frozen=True, slots=True)
class SignalExtra:
    """What an external sender may fix on its signal (a webhook)."""

    grade: SignalGrade | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    signal_id: str | None = None  # deterministic id (idempotency by the sender's alert id)
    price_given: bool = False  # the sender's price wins over the live mid


_NO_EXTRA = SignalExtra()  # frozen: one shared instance for the signals without extras
_MID_GIVEN = SignalExtra(price_given=True)  # indicator_signal's ``mid``: the caller's mid
_INDICATORS = "indicators"  # the indicator strategy's signal source


def _outcome_words(outcome: Outcome) -> str:
    """An indicator signal's reason between the close and the RSI reading."""
    return f": {outcome.label}, {outcome.detail}; RSI "


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
        self._out: Publisher = hub  # where the signals go (see publishing_to)
        self.clock = clock
        self.market = market
        self._recent: dict[MarketKey, deque[Recent]] = {}
        self._indicators: dict[MarketKey, IndicatorSet] = {}
        self._candle_end: dict[MarketKey, float] = {}  # the end of the last closed candle read
        self._last_signal: dict[tuple[str, str, str], tuple[float, int]] = {}
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

    def use_indicators(self, exchange: str, symbol: str, state: IndicatorSet) -> None:
        """Read ``state`` as this market's indicators from now on (a backtest gives a series
        computed in one pass that answers like the incremental :class:`IndicatorSet`)."""
        self._indicators[(exchange, symbol)] = state

    @contextmanager
    def publishing_to(self, hub: Publisher) -> Iterator[None]:
        """Publish the signals made inside the block to ``hub`` instead of the generator's own
        (a backtest's ledger of signals the engine would drop)."""
        own = self.publish_to(hub)
        try:
            yield
        finally:
            self.publish_to(own)

    def publish_to(self, hub: Publisher) -> Publisher:
        """Publish the signals made from now on to ``hub``; returns where they went before
        (:meth:`publishing_to` as two calls, for a caller that enters it very often)."""
        own, self._out = self._out, hub
        return own

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
        longest = self._window()  # once, not per anomaly of the ring
        recent = [a for a in ring if now - a.t <= longest]
        ring.append(Recent.of(anomaly))
        for rule in self.config.signal_rules:
            window = [a for a in recent if now - a.t <= rule.window_s]
            fired = evaluate_rule(rule, anomaly, window)
            if fired is None:
                continue
            side, strength, reason = fired
            self.publish(
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

    def _outcome(self, candle: Candle) -> Outcome | None:
        cfg = self.config.indicators
        key = (candle.exchange, candle.symbol)
        state = self._indicators.get(key)
        if state is None:
            state = self._indicators[key] = IndicatorSet(cfg)
        reading = state.update(candle.close)
        if not reading.ready:
            return None
        if cfg.scoring == "spec":
            if reading.count < min(cfg.min_candles, cfg.max_candles):
                return None
            return spec_score(reading, cfg)
        return votes_score(reading, cfg)

    def on_candle(self, candle: Candle) -> None:
        cfg = self.config.indicators
        if not cfg.enabled or not candle.closed or candle.interval != cfg.interval:
            return
        # a candle is read once: a venue's own close arriving after the feed closed the candle
        # at the next one's start (venues without a closed flag), or a closed candle sent
        # again, would count its close twice in every indicator
        key = (candle.exchange, candle.symbol)
        if candle.end <= self._candle_end.get(key, -math.inf):
            return
        self._candle_end[key] = candle.end
        if not self.trades(candle.exchange, candle.symbol):
            return
        outcome = self._outcome(candle)
        if outcome is None:
            return
        self.indicator_signal(
            candle.exchange, candle.symbol, outcome, end=candle.end, close=candle.close
        )

    def indicator_signal(
        self,
        exchange: str,
        symbol: str,
        outcome: Outcome,
        *,
        end: float,
        close: float,
        mid: float | None = None,
    ) -> Signal | None:
        """The indicator strategy's signal for ``outcome``, the scoring of the close
        ``close`` of the candle that ended at ``end`` (the market's indicators read it): the
        side's cooldown, then the graded signal published; None when the cooldown holds it.
        A backtest that scored the candle already calls it directly; ``mid``: the market's
        mid it knows (its quote not published yet) as the signal's price, instead of the
        market state's."""
        grade = grade_for(outcome.strength, self.config.grades, at_least=outcome.at_least)
        if not self._cooled((exchange, symbol, outcome.side), end, GRADE_RANK[grade]):
            return None
        reading = self._indicators[(exchange, symbol)]
        reason = f"{self._indicator_head()}{close}{_outcome_words(outcome)}{reading.rsi.value:.1f}"
        return self.publish(
            exchange,
            symbol,
            outcome.side,
            outcome.strength,
            source=_INDICATORS,
            reason=reason,
            anomaly_id=None,
            ts=end,
            price=close if mid is None else mid,
            at_least=outcome.at_least,
            extra=None if mid is None else _MID_GIVEN,
            grade=grade,
        )

    def indicator_count(
        self,
        exchange: str,
        symbol: str,
        items: Iterable[IndicatorItem],
        tally: Callable[[Sequence[tuple[str, float, SignalGrade | None]]], None] | None = None,
    ) -> int:
        """How many signals :meth:`indicator_signal` of each item would publish, in order
        (``(outcome, end, close, mid, rsi)``: the scoring of the close ``close`` of the candle
        that ended at ``end``, the market's mid then, its RSI reading), leaving the generator
        as it would (each side's cooldown), without making or publishing them: a backtest's
        signals that the engine drops have no reader but their count. With info logging on
        they are made for their log lines, as one by one would log them. ``tally``: called
        once with the side, strength and grade of each signal counted, in order."""
        passed = self._cooled_items(exchange, symbol, items)
        if info_enabled():
            made = list(self._batch_signals(exchange, symbol, passed))
            for sig in made:
                _log_signal(sig)
            if tally is not None:
                tally([(sig.side, sig.strength, sig.grade) for sig in made])
            return len(made)
        if tally is None:
            return sum(1 for _ in passed)
        counted = [(item[0].side, item[0].strength, grade) for item, _, grade in passed]
        tally(counted)
        return len(counted)

    def _cooled_items(
        self, exchange: str, symbol: str, items: Iterable[IndicatorItem]
    ) -> Iterator[tuple[IndicatorItem, str, SignalGrade]]:
        """The items of :meth:`indicator_count` that pass their side's cooldown (recorded as
        they pass), in order, with their outcome's reason words and grade. Those are made
        once per distinct outcome (a backtest's spec outcomes are shared instances)."""
        grades = self.config.grades
        cooled = self._cooled
        made: dict[int, tuple[Outcome, str, SignalGrade, int]] = {}  # id(outcome) -> ...
        for item in items:
            outcome = item[0]
            known = made.get(id(outcome))
            if known is None:  # the outcome is kept in ``known``: its id stays its own
                grade = grade_for(outcome.strength, grades, at_least=outcome.at_least)
                words = _outcome_words(outcome)
                known = made[id(outcome)] = (outcome, words, grade, GRADE_RANK[grade])
            if cooled((exchange, symbol, outcome.side), item[1], known[3]):
                yield item, known[1], known[2]

    def _batch_signals(
        self,
        exchange: str,
        symbol: str,
        passed: Iterable[tuple[IndicatorItem, str, SignalGrade]],
    ) -> Iterator[Signal]:
        """The signals of :meth:`indicator_count`'s items that passed their cooldown."""
        head = self._indicator_head()
        for (outcome, end, close, mid, rsi), words, grade in passed:
            side = outcome.side
            yield Signal(
                exchange=exchange,
                symbol=symbol,
                ts=end,
                ts_recv=end,
                side=side,
                strength=outcome.strength,
                source=_INDICATORS,
                reason=f"{head}{close}{words}{rsi:.1f}",
                price=mid,
                anomaly_id=None,
                grade=grade,
                stop_loss=None,
                take_profit=None,
                id=signal_id(exchange, symbol, source=_INDICATORS, side=side, ts=end, anomaly=None),
            )

    def _cooled(self, key: tuple[str, str, str], end: float, rank: int) -> bool:
        """Whether an indicator signal of ``key`` (market and side) at ``end`` with grade
        ``rank`` passes the side's cooldown (recorded as the side's last signal when it
        does): a better grade than the last one of the cooldown still passes."""
        last = self._last_signal.get(key)
        cooldown = self.config.indicators.cooldown_s
        if last is not None and end - last[0] < cooldown and rank <= last[1]:
            return False
        self._last_signal[key] = (end, rank)
        return True

    def _indicator_head(self) -> str:
        """The start of an indicator signal's reason, up to the candle's close."""
        cfg = self.config.indicators
        return f"indicators ({cfg.scoring}) on {cfg.interval} close "

    def publish(
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
        at_least: SignalGrade | None = None,
        extra: SignalExtra | None = None,
        grade: SignalGrade | None = None,
    ) -> Signal:
        """Grade and publish one signal (``extra``: a sender's grade, bracket and id;
        ``grade``: the grade of ``strength`` and ``at_least`` when the caller made it)."""
        extra = extra or _NO_EXTRA
        grade = extra.grade or grade or grade_for(strength, self.config.grades, at_least=at_least)
        sig = Signal(
            exchange=exchange,
            symbol=symbol,
            ts=ts,
            ts_recv=self.clock.time(),
            side=side,
            strength=strength,
            source=source,
            reason=reason,
            price=price if extra.price_given else self._price(exchange, symbol, price),
            anomaly_id=anomaly_id,
            grade=grade,
            stop_loss=extra.stop_loss,
            take_profit=extra.take_profit,
            # deterministic: a brain that reprocesses after a crash publishes the same id
            id=extra.signal_id
            or signal_id(exchange, symbol, source=source, side=side, ts=ts, anomaly=anomaly_id),
        )
        if info_enabled():  # a filtered line still costs a logger bind per signal
            _log_signal(sig)
        self._out.publish(sig)
        return sig


def _log_signal(sig: Signal) -> None:
    log.info(
        "trading.signal",
        exchange=sig.exchange,
        symbol=sig.symbol,
        side=sig.side,
        strength=round(sig.strength, 3),
        grade=str(sig.grade),
        source=sig.source,
        reason=sig.reason,
    )
