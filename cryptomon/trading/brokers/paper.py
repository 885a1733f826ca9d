"""Paper broker: a simulated venue that fills against the live market data.

- Market orders walk the latest book (``MarketState.snapshot`` levels, with the newer
  ``BookTop`` replacing stale best levels) and pay the taker fee; what the visible book cannot
  fill expires (IOC), like a venue market order on a thin book.
- Limit orders that cross the book on arrival take liquidity up to their price (taker); the
  rest rests and fills at its limit price when a public trade crosses it (maker fee),
  up to the trade's size.
- Balances per currency, starting with ``starting_balance`` of ``quote_currency``. Buys need
  the quote (price * amount + fee); sells need the base unless shorting is allowed.
- Client order ids are unique: placing the same id again returns the existing order (a venue
  would refuse the duplicate; the engine never resends, this is a second guard).

Fills of resting orders happen outside ``place_order``: the engine registers a callback with
:meth:`set_listener` and also polls :meth:`fetch_order`.

This module matches orders and keeps them; its collaborators (``cryptomon.trading.brokers``):
``paper_funds`` admits orders (lots, minimums, funds) and settles spot fills, ``paper_book``
is the order record, its venue view and the book levels, ``paper_margin`` the contract margin
and funding, ``paper_forced`` the venue's own closes of contract positions (liquidation,
expiry settlement; the engine hears of them through :meth:`set_forced_listener`) and
``paper_mid`` the book-mid watch of markets that show no mark or trade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog

from cryptomon.clock import Clock
from cryptomon.config import split_symbol
from cryptomon.events import Fill, Funding, OrderIntent, OrderState, Trade, new_id
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import (
    BrokerOrder,
    FundingPayment,
    MarketInfo,
    OrderRejectedError,
)
from cryptomon.trading.brokers.paper_book import PaperOrder, book_levels, d
from cryptomon.trading.brokers.paper_forced import ForcedCloses, ForcedListener, iso
from cryptomon.trading.brokers.paper_funds import check_order, settle_spot
from cryptomon.trading.brokers.paper_margin import MarginBook
from cryptomon.trading.margin import TermsLookup

if TYPE_CHECKING:
    from cryptomon.config import PaperBrokerConfig

log = structlog.get_logger()
ZERO = Decimal(0)


class PaperBroker:
    """The default broker: no money moves, fills follow the real book."""

    name = "paper"

    def __init__(
        self,
        *,
        config: PaperBrokerConfig,
        market: MarketState,
        hub: Hub,
        clock: Clock,
        allow_short: bool = False,
        terms: TermsLookup | None = None,
    ) -> None:
        self.config = config
        self.market_state = market
        self.hub = hub
        self.clock = clock
        self.allow_short = allow_short
        self.quote = config.quote_currency
        self.balances: dict[str, Decimal] = {self.quote: d(config.starting_balance)}
        for currency, amount in config.balances.items():  # e.g. the coin of inverse contracts
            self.balances[currency] = self.balances.get(currency, ZERO) + d(amount)
        self._orders: dict[str, PaperOrder] = {}
        self._resting: dict[str, PaperOrder] = {}  # limit orders that may still be open
        self._seq = 0
        self._run = new_id()[:8]  # trade and order ids stay unique across restarts
        self._exchanges: set[str] = set()  # seen in trades and orders: market() has no exchange
        self._listener: Callable[[BrokerOrder], None] | None = None
        self._sub = hub.subscribe(Trade, self._on_trade, name="paper-broker.trade")
        # perpetuals and futures: margin, shorts, funding (paper_margin.py)
        self.margin = MarginBook(terms=terms, balances=self.balances) if terms else None
        self._funding_sub = (
            hub.subscribe(Funding, self._on_funding, name="paper-broker.funding")
            if self.margin is not None
            else None
        )
        # liquidations, expiry settlements and the book-mid watch (paper_forced.py); its
        # methods are bound here so the per-trade and per-fill paths reach them in one hop
        self._forced = forced = ForcedCloses(
            margin=self.margin,
            market=market,
            hub=hub,
            clock=clock,
            orders=self._orders,
            resting=self._resting,
            run=self._run,
            next_seq=self._next_seq,
            add_fill=self._add_fill,
            tell=self._tell,
            mid_max_spread=config.mid_max_spread,
            mid_confirm_ms=config.mid_confirm_ms,
        )
        self._mid = forced.mid
        self._watch = forced.watch
        self._expire_due = forced.expire_due
        self._expiry = forced.expiry
        self._track_mid = forced.track_mid

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._sub.close()
        if self._funding_sub is not None:
            self._funding_sub.close()
        self._forced.close()

    def stats(self) -> dict[str, int]:
        """Book-mid liquidation checks skipped: tops wider than ``mid_max_spread``
        (``mid_skipped_spread``) and tops past the liquidation price still waiting for
        ``mid_confirm_ms`` (``mid_unconfirmed``)."""
        return {
            "mid_skipped_spread": self._mid.skipped,
            "mid_unconfirmed": self._forced.mid_unconfirmed,
        }

    def set_listener(self, callback: Callable[[BrokerOrder], None] | None) -> None:
        """Called with the order after each fill that happens outside ``place_order``."""
        self._listener = callback

    def set_forced_listener(self, callback: ForcedListener | None) -> None:
        """Called with every order the venue places itself (liquidation, settlement)."""
        self._forced.listener = callback

    def restore(
        self,
        balances: dict[str, Decimal],
        orders: Iterable[tuple[OrderIntent, Decimal, OrderState]] = (),
    ) -> None:
        """Start from the engine's persisted state after a restart: balances, and the limit
        orders that were resting (``(intent, filled, state)``); a pending cancel completes."""
        self.balances = dict(balances)
        if self.margin is not None:
            self.margin.balances = self.balances
        for intent, filled, state in orders:
            if intent.type != "limit" or intent.client_order_id in self._orders:
                continue
            self._seq += 1
            order = PaperOrder(intent, f"paper-{self._run}-{self._seq}")
            order.prior = filled
            if state == OrderState.CANCEL_PENDING:
                order.state = OrderState.CANCELED
            elif filled > 0:
                order.state = OrderState.PARTIALLY_FILLED
            self._orders[intent.client_order_id] = order
            self._resting[intent.client_order_id] = order

    # ------------------------------------------------------------------ protocol

    async def market(self, symbol: str) -> MarketInfo:
        base, quote = split_symbol(symbol)
        info = MarketInfo(
            symbol=symbol,
            base=base,
            quote=quote,
            tick_size=d(self.config.tick_size),
            lot_size=d(self.config.lot_size),
            min_notional=d(self.config.min_notional),
            native_stop_loss=False,
        )
        if self.margin is None:
            return info
        seen = {ex for ex, sym in self.market_state.markets() if sym == symbol}
        terms = self.margin.terms_any(symbol, self._exchanges | seen)
        return info if terms is None else self.margin.market(symbol, terms, info)

    async def place_order(self, intent: OrderIntent) -> BrokerOrder:
        existing = self._orders.get(intent.client_order_id)
        if existing is not None:
            return existing.view(self.clock.time())
        self._exchanges.add(intent.exchange)
        if self.margin is not None:
            self._expire_due()
            expiry = self._expiry(intent.exchange, intent.symbol)
            if expiry is not None and self.clock.time() >= expiry:
                raise OrderRejectedError(
                    intent.client_order_id,
                    f"{intent.symbol} expired at {iso(expiry)}: a dated future takes no "
                    "orders after its expiry",
                )
        if intent.type not in ("market", "limit"):
            raise OrderRejectedError(
                intent.client_order_id, f"paper supports market and limit orders, not {intent.type}"
            )
        if intent.type == "limit" and intent.price is None:
            raise OrderRejectedError(intent.client_order_id, "limit order without price")
        check_order(
            intent,
            market=self.market_state,
            margin=self.margin,
            balances=self.balances,
            price_of=self._price,  # an attribute: a test counts the look-ups
            taker_fee=d(self.config.taker_fee),
            allow_short=self.allow_short,
        )
        self._seq += 1
        order = PaperOrder(intent, f"paper-{self._run}-{self._seq}")
        self._orders[intent.client_order_id] = order
        self._take(order, limit=intent.price if intent.type == "limit" else None)
        if intent.type == "limit":
            self._resting[intent.client_order_id] = order
        if intent.type == "market":  # immediate-or-cancel: what the book cannot fill expires
            full = order.filled >= intent.amount
            order.state = OrderState.FILLED if full else OrderState.EXPIRED
        return order.view(self.clock.time())

    async def cancel_order(self, symbol: str, client_order_id: str) -> BrokerOrder:
        order = self._orders.get(client_order_id)
        if order is None:
            raise OrderRejectedError(client_order_id, "unknown order")
        if order.state in (OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED):
            order.state = OrderState.CANCELED
        return order.view(self.clock.time())

    async def fetch_order(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        self._expire_due()
        order = self._orders.get(client_order_id)
        return None if order is None else order.view(self.clock.time())

    async def fetch_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        self._expire_due()
        return [
            o.view(self.clock.time())
            for o in self._resting.values()  # market orders never rest: filled or expired
            if o.state in (OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED)
            and (symbol is None or o.intent.symbol == symbol)
        ]

    async def fetch_fills(self, symbol: str, since: float | None = None) -> list[Fill]:
        return [
            f
            for o in self._orders.values()
            if o.intent.symbol == symbol
            for f in o.fills
            if since is None or f.ts >= since
        ]

    async def fetch_balances(self) -> dict[str, Decimal]:
        self._expire_due()
        return {k: v for k, v in self.balances.items() if v != 0}

    async def fetch_funding(self, symbol: str, since: float | None = None) -> list[FundingPayment]:
        """Funding paid or received on ``symbol`` (the paper account's income history)."""
        return [] if self.margin is None else self.margin.funding(symbol, since)

    async def fetch_positions(self) -> dict[str, Decimal]:
        """Signed contracts of every open perpetual/future position."""
        if self.margin is None:
            return {}
        self._expire_due()
        return {sym: p.qty for (_, sym), p in self.margin.positions.items() if p.qty != 0}

    def restore_positions(self, positions: Iterable[tuple[str, str, Decimal, Decimal]]) -> None:
        """Contract positions after a restart: ``(exchange, symbol, signed qty, entry)``."""
        if self.margin is not None:
            self.margin.restore(positions)
            for key in list(self.margin.positions):
                self._track_mid(key)

    # ------------------------------------------------------------------ matching

    def _price(self, intent: OrderIntent) -> Decimal:
        """The limit price, else the touch (ask for a buy, bid for a sell), else the mid."""
        price = intent.price
        if price is None:
            top = self.market_state.top(intent.exchange, intent.symbol)
            mid = self.market_state.decimal_mid(intent.exchange, intent.symbol)
            touch = None if top is None else (top.ask if intent.side == "buy" else top.bid)
            price = d(touch) if touch else (mid if mid else None)
        if price is None:
            raise OrderRejectedError(intent.client_order_id, "no market price")
        return price

    def _take(self, order: PaperOrder, *, limit: Decimal | None) -> None:
        intent = order.intent
        buy = intent.side == "buy"
        remaining = intent.amount - order.filled
        levels = book_levels(self.market_state, intent) if remaining > 0 else ()
        for price, size in levels:  # lazy: stop before converting a level not taken
            if limit is not None and (price > limit if buy else price < limit):
                break
            qty = min(remaining, size)
            self._fill(order, qty, price, "taker")
            remaining -= qty
            if remaining <= 0:
                break
        if order.filled >= intent.amount:
            order.state = OrderState.FILLED
        elif order.filled > 0:
            order.state = OrderState.PARTIALLY_FILLED

    def _fill(self, order: PaperOrder, qty: Decimal, price: Decimal, liquidity: str) -> Fill:
        intent = order.intent
        _base, quote = split_symbol(intent.symbol)
        rate = d(self.config.taker_fee if liquidity == "taker" else self.config.maker_fee)
        notional = qty * price
        fee = notional * rate
        terms = self.margin.terms(intent.exchange, intent.symbol) if self.margin else None
        now = self.clock.time()
        if terms is not None and self.margin is not None:
            fee, quote = self.margin.fill(intent, terms, qty, price, rate, ts=now)
            self._track_mid((intent.exchange, intent.symbol))
        else:
            settle_spot(self.balances, intent, qty, price, fee)
        return self._add_fill(
            order, qty, price, fee=fee, currency=quote, liquidity=liquidity, ts=now
        )

    def _add_fill(
        self,
        order: PaperOrder,
        qty: Decimal,
        price: Decimal,
        *,
        fee: Decimal,
        currency: str,
        liquidity: str,
        ts: float,
    ) -> Fill:
        intent = order.intent
        self._seq += 1
        fill = Fill(
            exchange=intent.exchange,
            symbol=intent.symbol,
            ts=ts,
            ts_recv=ts,
            trade_id=f"paper-{self._run}-t{self._seq}",
            client_order_id=intent.client_order_id,
            side=intent.side,
            amount=qty,
            price=price,
            fee=fee,
            fee_currency=currency,
            liquidity="taker" if liquidity == "taker" else "maker",
            exchange_order_id=order.exchange_order_id,
        )
        order.add_fill(fill)
        return fill

    def _on_trade(self, trade: Trade) -> None:
        if self.margin is not None:
            self._exchanges.add(trade.exchange)
        for key, order in list(self._resting.items()):
            intent = order.intent
            if order.state not in (OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED):
                del self._resting[key]  # filled, canceled or expired: never looked at again
                continue
            if (
                intent.symbol != trade.symbol
                or intent.exchange != trade.exchange
                or intent.price is None
            ):
                continue
            price = d(trade.price)
            crosses = price <= intent.price if intent.side == "buy" else price >= intent.price
            if not crosses:
                continue
            # the venue's quantity (contracts on a derivative), as the order's amount
            size = trade.amount if trade.contracts is None else trade.contracts
            qty = min(intent.amount - order.filled, d(size))
            if qty <= 0:
                continue
            self._fill(order, qty, intent.price, "maker")
            order.state = (
                OrderState.FILLED if order.filled >= intent.amount else OrderState.PARTIALLY_FILLED
            )
            self._tell(order)
        margin = self.margin
        if margin is None:
            return
        market = (trade.exchange, trade.symbol)
        pos = margin.positions.get(market)
        if pos is not None and pos.qty != 0:  # its liquidation and its last price watched
            if self._mid.keys:  # the market has trades after all
                self._mid.set(market, False)
            self._watch(trade.exchange, trade.symbol, d(trade.price), trade.ts, mark=False)
        elif self._resting or margin.positions:  # another market's expiry may be due
            self._expire_due()

    def _tell(self, order: PaperOrder) -> None:
        if self._listener is not None:
            try:
                self._listener(order.view(self.clock.time()))
            except Exception as exc:  # the listener must not break the hub
                log.error("paper.listener_failed", error=repr(exc))

    def _on_funding(self, event: Funding) -> None:
        if self.margin is None:
            return
        mid = self.market_state.decimal_mid(event.exchange, event.symbol)
        if event.mark_price:
            self._mid.set((event.exchange, event.symbol), False)  # a mark after all
            self._watch(event.exchange, event.symbol, d(event.mark_price), event.ts, mark=True)
        payment = self.margin.on_funding(event, mid if mid else None)
        if payment is not None:
            log.info(
                "paper.funding",
                symbol=event.symbol,
                amount=str(payment.amount),
                currency=payment.currency,
            )

    def _next_seq(self) -> int:
        """The next number of the run's order and trade ids."""
        self._seq += 1
        return self._seq
