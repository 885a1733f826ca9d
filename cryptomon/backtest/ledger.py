"""Fills on the hub -> round-trip trades (flat -> position -> flat), with their cause.

The ledger follows ``Signal``, ``Anomaly``, ``OrderIntent`` and ``Fill`` events: a trade opens
with the first fill of a flat market and closes when the position is flat again. Its source is
the signal source of the opening order (``indicators``, ``rule:NAME``, ``webhook...``) with the
anomaly kind that caused it; its exit reason is the origin of the closing order
(``stop_loss``, ``take_profit``, ``signal``, ...). Amounts stay ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptomon.events import Anomaly, Fill, OrderIntent, Signal
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.trading.futures import is_contract

ZERO = Decimal(0)
ONE = Decimal(1)
SpecLookup = Callable[[str, str], InstrumentSpec | None]


def _no_spec(exchange: str, symbol: str) -> None:
    return None


@dataclass(slots=True)
class RoundTrip:
    """One trade from the first entry fill to the fill that made the market flat."""

    exchange: str
    symbol: str
    side: str  # long | short
    source: str
    anomaly_kind: str | None
    entry_ts: float
    amount: Decimal = ZERO  # the largest absolute position held
    bought: Decimal = ZERO  # quote paid for buys
    sold: Decimal = ZERO  # quote received for sells
    bought_qty: Decimal = ZERO
    sold_qty: Decimal = ZERO
    fees: Decimal = ZERO
    exit_ts: float | None = None
    exit_reason: str = ""
    fills: int = 0
    position: Decimal = ZERO
    # a contract market (fills in venue contracts, PnL and fees in its settle currency):
    # the contract size, and for an inverse contract the coin value of the buys and sells
    size: Decimal = ONE
    inverse: bool = False
    bought_coin: Decimal = ZERO
    sold_coin: Decimal = ZERO

    @property
    def pnl(self) -> Decimal:
        """Net PnL (in the settle currency of a contract): what was sold minus what was
        bought minus the fees; an inverse contract's is the coin value of the contracts
        bought minus that of those sold."""
        if self.inverse:
            return (self.bought_coin - self.sold_coin) * self.size - self.fees
        if self.size != ONE:
            return (self.sold - self.bought) * self.size - self.fees
        return self.sold - self.bought - self.fees

    @property
    def entry_price(self) -> Decimal:
        qty, cost = (
            (self.bought_qty, self.bought) if self.side == "long" else (self.sold_qty, self.sold)
        )
        return cost / qty if qty else ZERO

    @property
    def exit_price(self) -> Decimal:
        qty, cost = (
            (self.sold_qty, self.sold) if self.side == "long" else (self.bought_qty, self.bought)
        )
        return cost / qty if qty else ZERO

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly fields (Decimals as strings)."""
        entry = self.entry_price
        if self.inverse:
            cost = self.amount * self.size / entry if entry else ZERO
        else:
            cost = entry * self.amount * self.size if self.size != ONE else entry * self.amount
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "side": self.side,
            "source": self.source,
            "anomaly_kind": self.anomaly_kind,
            "entry_ts": self.entry_ts,
            "exit_ts": self.exit_ts,
            "amount": str(self.amount),
            "entry_price": str(self.entry_price),
            "exit_price": str(self.exit_price),
            "fees": str(self.fees),
            "pnl": str(self.pnl),
            "pnl_pct": float(self.pnl / cost * 100) if cost else 0.0,
            "exit_reason": self.exit_reason,
            "fills": self.fills,
        }


@dataclass(slots=True)
class Ledger:
    """Hub subscriber that builds :class:`RoundTrip` s from fills (see the module docstring)."""

    closed: list[RoundTrip] = field(default_factory=list)
    open: dict[tuple[str, str], RoundTrip] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    intents: dict[str, OrderIntent] = field(default_factory=dict)
    # the signals published on the hub (all of them on the slow path; the fast path's
    # signals that the engine drops are only counted: count_signals)
    signals: dict[str, Signal] = field(default_factory=dict)
    anomalies: dict[str, Anomaly] = field(default_factory=dict)
    activity: int = 0  # trading events seen: the runner settles the loop while it moves
    dropped: int = 0  # signals counted, not kept (see count_signals)
    specs: SpecLookup = _no_spec  # the instrument of a market (contracts: size, inverse)
    _subs: list[Any] = field(default_factory=list)

    def follow(self, hub: Hub) -> None:
        self._subs = [
            hub.subscribe(Signal, self._on_signal, name="backtest.signal"),
            hub.subscribe(Anomaly, self._on_anomaly, name="backtest.anomaly"),
            hub.subscribe(OrderIntent, self._on_intent, name="backtest.intent"),
            hub.subscribe(Fill, self.on_fill, name="backtest.fill"),
        ]

    def close(self) -> None:
        for sub in self._subs:
            sub.close()

    def _on_signal(self, sig: Signal) -> None:
        self.record_signal(sig)

    def record_signal(self, sig: Signal) -> None:
        """One published signal (a trading event)."""
        self.activity += 1
        self.signals[sig.id] = sig

    def count_signals(self, n: int) -> None:
        """``n`` published signals that the engine drops (a fast backtest publishes them to
        the ledger only): trading events, counted in :attr:`signal_count`, not kept. Nothing
        would read them: :meth:`_cause` looks a signal up by the id an order intent carries,
        and the engine makes no intent of a signal it drops."""
        self.activity += n
        self.dropped += n

    @property
    def signal_count(self) -> int:
        """The signals published: those kept (:attr:`signals`) and those counted."""
        return len(self.signals) + self.dropped

    def _on_anomaly(self, anomaly: Anomaly) -> None:
        self.anomalies[anomaly.id] = anomaly

    def _on_intent(self, intent: OrderIntent) -> None:
        self.activity += 1
        self.intents[intent.client_order_id] = intent

    def _cause(self, intent: OrderIntent | None) -> tuple[str, str | None]:
        if intent is None:
            return "unknown", None
        sig = self.signals.get(intent.signal_id or "")
        source = sig.source if sig is not None else str(intent.origin)
        anomaly = self.anomalies.get(intent.anomaly_id or "")
        return source, anomaly.kind if anomaly is not None else None

    def on_fill(self, fill: Fill) -> None:
        self.activity += 1
        self.fills.append(fill)
        key = (fill.exchange, fill.symbol)
        intent = self.intents.get(fill.client_order_id)
        trip = self.open.get(key)
        if trip is None:
            source, kind = self._cause(intent)
            side = "long" if fill.side == "buy" else "short"
            trip = RoundTrip(fill.exchange, fill.symbol, side, source, kind, fill.ts)
            spec = self.specs(fill.exchange, fill.symbol)
            if spec is not None and is_contract(spec):
                trip.size, trip.inverse = spec.contract_size, spec.inverse
            self.open[key] = trip
        notional = fill.amount * fill.price
        if fill.side == "buy":
            trip.bought += notional
            trip.bought_qty += fill.amount
            trip.position += fill.amount
            if trip.inverse:
                trip.bought_coin += fill.amount / fill.price
        else:
            trip.sold += notional
            trip.sold_qty += fill.amount
            trip.position -= fill.amount
            if trip.inverse:
                trip.sold_coin += fill.amount / fill.price
        trip.fees += fill.fee
        trip.fills += 1
        trip.amount = max(trip.amount, abs(trip.position))
        if trip.position == 0:
            trip.exit_ts = fill.ts
            trip.exit_reason = str(intent.origin) if intent is not None else "unknown"
            self.closed.append(trip)
            del self.open[key]
