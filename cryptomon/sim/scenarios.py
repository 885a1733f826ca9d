"""Scenarios: labelled events injected into the simulator at known times.

A :class:`Scenario` is a list of :class:`Injection` (what, which symbol, seconds after the
scenario start, how long, how strong). :meth:`Scenario.attach` hooks it into a
:class:`~cryptomon.sim.exchange.SimExchange`; from then on each injection is applied at the
first simulator step at or after its time, and :attr:`Scenario.labels` holds one
:class:`Label` per injection with absolute (clock) ``start``/``end`` times -- the ground truth
for tests and the detection scorecard.

Label kinds (= the detector ``Anomaly.kind`` they should trigger):
``volume`` (volume burst), ``price_change`` (jump or crash), ``whale`` (one huge trade),
``book_imbalance`` (bid side inflated), ``spread`` (spread blow-out); and feed faults
``stall``, ``disconnect``, ``gap``, ``malformed``.

Running at full speed: build the simulator on a :class:`~cryptomon.clock.ManualClock`,
``scenario.attach(sim)``, then ``await sim.advance(scenario.duration)``. Built-ins:
:data:`SCENARIOS` (name -> factory ``(symbol, *, at, exchange) -> Scenario``) and
:func:`standard` (every market kind in turn after a warm-up, then every feed fault).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptomon.kinds import AnomalyKind
from cryptomon.sim.market import Side

if TYPE_CHECKING:
    from cryptomon.sim.exchange import SimExchange

# market events, labelled with the anomaly kind they should trigger
MARKET_KINDS = (
    AnomalyKind.VOLUME,
    AnomalyKind.PRICE_CHANGE,
    AnomalyKind.WHALE,
    AnomalyKind.BOOK_IMBALANCE,
    AnomalyKind.SPREAD,
)
FAULT_KINDS = ("stall", "disconnect", "gap", "malformed")
KINDS = MARKET_KINDS + FAULT_KINDS


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth of one injected event: ``kind`` on ``exchange:symbol`` in [start, end]."""

    kind: str
    exchange: str
    symbol: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Injection:
    """One event: ``kind`` on ``symbol`` at ``at`` seconds after the scenario start.

    ``magnitude`` by kind: volume = trade-rate multiple (10); price_change = percent move
    (+8 / -8); whale = multiple of the median trade size (150; negative = a sell), filled in
    one print against an iceberg at the best level; book_imbalance = bid-size
    multiple (8); spread = multiple of the normal spread (60); unused by the faults.
    """

    kind: str
    symbol: str
    at: float
    duration: float = 5.0
    magnitude: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"injection kind {self.kind!r}: expected one of {', '.join(KINDS)}")


_DEFAULT_MAGNITUDE: dict[str, float] = {
    AnomalyKind.VOLUME: 10.0,
    AnomalyKind.PRICE_CHANGE: 8.0,
    AnomalyKind.WHALE: 150.0,
    AnomalyKind.BOOK_IMBALANCE: 8.0,
    AnomalyKind.SPREAD: 60.0,
}


