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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cryptomon.events import Fill, PositionUpdate

ZERO = Decimal(0)


def base_of(symbol: str) -> str:
    """``BTC-USDT`` -> ``BTC``."""
    return symbol.rpartition("-")[0] or symbol


def money(value: Decimal) -> str:
    """A Decimal as a plain string without exponent or trailing zeros (``1E+2`` -> ``100``)."""
    return f"{value.normalize():f}"


_BASIS_Q = Decimal("1e-12")  # cost basis removed on a partial close: exact sums afterwards
_Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class TradeResult:
    """One closed round trip."""

    exchange: str
    symbol: str
    side: str  # "long" or "short"
    opened: float
    closed: float
    entry_notional: Decimal
    pnl: Decimal  # realized minus fees

    @property
    def ret(self) -> float:
        return float(self.pnl / self.entry_notional) if self.entry_notional else 0.0


@dataclass(slots=True)
class Position:
    """One market's position. ``cost`` is the signed cost basis (amount * entry prices), so
    unrealized PnL ``amount * mark - cost`` is exact; ``avg_price`` = cost / amount."""

    exchange: str
    symbol: str
    amount: Decimal = ZERO
    cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    mark: Decimal | None = None
    opened: float = 0.0
    updated: float = 0.0
    # current round trip
    trip_pnl: Decimal = ZERO
    trip_fees: Decimal = ZERO
    trip_notional: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal:
        return self.cost / self.amount if self.amount != 0 else ZERO

    @property
    def unrealized_pnl(self) -> Decimal:
        if self.amount == 0 or self.mark is None:
            return ZERO
        return self.amount * self.mark - self.cost

    def notional(self, price: Decimal | None = None) -> Decimal:
        p = price if price is not None else self.mark
        return abs(self.amount * p) if p is not None else abs(self.cost)

    def apply(
        self, side: str, amount: Decimal, price: Decimal, fee: Decimal, ts: float
    ) -> TradeResult | None:
        """Apply one fill; returns the round trip it closed, if any."""
        signed = amount if side == "buy" else -amount
        self.fees += fee
        self.trip_fees += fee
        self.updated = ts
        if self.amount == 0 or (self.amount > 0) == (signed > 0):
            if self.amount == 0:
                self.opened = ts
            self.cost += signed * price
            self.amount += signed
            self.trip_notional += amount * price
            return None
        held = abs(self.amount)
        closing = min(amount, held)
        direction = Decimal(1) if self.amount > 0 else Decimal(-1)
        removed = self.cost if closing == held else (self.cost * closing / held).quantize(_BASIS_Q)
        pnl = direction * closing * price - removed
        self.realized_pnl += pnl
        self.trip_pnl += pnl
        self.cost -= removed
        self.amount += signed
        if self.amount != 0 and (self.amount > 0) == (direction > 0):
            return None
        result = TradeResult(
            exchange=self.exchange,
            symbol=self.symbol,
            side="long" if direction > 0 else "short",
            opened=self.opened,
            closed=ts,
            entry_notional=self.trip_notional,
            pnl=self.trip_pnl - self.trip_fees,
        )
        self.trip_pnl = ZERO
        self.trip_fees = ZERO
        self.trip_notional = ZERO
        self.cost = ZERO
        if self.amount != 0:  # flipped: the rest opens a new trip at this price
            self.cost = self.amount * price
            self.opened = ts
            self.trip_notional = abs(self.amount) * price
        return result

    def event(self, ts: float, ts_recv: float) -> PositionUpdate:
        return PositionUpdate(
            exchange=self.exchange,
            symbol=self.symbol,
            ts=ts,
            ts_recv=ts_recv,
            amount=self.amount,
            avg_price=self.avg_price,
            realized_pnl=self.realized_pnl,
            unrealized_pnl=self.unrealized_pnl,
            fees=self.fees,
            mark_price=self.mark,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "amount": money(self.amount),
            "avg_price": money(self.avg_price),
            "mark_price": None if self.mark is None else money(self.mark),
            "notional": money(self.notional()),
            "realized_pnl": money(self.realized_pnl),
            "unrealized_pnl": money(self.unrealized_pnl),
            "fees": money(self.fees),
            "opened": self.opened,
            "updated": self.updated,
        }


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

    def position(self, exchange: str, symbol: str) -> Position:
        key = (exchange, symbol)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position(exchange=exchange, symbol=symbol)
        return pos

    def amount(self, exchange: str, symbol: str) -> Decimal:
        pos = self.positions.get((exchange, symbol))
        return pos.amount if pos is not None else ZERO

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.amount != 0]

    def apply_fill(self, fill: Fill) -> TradeResult | None:
        """Move cash, the position and fee balances by one fill (dedup is the caller's job)."""
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
        pos = self.position(fill.exchange, fill.symbol)
        if pos.mark is None:
            pos.mark = fill.price
        result = pos.apply(fill.side, amount, fill.price, fee_value, fill.ts)
        if result is not None:
            self.trades.append(result)
        self.snapshot(fill.ts)
        return result

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
        return sum(
            (
                p.notional()
                for p in self.positions.values()
                if (exchange is None or p.exchange == exchange)
                and (symbol is None or p.symbol == symbol)
            ),
            ZERO,
        )

    @property
    def equity(self) -> Decimal:
        held = sum(
            (p.amount * p.mark if p.mark is not None else p.cost) for p in self.positions.values()
        )
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

    def snapshot(self, ts: float) -> Decimal:
        """Record equity at ``ts``; rolls the UTC day and tracks the drawdown."""
        eq = self.equity
        day = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
        if day != self._day:
            self._day = day
            self.day_start_equity = eq
        self.equity_curve.append((ts, eq))
        self.peak_equity = max(self.peak_equity, eq)
        if self.peak_equity > 0:
            self.max_drawdown = max(self.max_drawdown, (self.peak_equity - eq) / self.peak_equity)
        return eq

    def daily_pnl(self, ts: float) -> Decimal:
        """Equity change since the start of the UTC day of ``ts``."""
        day = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
        if day != self._day:
            self.snapshot(ts)
        return self.equity - self.day_start_equity

    def stats(self) -> dict[str, Any]:
        """Trades, win rate, average win/loss, profit factor, max drawdown, Sharpe, PnL."""
        wins = [t.pnl for t in self.trades if t.pnl > 0]
        losses = [t.pnl for t in self.trades if t.pnl <= 0]
        gross_win = sum(wins, ZERO)
        gross_loss = -sum(losses, ZERO)
        n = len(self.trades)
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
            "net_pnl": money(sum((t.pnl for t in self.trades), ZERO)),
            "realized_pnl": money(sum((p.realized_pnl for p in self.positions.values()), ZERO)),
            "unrealized_pnl": money(sum((p.unrealized_pnl for p in self.positions.values()), ZERO)),
            "fees": money(sum((p.fees for p in self.positions.values()), ZERO)),
            "max_drawdown": float(self.max_drawdown),
            "sharpe": sharpe,
            "equity": money(self.equity),
            "cash": money(self.cash),
            "quote_currency": self.quote,
            "fee_balances": {k: money(v) for k, v in sorted(self.fee_balances.items())},
            "dust": {k: money(v) for k, v in sorted(self.dust.items())},
            "open_positions": len(self.open_positions()),
        }
