"""Positions, cash, PnL and performance statistics, all in ``Decimal`` (quote currency).

A position is signed (negative = short). Fills move it: adding keeps a volume-weighted average
price; reducing realizes ``closed * (price - avg)`` (sign-adjusted). Unrealized PnL is marked
to the book mid. A *round trip* ends when a position returns to zero (or flips); its net PnL
(realized minus every fee paid on the way) feeds the statistics.

Equity = cash + sum(position amount * mark) + priced side balances. Cash moves with every
fill by ``amount * price``; the fee follows its ``fee_currency``:

- quote (or unset): paid from cash (a buy pays ``amount * price + fee``);
- base (Binance buys without BNB): taken from the coins, so a buy of ``amount`` holds
  ``amount - fee`` (a sell gives up ``amount + fee``); valued at the fill price in the fees;
- any other asset (BNB): tracked in ``fee_balances`` (negative = spent), valued in equity and
  in the fees only when ``prices`` knows that asset's quote price.

A leftover smaller than the venue's lot (``sweep_dust``) cannot be sold: it leaves the
position (closing its round trip at that price) and is kept in ``dust`` (valued in equity).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cryptomon.events import Fill
from cryptomon.trading.futures import account_value
from cryptomon.trading.margin import ContractState, TermsLookup
from cryptomon.trading.position import Position, TradeResult, money

_Key = tuple[str, str]

__all__ = ["Portfolio", "Position", "TradeResult", "base_of", "money"]

ZERO = Decimal(0)


# [lo, hi, name]: every ts in [lo, hi) falls on the UTC day ``name`` (the last day asked)
_day_span: list[Any] = [0.0, -1.0, ""]


def utc_day(ts: float) -> str:
    """The UTC day of ``ts`` as ``YYYY-MM-DD`` (what ``datetime.fromtimestamp(ts, UTC)``
    formats). The last day's span is remembered: a ``ts`` well inside it (a millisecond
    from its edges, clear of the microsecond rounding) is not formatted again."""
    lo, hi, name = _day_span
    if lo <= ts < hi:
        return name
    name = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
    start = math.floor(ts / 86400.0) * 86400.0
    if start + 0.001 <= ts < start + 86399.999:
        _day_span[:] = (start + 0.001, start + 86399.999, name)
    return name


def base_of(symbol: str) -> str:
    """``BTC-USDT`` -> ``BTC``."""
    return symbol.rpartition("-")[0] or symbol


@dataclass(slots=True)
class Portfolio:
    """Cash and positions of one account in ``quote`` currency."""

    quote: str
    cash: Decimal
    positions: dict[_Key, Position] = field(default_factory=dict)
    trades: list[TradeResult] = field(default_factory=list)
    equity_curve: deque[tuple[float, Decimal]] = field(
        default_factory=lambda: deque(maxlen=100_000)
    )
    _day: str = ""
    day_start_equity: Decimal = ZERO
    peak_equity: Decimal = ZERO
    max_drawdown: Decimal = ZERO  # fraction of the peak
    fee_balances: dict[str, Decimal] = field(default_factory=dict)  # third-asset fees spent
    dust: dict[str, Decimal] = field(default_factory=dict)  # unsellable leftovers per asset
    prices: dict[str, Decimal] = field(default_factory=dict)  # asset -> quote price seen
    terms: TermsLookup | None = None  # contract terms of perpetuals/futures; None = all spot

    def position(self, exchange: str, symbol: str) -> Position:
        key = (exchange, symbol)
        pos = self.positions.get(key)
        if pos is None:
            terms = self.terms(exchange, symbol) if self.terms is not None else None
            contract = ContractState(terms) if terms is not None else None
            pos = self.positions[key] = Position(
                exchange=exchange, symbol=symbol, contract=contract
            )
        return pos

    def amount(self, exchange: str, symbol: str) -> Decimal:
        pos = self.positions.get((exchange, symbol))
        return pos.amount if pos is not None else ZERO

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.amount != 0]

    def apply_fill(self, fill: Fill) -> TradeResult | None:
        """Move cash, the position and fee balances by one fill (dedup is the caller's job)."""
        pos = self.position(fill.exchange, fill.symbol)
        if pos.contract is not None:
            return self._apply_contract_fill(pos, pos.contract, fill)
        ccy = fill.fee_currency or self.quote
        amount, fee = fill.amount, fill.fee
        notional = amount * fill.price
        buy = fill.side == "buy"
        if ccy == self.quote:
            fee_value, cash_fee = fee, fee
        elif ccy == base_of(fill.symbol):  # taken from the coins traded
            fee_value, cash_fee = fee * fill.price, ZERO
            amount = amount - fee if buy else amount + fee
        else:  # a third asset (BNB): its own balance, valued when its price is known
            self.fee_balances[ccy] = self.fee_balances.get(ccy, ZERO) - fee
            price = self.prices.get(ccy)
            fee_value, cash_fee = (fee * price if price is not None else ZERO), ZERO
        self.cash += -notional - cash_fee if buy else notional - cash_fee
        if pos.mark is None:
            pos.mark = fill.price
        result = pos.apply(fill.side, amount, fill.price, fee_value, fill.ts)
        if result is not None:
            self.trades.append(result)
        self.snapshot(fill.ts)
        return result

    def _apply_contract_fill(
        self, pos: Position, contract: ContractState, fill: Fill
    ) -> TradeResult | None:
        """A contract fill moves the cash by its realized PnL and fee only (margin is not
        spent), converted from the settle currency at the fill price."""
        ccy = fill.fee_currency or contract.settle
        fee = fill.fee
        if ccy != contract.settle:  # a quote fee on a coin-settled contract, or a third asset
            quote_fee = fee if ccy == self.quote else fee * self.prices.get(ccy, ZERO)
            fee = contract.from_quote(quote_fee, fill.price, self.quote)
        before = pos.realized_pnl
        if pos.mark is None:
            pos.mark = fill.price
        result = pos.apply(fill.side, fill.amount, fill.price, fee, fill.ts)
        realized = pos.realized_pnl - before
        self.cash += contract.to_quote(realized - fee, fill.price, self.quote)
        quote_realized = contract.to_quote(realized, fill.price, self.quote)
        quote_fee = contract.to_quote(fee, fill.price, self.quote)
        pos.quote_realized += quote_realized
        pos.quote_fees += quote_fee
        pos.quote_trip += quote_realized - quote_fee
        if result is not None:  # the fill's fee goes with the trip it closed, as in its pnl
            result = replace(result, quote_pnl=pos.quote_trip)
            pos.quote_trip = ZERO
            self.trades.append(result)
        self.snapshot(fill.ts)
        return result

    def apply_funding(
        self, exchange: str, symbol: str, payment: Decimal, price: Decimal, ts: float
    ) -> Position | None:
        """A funding payment of a contract position (settle currency, negative = paid): into
        the open trip when it held ``ts``, else (the position closed, or closed and opened
        again, since ``ts``) into the realized PnL and the round trip that held it."""
        pos = self.positions.get((exchange, symbol))
        if pos is None or pos.contract is None:
            return None
        quote = pos.contract.to_quote(payment, price, self.quote)
        pos.quote_realized += quote
        if pos.receive_funding(payment, ts):
            pos.quote_trip += quote
        else:
            self._amend_trip(pos, payment, quote, ts)
        self.cash += quote
        self.snapshot(ts)
        return pos

    def _amend_trip(self, pos: Position, payment: Decimal, quote: Decimal, ts: float) -> None:
        """A payment booked after its position closed goes to the round trip that held it:
        the last one of the market opened at or before ``ts`` (``quote``: the payment in the
        portfolio's quote)."""
        i = self.trip_at(pos.exchange, pos.symbol, ts)
        if i is not None:
            trip = self.trades[i]
            self.trades[i] = replace(trip, pnl=trip.pnl + payment, quote_pnl=trip.net + quote)

    def trip_at(self, exchange: str, symbol: str, ts: float) -> int | None:
        """The index in :attr:`trades` of the last round trip of a market opened at or before
        ``ts`` (None: no trip of it had opened by then)."""
        for i in range(len(self.trades) - 1, -1, -1):
            trip = self.trades[i]
            if (trip.exchange, trip.symbol) == (exchange, symbol) and trip.opened <= ts:
                return i
        return None

    def first_open_since(self, exchange: str, symbol: str, start: int) -> float | None:
        """The earliest opening time of the market's round trips closed since :attr:`trades`
        held ``start`` trips (None: none was). By position in the list, not by close time: a
        fill learnt late (the venue's older trade time) closes a trip with an older ``closed``
        after newer ones, so the list is not in close-time order."""
        first: float | None = None
        for trip in self.trades[start:]:
            if (trip.exchange, trip.symbol) == (exchange, symbol):
                first = trip.opened if first is None else min(first, trip.opened)
        return first

    def sweep_dust(
        self, exchange: str, symbol: str, step: Decimal, price: Decimal, ts: float
    ) -> TradeResult | None:
        """Move a leftover below ``step`` (the lot) out of the position into ``dust``."""
        pos = self.positions.get((exchange, symbol))
        if pos is None or pos.amount == 0 or abs(pos.amount) >= step:
            return None
        left = pos.amount
        result = pos.apply("sell" if left > 0 else "buy", abs(left), price, ZERO, ts)
        asset = base_of(symbol)
        self.dust[asset] = self.dust.get(asset, ZERO) + left
        self.prices.setdefault(asset, price)
        if result is not None:
            self.trades.append(result)
        return result

    def rebase_cash(self, cash: Decimal) -> Decimal:
        """Set the cash to a venue's balance. The difference is not PnL (a deposit, or a
        live engine starting without knowing the account): the equity history, the day's
        start and the drawdown move with it. Returns the difference."""
        delta = cash - self.cash
        if delta == 0:
            return delta
        self.cash = cash
        self.equity_curve = deque(
            ((t, e + delta) for t, e in self.equity_curve), maxlen=self.equity_curve.maxlen
        )
        if self._day:
            self.day_start_equity += delta
        self.peak_equity = ZERO
        self.max_drawdown = ZERO
        for _, eq in self.equity_curve:
            self.peak_equity = max(self.peak_equity, eq)
            if self.peak_equity > 0:
                dd = (self.peak_equity - eq) / self.peak_equity
                self.max_drawdown = max(self.max_drawdown, dd)
        return delta

    def observe_price(self, symbol: str, price: Decimal) -> None:
        """Remember an asset's quote price (values fee balances and dust)."""
        base, _, quote = symbol.rpartition("-")
        if base and quote == self.quote:
            self.prices[base] = price

    def mark(self, exchange: str, symbol: str, price: Decimal) -> Position | None:
        pos = self.positions.get((exchange, symbol))
        if pos is not None:
            pos.mark = price
        return pos

    def exposure(self, exchange: str | None = None, symbol: str | None = None) -> Decimal:
        """The positions' value in the quote (an inverse contract's coin value when the
        account is kept in that coin)."""
        return sum(
            (
                self._exposure_of(p)
                for p in self.positions.values()
                if (exchange is None or p.exchange == exchange)
                and (symbol is None or p.symbol == symbol)
            ),
            ZERO,
        )

    def _exposure_of(self, pos: Position) -> Decimal:
        contract, price = pos.contract, pos.mark
        if contract is None or pos.amount == 0:
            return pos.notional()
        price = price if price is not None else contract.entry
        return account_value(contract.terms.spec, pos.amount, price, self.quote) if price else ZERO

    @property
    def equity(self) -> Decimal:
        held = ZERO  # added in the positions' order, as sum(..., ZERO) adds them
        for p in self.positions.values():
            held = held + self._held_value(p)
        side = ZERO
        if self.fee_balances or self.dust:
            side = sum(
                (
                    amount * self.prices[asset]
                    for balances in (self.fee_balances, self.dust)
                    for asset, amount in balances.items()
                    if asset in self.prices
                ),
                ZERO,
            )
        return self.cash + held + side

    def contract_unrealized(self, currency: str) -> Decimal:
        """Unrealized PnL of the open contracts settled in ``currency`` (settle units)."""
        return sum(
            (
                p.unrealized_pnl
                for p in self.positions.values()
                if p.contract is not None and p.amount != 0 and p.contract.settle == currency
            ),
            ZERO,
        )

    def _held_value(self, pos: Position) -> Decimal:
        """What a position adds to equity: spot coins at the mark; a contract its unrealized
        PnL (its margin is still in the cash)."""
        if pos.contract is not None:
            return pos.contract.to_quote(pos.unrealized_pnl, pos.mark, self.quote)
        return pos.amount * pos.mark if pos.mark is not None else pos.cost

    def _unrealized(self, pos: Position) -> Decimal:
        """A position's unrealized PnL in the quote (a contract's converted at its mark)."""
        if pos.contract is not None:
            return pos.contract.to_quote(pos.unrealized_pnl, pos.mark, self.quote)
        return pos.unrealized_pnl

    @property
    def day(self) -> str:
        """The UTC day (``YYYY-MM-DD``) the last snapshot rolled to ("" before the first)."""
        return self._day

    def snapshot(self, ts: float) -> Decimal:
        """Record equity at ``ts``; rolls the UTC day forward (an older ``ts``, a late fill's
        venue time, never moves it back) and tracks the drawdown."""
        eq = self.equity
        day = utc_day(ts)
        if day > self._day:  # never back: a late fill stamped yesterday is booked today
            self._day = day
            self.day_start_equity = eq
        self.equity_curve.append((ts, eq))
        self.peak_equity = max(self.peak_equity, eq)
        if self.peak_equity > 0:
            self.max_drawdown = max(self.max_drawdown, (self.peak_equity - eq) / self.peak_equity)
        return eq

    def resume_day(self, ts: float, start_equity: Decimal) -> None:
        """After a restart: the UTC day of ``ts`` started at ``start_equity`` (its first stored
        snapshot), not at the equity the replayed fills give."""
        self.snapshot(ts)
        self.day_start_equity = start_equity

    def daily_pnl(self, ts: float, equity: Decimal | None = None) -> Decimal:
        """Equity change since the start of the UTC day of ``ts``; ``equity`` is the current
        :attr:`equity` when the caller has just computed it (not computed again)."""
        if utc_day(ts) > self._day:
            self.snapshot(ts)
        return (self.equity if equity is None else equity) - self.day_start_equity

    def stats(self) -> dict[str, Any]:
        """Trades, win rate, average win/loss, profit factor, max drawdown, Sharpe, PnL."""
        wins = [t.net for t in self.trades if t.net > 0]
        losses = [t.net for t in self.trades if t.net <= 0]
        gross_win = sum(wins, ZERO)
        gross_loss = -sum(losses, ZERO)
        n = len(self.trades)
        held = list(self.positions.values())
        rets = [t.ret for t in self.trades]
        sharpe: float | None = None
        if n >= 2:
            mean = sum(rets) / n
            var = sum((r - mean) ** 2 for r in rets) / (n - 1)
            sharpe = mean / math.sqrt(var) * math.sqrt(n) if var > 0 else None
        return {
            "trades": n,
            "wins": len(wins),
            "losses": len(losses),
            "win_rate": len(wins) / n if n else None,
            "avg_win": money(gross_win / len(wins)) if wins else None,
            "avg_loss": money(-gross_loss / len(losses)) if losses else None,
            "profit_factor": float(gross_win / gross_loss) if gross_loss > 0 else None,
            "net_pnl": money(sum((t.net for t in self.trades), ZERO)),
            "realized_pnl": money(sum((_quote_realized(p) for p in held), ZERO)),
            "unrealized_pnl": money(sum((self._unrealized(p) for p in held), ZERO)),
            "fees": money(sum((_quote_fees(p) for p in held), ZERO)),
            "max_drawdown": float(self.max_drawdown),
            "sharpe": sharpe,
            "equity": money(self.equity),
            "cash": money(self.cash),
            "quote_currency": self.quote,
            "fee_balances": {k: money(v) for k, v in sorted(self.fee_balances.items())},
            "dust": {k: money(v) for k, v in sorted(self.dust.items())},
            "open_positions": len(self.open_positions()),
        }


# what stats() sums, in the portfolio's quote (a contract's settle-currency amounts converted
# when they were booked)


def _quote_realized(pos: Position) -> Decimal:
    return pos.quote_realized if pos.contract is not None else pos.realized_pnl


def _quote_fees(pos: Position) -> Decimal:
    return pos.quote_fees if pos.contract is not None else pos.fees
