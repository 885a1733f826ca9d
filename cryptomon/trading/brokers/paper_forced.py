"""The paper venue's forced closes: contract positions it closes itself, as a real one would
(the engine hears of it through ``PaperBroker.set_forced_listener``: the venue's order, its
fill and why):

- liquidation: when the mark (a ``Funding`` event's ``mark_price``; on a market whose feed
  announces none, the public trades; on a market that has shown neither, such as Gate.io
  futures subscribed without funding and trades, the book mid of its ``BookTop``s, until
  the first mark or trade; a top wider than ``mid_max_spread`` is skipped, and the mid must
  stay past the estimate on every top for ``mid_confirm_ms`` of event time, see
  :meth:`ForcedCloses.on_mid`) reaches the position's liquidation estimate
  (:meth:`~cryptomon.trading.futures.ContractTerms.liquidation`, the one risk checks the
  stop-loss against, isolated and cross alike), the position's resting orders are canceled and
  it is closed at that estimate, even when the mark jumped past it, losing its whole initial
  margin (the rest of the margin is the liquidation fee);
- expiry: at the first event or engine poll at or after a dated future's expiry, its resting
  orders are canceled and its position is settled at the last price seen before the expiry
  (mark, else trade; the entry when none), without a fee, stamped at the expiry; orders on an
  expired future are refused (by the broker, with :meth:`ForcedCloses.expiry`).

The margin arithmetic of both is :mod:`~cryptomon.trading.brokers.paper_margin`'s; this module
decides when, cancels the market's resting orders, books the venue's order and tells the
listener. The broker hands its order maps and a few of its methods over at construction and
binds :meth:`ForcedCloses.watch`, :meth:`ForcedCloses.expire_due` and
:meth:`ForcedCloses.track_mid` to itself, so its per-trade path calls them without an extra
attribute hop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, Protocol

import structlog

from cryptomon.clock import Clock
from cryptomon.events import Fill, OrderIntent, OrderState
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import BrokerOrder
from cryptomon.trading.brokers.paper_book import PaperOrder
from cryptomon.trading.brokers.paper_margin import MarginBook, PaperContract
from cryptomon.trading.brokers.paper_mid import BookMidWatch

log = structlog.get_logger()
ZERO = Decimal(0)
ForcedListener = Callable[[OrderIntent, BrokerOrder, str], None]
"""Told of an order the venue placed itself (a liquidation, a settlement): its intent, its
filled view and why."""


def iso(ts: float) -> str:
    """``ts`` (epoch seconds) as UTC ISO 8601 to the second, for reasons and refusals."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AddFill(Protocol):
    """``PaperBroker._add_fill``: records one fill of ``order`` (fee in ``currency``)."""

    def __call__(
        self,
        order: PaperOrder,
        qty: Decimal,
        price: Decimal,
        *,
        fee: Decimal,
        currency: str,
        liquidity: str,
        ts: float,
    ) -> Fill: ...


def cancel_open(order: PaperOrder) -> bool:
    """Cancel ``order`` if it is still open; True when it was."""
    if order.state in (OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED):
        order.state = OrderState.CANCELED
        return True
    return False


