"""A seeded market model per symbol: the data source of the loopback simulator.

Prices live on an integer tick grid (no float drift). Each :class:`SymbolMarket` keeps

- a mid price that follows a random walk whose volatility switches between regimes
  (calm / normal / wild, a Markov chain),
- a consistent order book: ``levels`` contiguous price levels per side around the mid, never
  crossed, sizes that persist per level and are refreshed at random,
- trades arriving as a Poisson process with log-normal sizes; every trade consumes book
  liquidity through :meth:`SymbolMarket.apply_trade`, like a real taker order.

Every book change is recorded with an increasing update id (Binance's ``U``/``u``), so the
exchange can emit depth diffs a client can stitch onto a snapshot.

Knobs the scenarios turn (all multiplicative, 1.0 = normal): ``volume_mult`` (trade rate),
``spread_mult`` (distance of the best levels from the mid, in ticks), ``bid_size_mult`` /
``ask_size_mult`` (book imbalance). ``jump(pct)`` moves the mid at once.

Other subsystems use: ``MarketModel.book(symbol, depth)`` -> ``(bids, asks)`` best-first
lists of ``(price, size)`` floats; ``MarketModel.apply_trade(symbol, side, amount)`` -> the
``(price, size)`` fills of a taker order, which also appear in the public trade stream.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

Side = Literal["buy", "sell"]

# volatility regimes: (name, per-second log-return sigma multiplier)
_REGIMES: tuple[tuple[str, float], ...] = (("calm", 0.5), ("normal", 1.0), ("wild", 3.0))
_REGIME_SWITCH_PER_S = 1 / 120  # a regime lasts two minutes on average


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Static description of one simulated market."""

    symbol: str  # normalized, e.g. BTC-USDT
    price: float
    tick: float
    lot: float = 0.00001
    sigma: float = 0.0002  # per-second log-return volatility in the normal regime
    trades_per_s: float = 5.0
    trade_size: float = 0.05  # median trade size, base currency
    level_size: float = 1.0  # median resting size per level
    spread_ticks: int = 1  # best ask - best bid in ticks, normally

    @property
    def base(self) -> str:
        return self.symbol.split("-", 1)[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("-", 1)[1]

    @property
    def exchange_symbol(self) -> str:
        return self.symbol.replace("-", "")

    @property
    def decimals(self) -> int:
        return max(0, -Decimal(str(self.tick)).as_tuple().exponent)  # type: ignore[operator]


DEFAULT_SPECS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTC-USDT", price=60_000.0, tick=0.01, trade_size=0.02, level_size=0.8),
    SymbolSpec("ETH-USDT", price=3_000.0, tick=0.01, trade_size=0.3, level_size=8.0),
    SymbolSpec("SOL-USDT", price=150.0, tick=0.001, trade_size=5.0, level_size=120.0),
    SymbolSpec("BNB-USDT", price=550.0, tick=0.01, trade_size=1.0, level_size=20.0),
)


def default_spec(symbol: str) -> SymbolSpec:
    """A spec for ``symbol``: a built-in one, else a generic market priced at 100."""
    for spec in DEFAULT_SPECS:
        if spec.symbol == symbol:
            return spec
    return SymbolSpec(symbol, price=100.0, tick=0.01, trade_size=2.0, level_size=50.0)


@dataclass(slots=True)
class SimTrade:
    """One public trade produced by the model (taker side)."""

    trade_id: int
    price: float
    amount: float
    side: Side
    ts: float


@dataclass(slots=True)
class BookChanges:
    """Level changes since the last :meth:`SymbolMarket.take_changes` (absolute sizes)."""

    first_id: int
    last_id: int
    bids: dict[int, float] = field(default_factory=dict)
    asks: dict[int, float] = field(default_factory=dict)