class Scenario:
    """Injections applied to a simulator at their times; labels for the ground truth."""

    def __init__(
        self, name: str, injections: list[Injection], *, exchange: str = "simulator"
    ) -> None:
        self.name = name
        self.exchange = exchange
        self.injections = sorted(injections, key=lambda i: i.at)
        self.start: float | None = None
        self.labels: tuple[Label, ...] = ()
        self.applied = 0
        self._pending: list[Injection] = []
        self._endings: list[tuple[float, Callable[[SimExchange], None]]] = []

    @property
    def duration(self) -> float:
        """Seconds from the start until the last injection has ended."""
        return max((i.at + i.duration for i in self.injections), default=0.0)

    def attach(self, sim: SimExchange, start: float | None = None) -> Scenario:
        """Run on ``sim`` from clock time ``start`` (default: now); fills :attr:`labels`."""
        self.start = sim.clock.time() if start is None else start
        self._pending = list(self.injections)
        self.labels = tuple(
            Label(
                i.kind, self.exchange, i.symbol, self.start + i.at, self.start + i.at + i.duration
            )
            for i in self.injections
        )
        sim.add_step_hook(self._on_step)
        return self

    def finished(self, now: float) -> bool:
        return self.start is not None and now >= self.start + self.duration and not self._pending

    def _on_step(self, sim: SimExchange, now: float) -> Awaitable[None] | None:
        assert self.start is not None
        for end, undo in [e for e in self._endings if e[0] <= now]:
            undo(sim)
            self._endings.remove((end, undo))
        waits: list[Awaitable[None]] = []
        while self._pending and self.start + self._pending[0].at <= now:
            inj = self._pending.pop(0)
            self.applied += 1
            result = self._apply(sim, inj, now)
            if result is not None:
                waits.append(result)
        if waits:
            return _gather(waits)
        return None

    def _apply(self, sim: SimExchange, inj: Injection, now: float) -> Awaitable[None] | None:
        m = sim.market.market(inj.symbol)
        mag = inj.magnitude or _DEFAULT_MAGNITUDE.get(inj.kind, 0.0)
        end = now + inj.duration
        if inj.kind == AnomalyKind.VOLUME:
            m.volume_mult = mag
            self._endings.append((end, lambda s: setattr(m, "volume_mult", 1.0)))
        elif inj.kind == AnomalyKind.PRICE_CHANGE:
            m.jump(mag)
        elif inj.kind == AnomalyKind.WHALE:
            # one taker order against an iceberg at the best level: a single large print
            side: Side = "buy" if mag > 0 else "sell"
            amount = abs(mag) * m.spec.trade_size
            m.add_liquidity("ask" if side == "buy" else "bid", amount * 1.05)
            sim.apply_trade(inj.symbol, side, amount)
        elif inj.kind == AnomalyKind.BOOK_IMBALANCE:
            m.bid_size_mult = mag
            m.rescale_side("bid", mag)

            def undo_imbalance(s: SimExchange) -> None:
                m.bid_size_mult = 1.0
                m.rescale_side("bid", 1 / mag)

            self._endings.append((end, undo_imbalance))
        elif inj.kind == AnomalyKind.SPREAD:
            m.spread_mult = mag
            self._endings.append((end, lambda s: setattr(m, "spread_mult", 1.0)))
        elif inj.kind == "stall":
            sim.stall(inj.duration)
        elif inj.kind == "disconnect":
            return sim.disconnect()
        elif inj.kind == "gap":
            sim.gap(inj.symbol)
        elif inj.kind == "malformed":
            return sim.malformed(inj.symbol)
        return None


async def _gather(waits: list[Awaitable[None]]) -> None:
    await asyncio.gather(*waits)


def _single(kind: str, magnitude: float = 0.0, duration: float = 5.0) -> Callable[..., Scenario]:
    def make(
        symbol: str = "BTC-USDT", *, at: float = 10.0, exchange: str = "simulator"
    ) -> Scenario:
        name = kind if magnitude >= 0 else f"{kind}_down"
        return Scenario(name, [Injection(kind, symbol, at, duration, magnitude)], exchange=exchange)

    return make


SCENARIOS: dict[str, Callable[..., Scenario]] = {
    "volume_burst": _single(AnomalyKind.VOLUME, duration=10.0),
    "price_jump": _single(AnomalyKind.PRICE_CHANGE, 8.0),
    "price_crash": _single(AnomalyKind.PRICE_CHANGE, -8.0),
    "whale": _single(AnomalyKind.WHALE, duration=2.0),
    "book_imbalance": _single(AnomalyKind.BOOK_IMBALANCE, duration=10.0),
    "spread": _single(AnomalyKind.SPREAD, duration=10.0),
    "stall": _single("stall", duration=5.0),
    "disconnect": _single("disconnect", duration=5.0),
    "gap": _single("gap", duration=2.0),
    "malformed": _single("malformed", duration=1.0),
}


def standard(
    symbol: str = "BTC-USDT",
    *,
    warmup_s: float = 60.0,
    spacing_s: float = 30.0,
    exchange: str = "simulator",
    faults: bool = True,
) -> Scenario:
    """Every market event kind in turn (jump, crash, volume, whale, imbalance, spread) after
    ``warmup_s``, ``spacing_s`` apart; then, with ``faults``, every feed fault."""
    plan: list[tuple[str, float, float]] = [
        (AnomalyKind.PRICE_CHANGE, 8.0, 5.0),
        (AnomalyKind.VOLUME, 10.0, 10.0),
        (AnomalyKind.WHALE, 150.0, 2.0),
        (AnomalyKind.BOOK_IMBALANCE, 8.0, 10.0),
        (AnomalyKind.SPREAD, 60.0, 10.0),
        (AnomalyKind.PRICE_CHANGE, -8.0, 5.0),
    ]
    if faults:
        plan += [("stall", 0, 5.0), ("disconnect", 0, 5.0), ("gap", 0, 2.0), ("malformed", 0, 1.0)]
    injections = [
        Injection(kind, symbol, warmup_s + n * spacing_s, duration, magnitude)
        for n, (kind, magnitude, duration) in enumerate(plan)
    ]
    return Scenario("standard", injections, exchange=exchange)
