"""A matching engine for the simulator's Binance spot trading endpoints.

It trades against a :class:`BookSource` (the simulated market's book, best-first ``(price,
size)`` levels): market orders walk the book and consume its liquidity
(:meth:`BookSource.take`); limit orders that cross take what they can and rest; resting limit
orders fill (maker, at their price) when the simulated market moves through them
(:meth:`MatchingEngine.on_market`, called after every market step); ``STOP_LOSS`` /
``TAKE_PROFIT`` orders trigger when the price they would execute at (best bid for sells, best
ask for buys) crosses their stop price. Balances are kept per asset (``free``/``locked``); fees
are charged at the maker or taker rate in the quote asset, or -- with ``buy_fee_in_base``, like
Binance without BNB -- a buy's fee in the base asset it bought (the account receives
``qty - fee``).

Every accepted order and every fill is recorded (``orders``, ``fills``), and every reuse of a
client order id is rejected like Binance does (``-2010 Duplicate order sent.``) and counted in
``duplicate_client_order_ids`` so tests can assert that nothing was sent twice.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from cryptomon.sim.liquidity import BookSource, exact_fills, to_decimal
from cryptomon.sim.records import (
    ORDER_TYPES,
    ZERO,
    Balance,
    SimError,
    SimFill,
    SimOrder,
    SymbolRules,
)

_COMMISSION = Decimal("1E-8")
_TRIGGERED = {"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"}
_RESTING = {"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"}
_OPEN = {"NEW", "PARTIALLY_FILLED"}


@dataclass
class MatchingEngine:
    """Orders, fills and balances of one simulated account on one simulated market."""

    books: BookSource
    symbols: dict[str, SymbolRules]
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")
    buy_fee_in_base: bool = False  # a buy's commission in the base asset (Binance, no BNB)
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    balances: dict[str, Balance] = field(default_factory=dict)
    orders: dict[int, SimOrder] = field(default_factory=dict)
    fills: list[SimFill] = field(default_factory=list)
    duplicate_client_order_ids: int = 0
    paused: bool = False  # fault switch: resting orders neither trigger nor fill while set
    rejected: int = 0
    last_price: dict[str, Decimal] = field(default_factory=dict)
    _by_client: dict[str, int] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _trade_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------------ account

    def deposit(self, asset: str, amount: Decimal) -> None:
        self.balances.setdefault(asset, Balance()).free += amount

    def balance(self, asset: str) -> Balance:
        return self.balances.setdefault(asset, Balance())

    def spec(self, symbol: str) -> SymbolRules:
        try:
            return self.symbols[symbol]
        except KeyError:
            raise SimError(400, -1121, "Invalid symbol.") from None

    # ------------------------------------------------------------------ queries

    def order(self, symbol: str, *, order_id: int | None, client_order_id: str | None) -> SimOrder:
        self.spec(symbol)
        oid = order_id if order_id is not None else self._by_client.get(client_order_id or "")
        found = self.orders.get(oid) if oid is not None else None
        if found is None or found.symbol != symbol:
            raise SimError(400, -2013, "Order does not exist.")
        return found

    def open_orders(self, symbol: str | None = None) -> list[SimOrder]:
        return [
            o
            for o in self.orders.values()
            if o.status in _OPEN and (symbol is None or o.symbol == symbol)
        ]

    def client_order_ids(self) -> list[str]:
        """Every accepted client order id, in acceptance order."""
        return [o.client_order_id for o in self.orders.values()]

    def position(self, asset: str) -> Decimal:
        bal = self.balance(asset)
        return bal.free + bal.locked

    # ------------------------------------------------------------------ placement

    def place(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        quantity: Decimal,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        client_order_id: str,
        time_in_force: str = "GTC",
    ) -> tuple[SimOrder, list[SimFill]]:
        """Validate, accept and match an order; raise :class:`SimError` when refused."""
        spec = self.spec(symbol)
        if client_order_id in self._by_client:
            self.duplicate_client_order_ids += 1
            raise SimError(400, -2010, "Duplicate order sent.")
        try:
            self._validate(
                spec=spec,
                side=side,
                type=type,
                quantity=quantity,
                price=price,
                stop_price=stop_price,
            )
        except SimError:
            self.rejected += 1
            raise
        now = self.now_ms()
        order = SimOrder(
            order_id=next(self._ids),
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=type,
            time_in_force=time_in_force
            if type not in {"MARKET", "STOP_LOSS", "TAKE_PROFIT"}
            else "GTC",
            orig_qty=quantity,
            price=price or ZERO,
            stop_price=stop_price or ZERO,
            time_ms=now,
            update_ms=now,
            working=type not in _TRIGGERED,
        )
        self._lock(spec, order)
        self.orders[order.order_id] = order
        self._by_client[client_order_id] = order.order_id
        before = len(self.fills)
        if order.working:
            self._match_on_entry(spec, order)
        return order, self.fills[before:]

    def _validate(
        self,
        *,
        spec: SymbolRules,
        side: str,
        type: str,
        quantity: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
    ) -> None:
        if side not in {"BUY", "SELL"}:
            raise SimError(400, -1100, "Illegal characters found in parameter 'side'.")
        if type not in ORDER_TYPES:
            raise SimError(400, -1116, "Invalid orderType.")
        needs_price = type in {"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"}
        if needs_price and price is None:
            raise SimError(400, -1102, "Mandatory parameter 'price' was not sent.")
        if type in _TRIGGERED and stop_price is None:
            raise SimError(400, -1102, "Mandatory parameter 'stopPrice' was not sent.")
        if quantity < spec.min_qty or quantity > spec.max_qty or quantity % spec.step_size:
            raise SimError(400, -1013, "Filter failure: LOT_SIZE")
        for p in (price if needs_price else None, stop_price):
            if p is not None and (p < spec.min_price or p > spec.max_price or p % spec.tick_size):
                raise SimError(400, -1013, "Filter failure: PRICE_FILTER")
        ref = price if needs_price else stop_price
        if ref is None:
            ref = self._reference_price(spec.symbol, side)
        if ref is not None and quantity * ref < spec.min_notional:
            raise SimError(400, -1013, "Filter failure: NOTIONAL")

    def _reference_price(self, symbol: str, side: str) -> Decimal | None:
        bids, asks = self.books.book(symbol)
        levels = asks if side == "BUY" else bids
        if levels:
            return to_decimal(levels[0][0])
        return self.last_price.get(symbol)

    def _lock(self, spec: SymbolRules, order: SimOrder) -> None:
        """Reserve what the order may spend; refuse it when the account cannot pay."""
        if order.side == "SELL":
            need, asset = order.orig_qty, spec.base
        elif order.type in {"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"}:
            need, asset = order.orig_qty * order.price * (1 + self.taker_fee), spec.quote
        elif order.type == "MARKET":
            cost = self._walk_cost(spec.symbol, order.orig_qty)
            need, asset = cost * (1 + self.taker_fee), spec.quote
        else:  # buy stop/take-profit market: paid when triggered
            return
        bal = self.balance(asset)
        if bal.free < need:
            self.rejected += 1
            raise SimError(400, -2010, "Account has insufficient balance for requested action.")
        bal.free -= need
        bal.locked += need
        order.locked = need

    def _walk_cost(self, symbol: str, qty: Decimal) -> Decimal:
        _, asks = self.books.book(symbol)
        cost, left = ZERO, qty
        for p, s in asks:
            take = min(left, to_decimal(s))
            cost += take * to_decimal(p)
            left -= take
            if left <= 0:
                break
        return cost

    # ------------------------------------------------------------------ matching

    def _match_on_entry(self, spec: SymbolRules, order: SimOrder) -> None:
        """Take what the book offers up to the order's limit (taker), then rest or end."""
        market = order.type in {"MARKET", "STOP_LOSS", "TAKE_PROFIT"}
        limit = None if market else order.price
        takeable = self._takeable(order, limit)
        if order.type == "LIMIT_MAKER" and takeable > 0:
            self._finish(spec, order, "EXPIRED")
            return
        qty = min(order.remaining, takeable).quantize(spec.step_size, rounding=ROUND_DOWN)
        if qty > 0:
            taken = self.books.take(order.symbol, order.side.lower(), float(qty))
            for price, size in exact_fills(taken, qty, spec.step_size):
                self._execute(spec, order, price, size, maker=False)
        if order.remaining <= 0:
            self._finish(spec, order, "FILLED")
        elif market or order.time_in_force in {"IOC", "FOK"}:
            self._finish(spec, order, "EXPIRED")

    def _takeable(self, order: SimOrder, limit: Decimal | None) -> Decimal:
        """Liquidity on the opposite side at prices no worse than ``limit``."""
        bids, asks = self.books.book(order.symbol)
        total = ZERO
        for p, s in asks if order.side == "BUY" else bids:
            price = to_decimal(p)
            if limit is not None and (
                (order.side == "BUY" and price > limit) or (order.side == "SELL" and price < limit)
            ):
                break
            total += to_decimal(s)
        return total

    def on_market(self, symbol: str) -> list[SimFill]:
        """The simulated market moved: trigger stops whose price the book crossed, and fill
        resting limit orders the book now trades through (at their limit price, maker).
        Returns the new fills."""
        spec = self.symbols.get(symbol)
        if spec is None or self.paused:
            return []
        bids, asks = self.books.book(symbol)
        if not bids or not asks:
            return []
        bid, ask = to_decimal(bids[0][0]), to_decimal(asks[0][0])
        before = len(self.fills)
        for order in sorted(self.open_orders(symbol), key=lambda o: o.order_id):
            if order.working:
                continue
            px = bid if order.side == "SELL" else ask
            if self._triggered(order, px):
                order.working = True
                order.update_ms = self.now_ms()
                if order.type in {"STOP_LOSS", "TAKE_PROFIT"} and order.side == "BUY":
                    self._lock_triggered_buy(spec, order)
                    if order.status not in _OPEN:
                        continue
                self._match_on_entry(spec, order)
        for order in sorted(self.open_orders(symbol), key=lambda o: o.order_id):
            if not order.working or order.type not in _RESTING:
                continue
            crossing = self._takeable(order, order.price)
            qty = min(order.remaining, crossing).quantize(spec.step_size, rounding=ROUND_DOWN)
            if qty <= 0:
                continue
            self.books.take(symbol, order.side.lower(), float(qty))
            self._execute(spec, order, order.price, qty, maker=True)
            if order.remaining <= 0:
                self._finish(spec, order, "FILLED")
        if before != len(self.fills):
            self.last_price[symbol] = self.fills[-1].price
        return self.fills[before:]

    def on_market_all(self) -> list[SimFill]:
        """:meth:`on_market` for every symbol with open orders."""
        out: list[SimFill] = []
        for symbol in sorted({o.symbol for o in self.open_orders()}):
            out.extend(self.on_market(symbol))
        return out

    @staticmethod
    def _triggered(order: SimOrder, px: Decimal) -> bool:
        stop_loss = order.type.startswith("STOP_LOSS")
        if order.side == "SELL":
            return px <= order.stop_price if stop_loss else px >= order.stop_price
        return px >= order.stop_price if stop_loss else px <= order.stop_price

    def _lock_triggered_buy(self, spec: SymbolRules, order: SimOrder) -> None:
        need = self._walk_cost(spec.symbol, order.orig_qty) * (1 + self.taker_fee)
        bal = self.balance(spec.quote)
        if bal.free < need:
            self._finish(spec, order, "EXPIRED")
            return
        bal.free -= need
        bal.locked += need
        order.locked = need

    def _execute(
        self, spec: SymbolRules, order: SimOrder, price: Decimal, qty: Decimal, *, maker: bool
    ) -> None:
        quote_qty = price * qty
        in_base = self.buy_fee_in_base and order.side == "BUY"
        # the venue charges (and reports) the commission at 8 decimals
        fee = (
            (qty if in_base else quote_qty) * (self.maker_fee if maker else self.taker_fee)
        ).quantize(_COMMISSION, rounding=ROUND_HALF_UP)
        base, quote = self.balance(spec.base), self.balance(spec.quote)
        if order.side == "BUY":
            spend = quote_qty if in_base else quote_qty + fee
            quote.locked -= spend
            order.locked -= spend
            base.free += qty - fee if in_base else qty
        else:
            base.locked -= qty
            order.locked -= qty
            quote.free += quote_qty - fee
        order.executed_qty += qty
        order.cumm_quote += quote_qty
        order.update_ms = self.now_ms()
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        self.last_price[spec.symbol] = price
        self.fills.append(
            SimFill(
                trade_id=next(self._trade_ids),
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                price=price,
                qty=qty,
                commission=fee,
                commission_asset=spec.base if in_base else spec.quote,
                time_ms=order.update_ms,
                is_maker=maker,
            )
        )

    def _finish(self, spec: SymbolRules, order: SimOrder, status: str) -> None:
        """Terminal state: release whatever the order still has locked."""
        order.status = status
        order.update_ms = self.now_ms()
        if order.locked:
            asset = spec.quote if order.side == "BUY" else spec.base
            bal = self.balance(asset)
            bal.locked -= order.locked
            bal.free += order.locked
            order.locked = ZERO

    def cancel(self, symbol: str, *, order_id: int | None, client_order_id: str | None) -> SimOrder:
        """Cancel an open order; ``-2011 Unknown order sent.`` when it is not open."""
        self.spec(symbol)
        try:
            order = self.order(symbol, order_id=order_id, client_order_id=client_order_id)
        except SimError:
            raise SimError(400, -2011, "Unknown order sent.") from None
        if order.status not in _OPEN:
            raise SimError(400, -2011, "Unknown order sent.")
        self._finish(self.spec(symbol), order, "CANCELED")
        return order