class SymbolMarket:
    """The state of one simulated market; see the module docstring."""

    def __init__(self, spec: SymbolSpec, rng: random.Random, *, levels: int = 50) -> None:
        self.spec = spec
        self.rng = rng
        self.levels = levels
        self.mid_ticks = float(round(spec.price / spec.tick))
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.update_id = 1000
        self._pending_first = self.update_id + 1
        self._pending_bids: dict[int, float] = {}
        self._pending_asks: dict[int, float] = {}
        self.trade_id = 0
        self.regime = 1
        self.volume_mult = 1.0
        self.spread_mult = 1.0
        self.bid_size_mult = 1.0
        self.ask_size_mult = 1.0
        self.trades: list[SimTrade] = []  # produced since the last take_trades()
        self._rebuild()

    # ------------------------------------------------------------------ prices

    def price(self, ticks: int) -> float:
        return round(ticks * self.spec.tick, self.spec.decimals)

    def fmt(self, value: float, decimals: int | None = None) -> str:
        return f"{value:.{self.spec.decimals if decimals is None else decimals}f}"

    @property
    def mid(self) -> float:
        return self.mid_ticks * self.spec.tick

    @property
    def best_bid(self) -> int:
        return max(self.bids)

    @property
    def best_ask(self) -> int:
        return min(self.asks)

    # ------------------------------------------------------------------ book

    def _set(self, side: dict[int, float], pending: dict[int, float], px: int, size: float) -> None:
        if size <= 0:
            if px not in side:
                return
            del side[px]
            size = 0.0
        else:
            size = round(size, 8)
            if side.get(px) == size:
                return
            side[px] = size
        pending[px] = size
        self.update_id += 1

    def _level_size(self, k: int, mult: float) -> float:
        base = self.spec.level_size * (1.0 + 0.15 * k)
        return base * mult * self.rng.lognormvariate(0.0, 0.5)

    def _rebuild(self, refresh: float = 0.0) -> None:
        """Move the ladder to the current mid; refresh a fraction of resting sizes."""
        half = max(1, round(self.spec.spread_ticks * self.spread_mult)) / 2
        top_bid = math.floor(self.mid_ticks - half + 1e-9)
        top_ask = max(top_bid + 1, math.ceil(self.mid_ticks + half - 1e-9))
        for side, pending, top, step, mult in (
            (self.bids, self._pending_bids, top_bid, -1, self.bid_size_mult),
            (self.asks, self._pending_asks, top_ask, 1, self.ask_size_mult),
        ):
            wanted = {top + step * k for k in range(self.levels)}
            for px in [p for p in side if p not in wanted]:
                self._set(side, pending, px, 0.0)
            for k in range(self.levels):
                px = top + step * k
                if px not in side or self.rng.random() < refresh:
                    self._set(side, pending, px, self._level_size(k, mult))

    def rescale_side(self, side: Literal["bid", "ask"], factor: float) -> None:
        """Multiply every resting size of one side (imbalance scenarios)."""
        book, pending = (
            (self.bids, self._pending_bids) if side == "bid" else (self.asks, self._pending_asks)
        )
        for px, size in list(book.items()):
            self._set(book, pending, px, size * factor)

    def add_liquidity(self, side: Literal["bid", "ask"], amount: float) -> None:
        """Make the best level of one book side hold at least ``amount`` (an iceberg order)."""
        book, pending = (
            (self.bids, self._pending_bids) if side == "bid" else (self.asks, self._pending_asks)
        )
        px = max(book) if side == "bid" else min(book)
        if book[px] < amount:
            self._set(book, pending, px, amount)

    def book(
        self, depth: int | None = None
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Best-first ``(price, size)`` lists of both sides."""
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return (
            [(self.price(p), s) for p, s in bids],
            [(self.price(p), s) for p, s in asks],
        )

    def take_changes(self) -> BookChanges | None:
        """Level changes since the last call, with their update-id range; None if none."""
        if not self._pending_bids and not self._pending_asks:
            return None
        out = BookChanges(
            self._pending_first, self.update_id, self._pending_bids, self._pending_asks
        )
        self._pending_bids, self._pending_asks = {}, {}
        self._pending_first = self.update_id + 1
        return out

    def skip_ids(self, n: int) -> None:
        """Advance the update id without a change (a sequence gap the client must notice)."""
        self.update_id += n
        if not self._pending_bids and not self._pending_asks:
            self._pending_first = self.update_id + 1

    # ------------------------------------------------------------------ trading

    def apply_trade(self, side: Side, amount: float, ts: float) -> list[tuple[float, float]]:
        """A taker order of ``amount`` (base) walks the book; returns its ``(price, size)`` fills.

        Each fill is a public trade; consumed levels shrink or vanish, and the mid follows
        when the best level is exhausted.
        """
        fills: list[tuple[float, float]] = []
        left = amount
        book, pending = (
            (self.asks, self._pending_asks) if side == "buy" else (self.bids, self._pending_bids)
        )
        while left > 1e-12 and book:
            px = min(book) if side == "buy" else max(book)
            take = min(left, book[px])
            self._set(book, pending, px, book[px] - take)
            left -= take
            fills.append((self.price(px), take))
            self.trade_id += 1
            self.trades.append(SimTrade(self.trade_id, self.price(px), round(take, 8), side, ts))
        if fills and (
            not book
            or (side == "buy" and min(book) > self.mid_ticks + 1)
            or (side == "sell" and max(book) < self.mid_ticks - 1)
        ):
            last_px = round(fills[-1][0] / self.spec.tick)
            self.mid_ticks = float(last_px)
        return fills

    def take_trades(self) -> list[SimTrade]:
        out, self.trades = self.trades, []
        return out

    # ------------------------------------------------------------------ time

    def jump(self, pct: float) -> None:
        """Move the mid by ``pct`` percent at once (the book follows on the next step)."""
        self.mid_ticks *= 1 + pct / 100

    def step(self, dt: float, ts: float) -> None:
        """Advance ``dt`` seconds: regime switch, random walk, random trades, book refresh."""
        rng = self.rng
        if rng.random() < _REGIME_SWITCH_PER_S * dt:
            self.regime = rng.randrange(len(_REGIMES))
        sigma = self.spec.sigma * _REGIMES[self.regime][1] * math.sqrt(dt)
        self.mid_ticks *= math.exp(rng.gauss(0.0, sigma))
        self._rebuild(refresh=min(1.0, 0.5 * dt))
        n = _poisson(rng, self.spec.trades_per_s * self.volume_mult * dt)
        for _ in range(n):
            side: Side = "buy" if rng.random() < 0.5 else "sell"
            size = self.spec.trade_size * rng.lognormvariate(0.0, 0.8)
            size = max(self.spec.lot, round(size / self.spec.lot) * self.spec.lot)
            self.apply_trade(side, min(size, self.spec.level_size * 2), ts)
        if n:
            self._rebuild()


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class MarketModel:
    """Every simulated symbol, driven by one seeded RNG (same seed -> same market)."""

    def __init__(
        self,
        symbols: Iterable[str | SymbolSpec] = ("BTC-USDT", "ETH-USDT"),
        *,
        seed: int = 42,
        levels: int = 50,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        self.markets: dict[str, SymbolMarket] = {}
        for item in symbols:
            spec = item if isinstance(item, SymbolSpec) else default_spec(item)
            sub = random.Random(self.rng.getrandbits(64))  # noqa: S311
            self.markets[spec.symbol] = SymbolMarket(spec, sub, levels=levels)

    @property
    def symbols(self) -> list[str]:
        return list(self.markets)

    def market(self, symbol: str) -> SymbolMarket:
        try:
            return self.markets[symbol]
        except KeyError:
            raise KeyError(f"unknown simulated symbol {symbol!r}; have {self.symbols}") from None

    def by_exchange_symbol(self, exchange_symbol: str) -> SymbolMarket | None:
        for m in self.markets.values():
            if m.spec.exchange_symbol == exchange_symbol.upper():
                return m
        return None

    def book(
        self, symbol: str, depth: int | None = None
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Best-first ``(price, size)`` lists of bids and asks of ``symbol``."""
        return self.market(symbol).book(depth)

    def apply_trade(
        self, symbol: str, side: Side, amount: float, ts: float
    ) -> list[tuple[float, float]]:
        """Consume liquidity like a taker order; fills appear in the public trade stream."""
        return self.market(symbol).apply_trade(side, amount, ts)

    def step(self, dt: float, ts: float) -> None:
        for m in self.markets.values():
            m.step(dt, ts)
