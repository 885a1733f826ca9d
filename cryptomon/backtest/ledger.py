"""Fills on the hub -> round-trip trades (flat -> position -> flat), with their cause.

The ledger follows ``Signal``, ``Anomaly``, ``OrderIntent`` and ``Fill`` events: a trade opens
with the first fill of a flat market and closes when the position is flat again. Its source is
the signal source of the opening order (``indicators``, ``rule:NAME``, ``webhook...``) with the
anomaly kind that caused it; its exit reason is the origin of the closing order
(``stop_loss``, ``take_profit``, ``signal``, ...). Amounts stay ``Decimal``.

At the end of a run :meth:`Ledger.settle` gives each closed contract trip the figures of the
portfolio's round trip (``TradeResult``) that closed with it: the funding paid or received
(in its PnL) and its net PnL in the paper balance's quote currency (:attr:`RoundTrip.net`,
what the statistics sum: an inverse contract's PnL is in coins).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptomon.events import (
    Anomaly,
    Fill,
    OrderIntent,
    OrderState,
    OrderUpdate,
    RiskEvent,
    Signal,
)
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.trading.futures import is_contract
from cryptomon.trading.orders import CLIENT_ID_PREFIX, ORIGIN_CODES
from cryptomon.trading.position import TradeResult

ZERO = Decimal(0)
ONE = Decimal(1)
_SIGNAL_ORDER = CLIENT_ID_PREFIX + ORIGIN_CODES["signal"]  # how a signal's order id starts
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
    contract: bool = False
    funding: Decimal = ZERO  # a contract's funding payments (settle currency; from settle)
    quote_pnl: Decimal | None = None  # the portfolio's net PnL in its quote (from settle)
    # the fees in the paper balance's quote (the statistics sum them): a coin-settled
    # (inverse) contract's coin fees at each fill's price when the account is not kept in
    # that coin, as the portfolio books them (ContractState.to_quote); else the fees
    quote_fees: Decimal = ZERO

    @property
    def pnl(self) -> Decimal:
        """Net PnL (in the settle currency of a contract, funding in): what was sold minus
        what was bought minus the fees; an inverse contract's is the coin value of the
        contracts bought minus that of those sold."""
        if self.inverse:
            pnl = (self.bought_coin - self.sold_coin) * self.size - self.fees
        elif self.size != ONE:
            pnl = (self.sold - self.bought) * self.size - self.fees
        else:
            pnl = self.sold - self.bought - self.fees
        # only when paid: adding a zero could change the digest's str() (1E+2 -> 100, -0)
        return pnl + self.funding if self.funding else pnl

    @property
    def net(self) -> Decimal:
        """Net PnL in the quote currency of the paper balance (the statistics sum it)."""
        return self.pnl if self.quote_pnl is None else self.quote_pnl

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
            "pnl": str(self.net),
            "settle_pnl": str(self.pnl),
            "funding": str(self.funding),
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
    # the orders the risk checks refused, by the check's name (``RiskEvent.check``), and how
    # many of them a signal asked for (its entry or close: the signal made no order)
    refused: dict[str, int] = field(default_factory=dict)
    signals_refused: int = 0
    signal_orders: int = 0  # order intents of signals (entries and closes) that were placed
    # the placed orders the broker rejected, by the reason's head (its text before a colon:
    # "insufficient balance: 0.3 BTC needed, ..." counts as "insufficient balance")
    rejected: dict[str, int] = field(default_factory=dict)
    dropped: int = 0  # signals counted, not kept (see count_signals)
    specs: SpecLookup = _no_spec  # the instrument of a market (contracts: size, inverse)
    quote: str | None = None  # the paper balance's currency (an inverse contract's fees)
    # per market: the settle coin whose fees are converted at the fill price (inverse
    # contracts of an account not kept in that coin), else None
    _coin_fees: dict[tuple[str, str], str | None] = field(default_factory=dict)
    _subs: list[Any] = field(default_factory=list)

    def follow(self, hub: Hub) -> None:
        self._subs = [
            hub.subscribe(Signal, self._on_signal, name="backtest.signal"),
            hub.subscribe(Anomaly, self._on_anomaly, name="backtest.anomaly"),
            hub.subscribe(OrderIntent, self._on_intent, name="backtest.intent"),
            hub.subscribe(Fill, self.on_fill, name="backtest.fill"),
            hub.subscribe(RiskEvent, self._on_risk, name="backtest.risk"),
            hub.subscribe(OrderUpdate, self._on_update, name="backtest.update"),
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
        if intent.origin == "signal":
            self.signal_orders += 1

    def _on_update(self, update: OrderUpdate) -> None:
        """An order the broker rejected, counted by the head of its reason (not a trading
        event either: the rejection is the order's end)."""
        if update.state != OrderState.REJECTED:
            return
        head = update.reason.split(":", 1)[0].strip()[:80] or "no reason given"
        self.rejected[head] = self.rejected.get(head, 0) + 1

    def _on_risk(self, event: RiskEvent) -> None:
        """A refused order, counted by its check. Not a trading event (:attr:`activity`):
        nothing follows it. A refusal without an order id is a signal's entry refused while
        it was sized (below one lot, no instrument spec)."""
        if event.kind != "rejected":
            return
        check = event.check or "unnamed"
        self.refused[check] = self.refused.get(check, 0) + 1
        coid = event.client_order_id
        if coid is None or coid.startswith(_SIGNAL_ORDER):
            self.signals_refused += 1

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
                trip.contract = True
                in_coin = spec.inverse and spec.settle not in (spec.quote, self.quote)
                self._coin_fees[key] = spec.settle if in_coin else None
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
        settle = self._coin_fees.get(key)
        converted = settle is not None and fill.fee_currency in ("", settle)
        trip.quote_fees += fill.fee * fill.price if converted else fill.fee
        trip.fills += 1
        trip.amount = max(trip.amount, abs(trip.position))
        if trip.position == 0:
            trip.exit_ts = fill.ts
            trip.exit_reason = str(intent.origin) if intent is not None else "unknown"
            self.closed.append(trip)
            del self.open[key]

    def settle(self, results: list[TradeResult]) -> None:
        """Give each closed contract trip the figures of the portfolio's round trip of its
        market that closed at the same time (the n-th of the market's closes with the n-th):
        its funding (the portfolio's settle-currency PnL has it) and its net PnL in the
        portfolio's quote. A market whose closes do not pair up keeps the fill figures."""
        trips: dict[tuple[str, str], list[RoundTrip]] = {}
        for trip in self.closed:
            if trip.contract:
                trips.setdefault((trip.exchange, trip.symbol), []).append(trip)
        if not trips:
            return
        done: dict[tuple[str, str], list[TradeResult]] = {}
        for res in results:
            if (res.exchange, res.symbol) in trips:
                done.setdefault((res.exchange, res.symbol), []).append(res)
        for key, mine in trips.items():
            theirs = done.get(key, [])
            if len(theirs) != len(mine) or any(
                t.exit_ts != r.closed for t, r in zip(mine, theirs, strict=True)
            ):
                continue
            for trip, res in zip(mine, theirs, strict=True):
                trip.funding = res.pnl - trip.pnl
                trip.quote_pnl = res.quote_pnl
