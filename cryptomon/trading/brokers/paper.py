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

Contract positions are closed by the venue itself, as a real one would (the engine hears of it
through :meth:`set_forced_listener`: the venue's order, its fill and why):

- liquidation: when the mark (a ``Funding`` event's ``mark_price``; on a market whose feed
  announces none, the public trades; on a market that has shown neither, such as Gate.io
  futures subscribed without funding and trades, the book mid of its ``BookTop``s, until
  the first mark or trade) reaches the position's liquidation estimate
  (:meth:`~cryptomon.trading.futures.ContractTerms.liquidation`, the one risk checks the
  stop-loss against, isolated and cross alike), the position's resting orders are canceled and
  it is closed at that estimate, even when the mark jumped past it, losing its whole initial
  margin (the rest of the margin is the liquidation fee);
- expiry: at the first event or engine poll at or after a dated future's expiry, its resting
  orders are canceled and its position is settled at the last price seen before the expiry
  (mark, else trade; the entry when none), without a fee, stamped at the expiry; orders on an
  expired future are refused.

The spot account (funds, settlement per currency) is :mod:`~cryptomon.trading.brokers.
paper_funds`, the order record and book levels :mod:`~cryptomon.trading.brokers.paper_book`,
contract margin :mod:`~cryptomon.trading.brokers.paper_margin`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

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
from cryptomon.trading.brokers.paper_funds import check_spot_funds, settle_spot
from cryptomon.trading.brokers.paper_margin import MarginBook, PaperContract
from cryptomon.trading.brokers.paper_mid import BookMidWatch
from cryptomon.trading.margin import TermsLookup
from cryptomon.trading.sizing import spec_problem

if TYPE_CHECKING:
    from cryptomon.config import PaperBrokerConfig

log = structlog.get_logger()
ZERO = Decimal(0)
ForcedListener = Callable[[OrderIntent, BrokerOrder, str], None]
"""Told of an order the venue placed itself (a liquidation, a settlement): its intent, its
filled view and why."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        self._forced_listener: ForcedListener | None = None
        self._expiries: dict[tuple[str, str], float | None] = {}
        self._sub = hub.subscribe(Trade, self._on_trade, name="paper-broker.trade")
        # perpetuals and futures: margin, shorts, funding (paper_margin.py)
        self.margin = MarginBook(terms=terms, balances=self.balances) if terms else None
        self._funding_sub = (
            hub.subscribe(Funding, self._on_funding, name="paper-broker.funding")
            if self.margin is not None
            else None
        )
        # contract markets with an open position that have shown neither a mark nor a trade:
        # their liquidation watches the book mid (paper_mid.py)
        self._mid = BookMidWatch(hub=hub, on_mid=self._on_mid)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._sub.close()
        if self._funding_sub is not None:
            self._funding_sub.close()
        self._mid.close()

    def set_listener(self, callback: Callable[[BrokerOrder], None] | None) -> None:
        """Called with the order after each fill that happens outside ``place_order``."""
        self._listener = callback

    def set_forced_listener(self, callback: ForcedListener | None) -> None:
        """Called with every order the venue places itself (liquidation, settlement)."""
        self._forced_listener = callback

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
            return self._view(existing)
        self._exchanges.add(intent.exchange)
        if self.margin is not None:
            self._expire_due()
            expiry = self._expiry(intent.exchange, intent.symbol)
            if expiry is not None and self.clock.time() >= expiry:
                raise OrderRejectedError(
                    intent.client_order_id,
                    f"{intent.symbol} expired at {_iso(expiry)}: a dated future takes no "
                    "orders after its expiry",
                )
        if intent.type not in ("market", "limit"):
            raise OrderRejectedError(
                intent.client_order_id, f"paper supports market and limit orders, not {intent.type}"
            )
        if intent.type == "limit" and intent.price is None:
            raise OrderRejectedError(intent.client_order_id, "limit order without price")
        self._check_funds(intent, self._check_spec(intent))
        self._seq += 1
        order = PaperOrder(intent, f"paper-{self._run}-{self._seq}")
        self._orders[intent.client_order_id] = order
        self._take(order, limit=intent.price if intent.type == "limit" else None)
        if intent.type == "limit":
            self._resting[intent.client_order_id] = order
        if intent.type == "market":  # immediate-or-cancel: what the book cannot fill expires
            full = order.filled >= intent.amount
            order.state = OrderState.FILLED if full else OrderState.EXPIRED
        return self._view(order)

    async def cancel_order(self, symbol: str, client_order_id: str) -> BrokerOrder:
        order = self._orders.get(client_order_id)
        if order is None:
            raise OrderRejectedError(client_order_id, "unknown order")
        if order.state in (OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED):
            order.state = OrderState.CANCELED
        return self._view(order)

    async def fetch_order(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        self._expire_due()
        order = self._orders.get(client_order_id)
        return None if order is None else self._view(order)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        self._expire_due()
        return [
            self._view(o)
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
            mid = self.market_state.mid(intent.exchange, intent.symbol)
            touch = None if top is None else (top.ask if intent.side == "buy" else top.bid)
            price = d(touch) if touch else (d(mid) if mid else None)
        if price is None:
            raise OrderRejectedError(intent.client_order_id, "no market price")
        return price

    def _check_spec(self, intent: OrderIntent) -> Decimal | None:
        """Like a venue: an order that opens or grows a position is a whole number of the
        instrument's lots, at least its minimum quantity and order value (exits are not held
        to the minimums: a venue lets a position close). Returns the order's price when the
        check needed it (None when it did not look)."""
        spec = self.market_state.spec(intent.exchange, intent.symbol)
        if spec is None or intent.reduce_only:
            return None
        price = self._price(intent)
        problem = spec_problem(spec, intent.amount, price)
        if problem is not None:
            raise OrderRejectedError(intent.client_order_id, problem[1])
        return price

    def _check_funds(self, intent: OrderIntent, price: Decimal | None = None) -> None:
        """The account can pay for ``intent``; ``price`` is its price when already known
        (looked up here only when the check needs it)."""

        def priced() -> Decimal:
            return price if price is not None else self._price(intent)

        terms = self.margin.terms(intent.exchange, intent.symbol) if self.margin else None
        if terms is not None and self.margin is not None:
            self.margin.check(intent, terms, priced(), d(self.config.taker_fee))
            return
        buy = intent.side == "buy"
        walked = self._walk_cost(intent) if buy and intent.type == "market" else None
        check_spot_funds(
            self.balances,
            intent,
            priced() if buy and walked is None else ZERO,  # a spot sell needs no price
            taker_fee=d(self.config.taker_fee),
            allow_short=self.allow_short,
            cost=walked,
        )

    def _walk_cost(self, intent: OrderIntent) -> Decimal | None:
        """What a market order pays when it walks the book as :meth:`_take` will (what the
        book cannot fill expires and costs nothing); None without a book."""
        cost, left = ZERO, intent.amount
        for price, size in book_levels(self.market_state, intent):
            qty = min(left, size)
            cost += qty * price
            left -= qty
            if left <= 0:
                break
        return cost if cost > 0 else None

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
                self._listener(self._view(order))
            except Exception as exc:  # the listener must not break the hub
                log.error("paper.listener_failed", error=repr(exc))

    def _on_funding(self, event: Funding) -> None:
        if self.margin is None:
            return
        mid = self.market_state.mid(event.exchange, event.symbol)
        if event.mark_price:
            self._mid.set((event.exchange, event.symbol), False)  # a mark after all
            self._watch(event.exchange, event.symbol, d(event.mark_price), event.ts, mark=True)
        payment = self.margin.on_funding(event, d(mid) if mid else None)
        if payment is not None:
            log.info(
                "paper.funding",
                symbol=event.symbol,
                amount=str(payment.amount),
                currency=payment.currency,
            )

    def _on_mid(self, exchange: str, symbol: str, mid: Decimal, ts: float) -> None:
        """The book mid of a market whose position has no mark or trade to watch."""
        self._watch(exchange, symbol, mid, ts, mark=False, what="book mid")

    def _track_mid(self, key: tuple[str, str]) -> None:
        """After a position of ``key`` changed: its book mid is watched while it is open on a
        market that has shown neither a mark nor a trade."""
        margin = self.margin
        if margin is None:
            return
        pos = margin.positions.get(key)
        self._mid.set(
            key,
            pos is not None
            and pos.qty != 0
            and not margin.has_mark(key)
            and not self.market_state.trades(key[0], key[1], limit=1),
        )

    # ------------------------------------------------------------------ forced closes

    def _expiry(self, exchange: str, symbol: str) -> float | None:
        """The market's expiry (a dated future), None when it has none."""
        key = (exchange, symbol)
        if key in self._expiries:
            return self._expiries[key]
        terms = self.margin.terms(exchange, symbol) if self.margin is not None else None
        if terms is None:  # not a contract, or its spec not known yet: asked again
            return None
        self._expiries[key] = terms.spec.expiry
        return terms.spec.expiry

    def _watch(
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
        self._expire_due()
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
        self._force(
            key, pos, at, fee=fee, origin="liquidation", reason=reason, ts=self.clock.time()
        )

    def _expire_due(self) -> None:
        """Settle the dated futures whose expiry has passed and cancel their resting orders."""
        margin = self.margin
        if margin is None:
            return
        now = self.clock.time()
        for key, pos, price in margin.expired(now):
            expiry = pos.terms.spec.expiry or now
            reason = (
                f"settlement: {key[1]} expired at {_iso(expiry)}; the position "
                f"{pos.qty} was settled at {price}, the last price before the expiry"
            )
            self._force(key, pos, price, fee=ZERO, origin="settlement", reason=reason, ts=expiry)
        for order in list(self._resting.values()):
            intent = order.intent
            ends = self._expiry(intent.exchange, intent.symbol)
            if ends is not None and now >= ends and self._cancel_open(order):
                self._tell(order)

    @staticmethod
    def _cancel_open(order: PaperOrder) -> bool:
        if order.state in (OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED):
            order.state = OrderState.CANCELED
            return True
        return False

    def _force(
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
            if i.exchange == exchange and i.symbol == symbol and self._cancel_open(order):
                self._tell(order)
        qty, currency = self.margin.force_close(key, price, fee, ts)
        self._track_mid(key)
        self._seq += 1
        intent = OrderIntent(
            exchange=exchange,
            symbol=symbol,
            ts=ts,
            ts_recv=ts,
            client_order_id=f"paper-{origin}-{self._run}-{self._seq}",
            side="sell" if qty > 0 else "buy",
            type="market",
            amount=abs(qty),
            reduce_only=True,
            origin=origin,
        )
        order = PaperOrder(intent, f"paper-{self._run}-{self._seq}")
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
        if self._forced_listener is not None:
            try:
                self._forced_listener(intent, self._view(order), reason)
            except Exception as exc:  # the listener must not break the hub
                log.error("paper.listener_failed", error=repr(exc))

    def _view(self, order: PaperOrder) -> BrokerOrder:
        intent = order.intent
        filled = order.filled
        new = filled - order.prior
        cost = order.cost
        return BrokerOrder(
            client_order_id=intent.client_order_id,
            exchange=intent.exchange,
            symbol=intent.symbol,
            state=order.state,
            side=intent.side,
            type=intent.type,
            amount=intent.amount,
            filled=filled,
            price=intent.price,
            avg_price=cost / new if new > 0 else None,  # of the fills since the restart
            exchange_order_id=order.exchange_order_id,
            fills=tuple(order.fills),
            ts=self.clock.time(),
        )