class ForcedCloses:
    """Liquidations and expiry settlements of the paper account's contract positions, and
    the book-mid watch of the markets that have no mark or trade to watch (a no-op when the
    account has no ``margin``: spot only)."""

    def __init__(
        self,
        *,
        margin: MarginBook | None,
        market: MarketState,
        hub: Hub,
        clock: Clock,
        orders: dict[str, PaperOrder],
        resting: dict[str, PaperOrder],
        run: str,
        next_seq: Callable[[], int],
        add_fill: AddFill,
        tell: Callable[[PaperOrder], None],
        mid_max_spread: float = 0.02,
        mid_confirm_ms: int = 1_000,
    ) -> None:
        # the broker's own maps (never replaced by it, so shared), and its id counter, fill
        # booking and fill listener
        self.margin = margin
        self.market_state = market
        self.clock = clock
        self._orders = orders
        self._resting = resting
        self._run = run
        self._next_seq = next_seq
        self._add_fill = add_fill
        self._tell = tell
        self.listener: ForcedListener | None = None
        self._expiries: dict[tuple[str, str], float | None] = {}
        # contract markets with an open position that have shown neither a mark nor a trade:
        # their liquidation watches the book mid (paper_mid.py)
        self.mid = BookMidWatch(hub=hub, on_mid=self.on_mid, max_spread=mid_max_spread)
        self._mid_confirm_s = mid_confirm_ms / 1000
        # per market, the event time of the first top of an unbroken run past the estimate
        self._mid_since: dict[tuple[str, str], float] = {}
        self.mid_unconfirmed = 0  # tops past the estimate that did not liquidate (yet)

    def close(self) -> None:
        self.mid.close()

    def on_mid(self, exchange: str, symbol: str, mid: Decimal, ts: float) -> None:
        """The book mid of a market whose position has no mark or trade to watch (its top
        within ``mid_max_spread``). A thin book's mid jumps, so one top past the estimate
        does not liquidate: the mid must stay past it on every such top from the first one
        for ``mid_confirm_ms`` of the tops' own (exchange) time, the same live and in a
        backtest; with 0, two tops in a row. A top back on the safe side starts it over."""
        margin = self.margin
        if margin is None:
            return
        key = (exchange, symbol)
        if margin.liquidation_due(key, mid) is None:
            self._mid_since.pop(key, None)
        else:
            since = self._mid_since.get(key)
            if since is None:
                self._mid_since[key] = ts
            if since is None or ts - since < self._mid_confirm_s:
                self.mid_unconfirmed += 1
                margin.follow(key, mid, ts, mark=False)
                self.expire_due()
                return
        self.watch(exchange, symbol, mid, ts, mark=False, what="book mid")

    def track_mid(self, key: tuple[str, str]) -> None:
        """After a position of ``key`` changed: its book mid is watched while it is open on a
        market that has shown neither a mark nor a trade."""
        margin = self.margin
        if margin is None:
            return
        pos = margin.positions.get(key)
        watched = (
            pos is not None
            and pos.qty != 0
            and not margin.has_mark(key)
            and not self.market_state.trades(key[0], key[1], limit=1)
        )
        if not watched:
            self._mid_since.pop(key, None)
        self.mid.set(key, watched)

    def expiry(self, exchange: str, symbol: str) -> float | None:
        """The market's expiry (a dated future), None when it has none."""
        key = (exchange, symbol)
        if key in self._expiries:
            return self._expiries[key]
        terms = self.margin.terms(exchange, symbol) if self.margin is not None else None
        if terms is None:  # not a contract, or its spec not known yet: asked again
            return None
        self._expiries[key] = terms.spec.expiry
        return terms.spec.expiry

    def watch(
        self,
        exchange: str,
        symbol: str,
        price: Decimal,
        ts: float,
        *,
        mark: bool,
        what: str = "",
    ) -> None:
        """A new mark, trade price or book mid (``what`` names it in the reason; a trade
        price by default): dated futures past their expiry are settled, and the position of
        this market is liquidated when the price reaches its estimate."""
        margin = self.margin
        if margin is None:
            return
        key = (exchange, symbol)
        watched = margin.follow(key, price, ts, mark=mark)
        self.expire_due()
        due = margin.liquidation_due(key, price) if watched else None
        if due is None:
            return
        pos, at, fee = due
        terms = pos.terms
        side = "long" if pos.qty > 0 else "short"
        reason = (
            f"liquidation: {what or ('mark' if mark else 'price')} {price} reached the "
            "liquidation price "
            f"{at.quantize(Decimal('1e-8'))} of the {side} {abs(pos.qty)} {symbol} "
            f"(entry {pos.entry}, {terms.leverage}x {terms.margin_mode}): closed there, "
            f"losing its initial margin"
        )
        self.force(key, pos, at, fee=fee, origin="liquidation", reason=reason, ts=self.clock.time())

    def expire_due(self) -> None:
        """Settle the dated futures whose expiry has passed and cancel their resting orders."""
        margin = self.margin
        if margin is None:
            return
        now = self.clock.time()
        for key, pos, price in margin.expired(now):
            expiry = pos.terms.spec.expiry or now
            reason = (
                f"settlement: {key[1]} expired at {iso(expiry)}; the position "
                f"{pos.qty} was settled at {price}, the last price before the expiry"
            )
            self.force(key, pos, price, fee=ZERO, origin="settlement", reason=reason, ts=expiry)
        for order in list(self._resting.values()):
            intent = order.intent
            ends = self.expiry(intent.exchange, intent.symbol)
            if ends is not None and now >= ends and cancel_open(order):
                self._tell(order)

    def force(
        self,
        key: tuple[str, str],
        pos: PaperContract,
        price: Decimal,
        *,
        fee: Decimal,
        origin: Literal["liquidation", "settlement"],
        reason: str,
        ts: float,
    ) -> None:
        """The venue closes ``pos`` itself: the market's resting orders are canceled first,
        then one reduce-only market order of the venue's fills the whole position at
        ``price`` paying ``fee``; the forced listener is told."""
        if self.margin is None:
            return
        exchange, symbol = key
        for order in list(self._resting.values()):
            i = order.intent
            if i.exchange == exchange and i.symbol == symbol and cancel_open(order):
                self._tell(order)
        qty, currency = self.margin.force_close(key, price, fee, ts)
        self._mid_since.pop(key, None)
        self.track_mid(key)
        seq = self._next_seq()
        intent = OrderIntent(
            exchange=exchange,
            symbol=symbol,
            ts=ts,
            ts_recv=ts,
            client_order_id=f"paper-{origin}-{self._run}-{seq}",
            side="sell" if qty > 0 else "buy",
            type="market",
            amount=abs(qty),
            reduce_only=True,
            origin=origin,
        )
        order = PaperOrder(intent, f"paper-{self._run}-{seq}")
        self._orders[intent.client_order_id] = order
        self._add_fill(order, abs(qty), price, fee=fee, currency=currency, liquidity="taker", ts=ts)
        order.state = OrderState.FILLED
        log.warning(
            f"paper.{origin}",
            symbol=symbol,
            qty=str(qty),
            price=str(price),
            fee=str(fee),
            currency=currency,
        )
        if self.listener is not None:
            try:
                self.listener(intent, order.view(self.clock.time()), reason)
            except Exception as exc:  # the listener must not break the hub
                log.error("paper.listener_failed", error=repr(exc))
