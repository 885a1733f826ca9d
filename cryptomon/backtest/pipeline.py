"""The live trading pipeline as a backtest builds it: one hub, a ManualClock, the market state,
the detectors (``anomaly_detection``), the signal generator, the order engine (risk checks,
protection) with the paper broker and an in-memory journal, and the :class:`Ledger` that
turns fills into trades. The same classes the daemon's ``build_app`` composes.

:meth:`Pipeline.settle` runs the event loop until the engine is idle: no new trading event
(signal, order intent, fill) during a round of yields and no extra task (an emulated exit
runs as a task of its own), or nothing left for the loop to run. Nothing in the pipeline
waits on real I/O, so the number of loop turns, and therefore every order, is the same on
every run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from typing import Any

from cryptomon.backtest.ledger import Ledger
from cryptomon.clock import ManualClock
from cryptomon.config import Settings
from cryptomon.events import Anomaly, Trade
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.futures import terms_lookup
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.runtime import TradingRuntime
from cryptomon.trading.signals import SignalGenerator

MAX_SETTLE_ROUNDS = 50
YIELDS_PER_ROUND = 4


def _no_spec(exchange: str, symbol: str) -> None:
    return None


class Pipeline:
    """The components of one backtest run (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        start: float,
        inputs: MarketInputs | None = None,
        candles: bool = False,
    ) -> None:
        self.settings = settings
        # candles: the quotes are the runner's own, not market data (no book detectors), and
        # the detectors read the candle trades on a hub of their own, a batch at a time
        # (:meth:`detect`): what they find does not depend on trading, only on the data
        self.candles = candles
        self.clock = ManualClock(start)
        self.hub = Hub()
        self.detect_hub = Hub() if candles else self.hub
        # candles: the detectors' clock reads the close of the candle a batch ends with
        self.detect_clock = ManualClock(start) if candles else self.clock
        self._found: list[Anomaly] = []
        if candles:
            self.detect_hub.subscribe(Anomaly, self._found.append, name="backtest.detect")
        # the instrument specs the daemon would use (a recording's own), so units, contract
        # sizing and risk match the live path; without them (candles, trade files): spot
        # arithmetic with the tick and lot of trading.paper or inferred from the data
        self.inputs = inputs
        registry = inputs.registry if inputs is not None else None
        specs = registry.get if registry is not None else _no_spec
        self.market = MarketState(hub=self.hub, instruments=registry)
        self.ledger = Ledger(specs=specs, quote=settings.trading.paper.quote_currency)
        self.ledger.follow(self.hub)
        cfg = settings.trading
        self.detectors = self._detectors()
        runtime = TradingRuntime(config=cfg, hub=self.hub, clock=self.clock)
        self.signals = SignalGenerator(
            config=cfg, hub=self.hub, clock=self.clock, market=self.market, runtime=runtime
        )
        self.broker = PaperBroker(
            config=cfg.paper,
            market=self.market,
            hub=self.hub,
            clock=self.clock,
            allow_short=cfg.allow_short,
            terms=terms_lookup(cfg, specs),
        )
        self.engine = TradingEngine(
            config=cfg,
            hub=self.hub,
            clock=self.clock,
            broker=self.broker,
            market=self.market,
            journal=MemoryJournal(hub=self.hub),
            runtime=runtime,
            specs=specs,
        )
        self._base_tasks = 0
        self._ready: Sized | None = None  # the loop's ready queue (see settle)
        self._seen = 0

    def _detectors(self) -> Any:
        if not self.settings.anomaly_detection.enabled:
            return None
        return self.detector_engine(self.detect_hub, self.detect_clock)

    def detector_engine(self, hub: Hub, clock: ManualClock) -> Any:
        """The live DetectorEngine on ``hub``; on candles without the book detectors, which
        read real books only, never the runner's quotes."""
        from cryptomon.detect.engine import DetectorEngine
        from cryptomon.detect.registry import DetectorRegistry, Source, default_registry

        registry = default_registry()
        if self.candles:
            registry = DetectorRegistry()
            for entry in default_registry():
                if entry.source not in (Source.BOOKS, Source.QUOTES, Source.MIDS):
                    registry.register(entry.name, entry.source, entry.factory)
        return DetectorEngine(
            hub=hub, clock=clock, config=self.settings.anomaly_detection, registry=registry
        )

    def _components(self) -> list[Any]:
        return [c for c in (self.detectors, self.signals) if c is not None]

    async def start(self) -> None:
        await self.hub.start()
        for comp in self._components():
            await comp.start()
        await self.engine.start()
        self._base_tasks = len(asyncio.all_tasks())
        self._ready = _ready(asyncio.get_running_loop())  # see settle

    async def stop(self) -> None:
        await self.engine.stop()
        for comp in reversed(self._components()):
            await comp.stop()
        await self.hub.stop()
        self.ledger.close()

    def flush(self) -> None:
        """Run the detectors' pending micro-batch now (its findings reach the signals)."""
        if self.detectors is not None:
            self.detectors.flush()

    def detect(self, trades: list[Trade], now: float) -> list[Anomaly]:
        """Candle mode: the detectors over ``trades`` (in time order) as one batch run at
        ``now``; what they found, in order (each carries its trade's ``ts``). Not published."""
        if self.detectors is None:
            return []
        self.detect_clock.set(now)
        publish = self.detect_hub.publish
        for trade in trades:
            publish(trade)
        self.detectors.flush()
        found = self._found[:]
        self._found.clear()
        return found

    def take_found(self) -> list[Anomaly]:
        """Candle mode: what the detectors found since the last call, in order."""
        found = self._found[:]
        self._found.clear()
        return found

    @property
    def equity(self) -> float:
        return float(self.engine.portfolio.equity)

    @property
    def exposed(self) -> bool:
        """A position is open (``open_positions()`` not empty, without building the list)."""
        return any(p.amount != 0 for p in self.engine.portfolio.positions.values())

    def absorb(self) -> None:
        """The trading events so far need no settling: only the ledger saw them (the fast
        candle path's signals that the engine would drop)."""
        self._seen = self.ledger.activity

    @property
    def settled(self) -> bool:
        """:meth:`settle` would return now without a yield: no trading event since the last
        settling and no emulated exit on its way (conservative: an exit anywhere counts)."""
        if self.ledger.activity != self._seen:
            return False
        return not any(p.exiting for p in self.engine.protection.protections.values())

    async def settle(self) -> None:
        """Run the loop until no trading event happened and no extra task is left (bounded).

        A yield after which the loop has nothing else to run ends it: every further yield
        would run this task alone (nothing here waits on I/O or on the loop's timers), so
        the rounds left would change nothing but the loop's turn count."""
        protections = self.engine.protection.protections
        ready = self._ready
        for _ in range(MAX_SETTLE_ROUNDS):
            # an emulated exit is a task of its own: only a triggered protection spawns one;
            # so is the engine's adoption of the paper venue's liquidation or settlement
            engine = self.engine
            busy = engine.forced_pending > 0 or (
                any(p.exiting for p in protections.values())
                and len(asyncio.all_tasks()) > self._base_tasks
            )
            if self.ledger.activity == self._seen and not busy:
                return
            self._seen = self.ledger.activity
            for _ in range(YIELDS_PER_ROUND):
                await asyncio.sleep(0)
                if ready is not None and not ready:  # the loop is idle
                    self._seen = self.ledger.activity
                    return


def _ready(loop: asyncio.AbstractEventLoop) -> Sized | None:
    """The callbacks ``loop`` runs in its next turn (asyncio's own loops keep them in
    ``_ready``); None when the loop does not say (another implementation)."""
    ready = getattr(loop, "_ready", None)
    return ready if isinstance(ready, Sized) else None
