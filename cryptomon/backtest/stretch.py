"""A safe stretch of one market valued in one pass: the equity its close quotes would mark,
without publishing every quote (the fast candle path, :mod:`cryptomon.backtest.fastlanes`)."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from decimal import Decimal, getcontext
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numba import njit

from cryptomon.backtest.data import CandleSeries, Column, columns
from cryptomon.backtest.synth import grid_quotes, grid_unit

if TYPE_CHECKING:
    from cryptomon.config import BacktestConfig
    from cryptomon.trading.portfolio import Portfolio


def plain_equity(portfolio: Portfolio, series: CandleSeries) -> bool:
    """The portfolio's equity is its cash plus this market's spot position at its mark:
    no other position holds value, no fee balance or dust (:func:`stretch_equity`)."""
    if portfolio.fee_balances or portfolio.dust:
        return False
    key = (series.exchange, series.symbol)
    for k, pos in portfolio.positions.items():
        if k == key:
            if pos.contract is not None or pos.amount == 0:
                return False
        elif pos.amount != 0 or pos.mark is None:
            return False
    return key in portfolio.positions


_TWO = Decimal(2)
MARKS_KEPT = 4096  # CloseMids.marks
PLACES = 8  # the most decimals a series' quotes are tried at (ScaledMids)


@dataclass(frozen=True, slots=True)
class CloseMids:
    """Per row of a series: the mid of its close quote (the float ``MarketState.mid``
    answers, the signal's price); one entry longer, how many rows before each have a close
    quote with a zero bid (prefix counts); the Decimal mids the engine marks with, as
    exact scaled integers (:class:`ScaledMids`); and the quotes' bids and asks (arrays of
    doubles: an item reads as a Python float), of which :meth:`mark` makes a row's Decimal
    mid."""

    values: Column
    zeros: Column
    scaled: ScaledMids
    bids: array[float] = field(compare=False)
    asks: array[float] = field(compare=False)
    # exact_floats' terms of the latest cash and amount (see _terms), for this run only
    memo: list[Any] = field(default_factory=list, compare=False)
    # the latest marks made from the quotes' decimals, by row (a held run's rows are
    # valued again by its stretch); cleared when full
    marks: dict[int, Decimal] = field(default_factory=dict, compare=False)

    def mark(self, row: int) -> Decimal:
        """Row ``row``'s close quote's mid as the engine marks it (``ProtectionManager.on_top``:
        :func:`~cryptomon.decimals.decimal_mid` of its bid and ask), equal to it (the
        equity sums read its value only): from the exact scaled integer when the row has
        one (:class:`ScaledMids`), else that Decimal spelled without the remembered
        conversions (a row's quote is rarely converted again: remembering would only
        cost)."""
        scaled = self.scaled
        inexact = scaled.inexact
        if inexact[row + 1] == inexact[row]:
            return Decimal(scaled.ints[row]).scaleb(-scaled.places)
        marks = self.marks
        mid = marks.get(row)
        if mid is None:
            if len(marks) >= MARKS_KEPT:
                marks.clear()
            mid = marks[row] = (
                Decimal(repr(self.bids[row])) + Decimal(repr(self.asks[row]))
            ) / _TWO
        return mid


@dataclass(frozen=True, slots=True)
class ScaledMids:
    """The Decimal mids of quotes as integers at one decimal scale: row ``r``'s mid
    (:func:`~cryptomon.decimals.decimal_mid` of its bid and ask) is ``ints[r] /
    10**places``, for the rows counted as exact (``inexact``: prefix counts of the
    others, whose ``ints`` are 0).

    A price is exact at ``p`` decimals when ``P = round(price * 10**p)`` has ``|P| <
    2**51`` and the IEEE quotient ``P / 10**p`` is the price (both operands exact, the
    quotient correctly rounded): the decimal rounds to the price, and as the spacing of
    doubles there is below ``10**-p``, it is the only decimal of at most ``p`` decimals
    that does; the shortest decimal that rounds to the price (``repr``, so the Decimal
    ``decimal_mid`` adds) has no more digits, so no more decimals: it is that one. A row
    is exact when its bid ``B / 10**p`` and ask ``A / 10**p`` both are: its mid is
    ``(B + A) / (2 * 10**p)``, that is ``5 * (B + A) / 10**(p + 1)`` (``places`` is ``p +
    1``), and ``decimal_mid`` finds it exactly (the sum and its half have at most 17
    digits); its exponent is at least ``-places``, so its coefficient is at most
    ``|ints[r]|`` (what :func:`exact_floats` bounds)."""

    places: int
    ints: Column
    inexact: Column


def scaled_mids(bids: np.ndarray, asks: np.ndarray) -> ScaledMids:
    """:class:`ScaledMids` of the quotes ``bids`` / ``asks`` at the fewest decimals (up to
    :data:`PLACES`) that make the most rows exact."""
    best: tuple[int, int, np.ndarray, np.ndarray] | None = None
    with np.errstate(invalid="ignore", over="ignore"):
        for p in range(PLACES + 1):
            unit = 10.0**p  # exact for p <= 22
            b, a = np.round(bids * unit), np.round(asks * unit)
            exact = (
                (np.abs(b) < 2.0**51)
                & (b / unit == bids)
                & (np.abs(a) < 2.0**51)
                & (a / unit == asks)
            )
            count = int(np.count_nonzero(exact))
            if best is None or count > best[0]:
                best = (count, p, b + a, exact)  # the sum of two integers below 2**51: exact
            if count == bids.shape[0]:
                break
    if best is None:  # no rows
        return ScaledMids(0, (), (0,))
    _, p, sums, exact = best
    ints = np.where(exact, sums, 0.0).astype(np.int64) * 5
    inexact = np.concatenate([[0], np.cumsum(~exact)])
    return ScaledMids(p + 1, columns(ints), columns(inexact))


def close_mids(series: CandleSeries, cfg: BacktestConfig, tick: float) -> CloseMids:
    """Per row of ``series``: the mid of its close quote (:meth:`CandlePath.quote`'s float
    arithmetic on the row's arrays, the same IEEE operations in the same order, element by
    element, on the grid of ``tick``), the prefix counts of zero bids, the scaled Decimal
    mids and the quotes (:class:`CloseMids`)."""
    unit = grid_unit(tick)
    price = series.close
    span = series.high - series.low
    half = np.maximum(price * cfg.slippage_bps / 10_000.0, cfg.slippage_range_fraction * span)
    bid, ask = grid_quotes(price, half, unit)
    zeros = np.concatenate([[0], np.cumsum(~(bid > 0))])
    mids = (bid + ask) / 2
    bids, asks = array("d"), array("d")
    bids.frombytes(bid.astype(np.float64).tobytes())
    asks.frombytes(ask.astype(np.float64).tobytes())
    return CloseMids(columns(mids), columns(zeros), scaled_mids(bid, ask), bids, asks)


def stretch_equity(
    portfolio: Portfolio, series: CandleSeries, mids: CloseMids, lo: int, hi: int
) -> tuple[list[float], Decimal] | None:
    """The equity at the end of rows ``lo:hi`` of a safe stretch of one market (its
    position unchanged, :func:`plain_equity`) as their close quotes would mark it: the
    Decimal mid the engine marks each quote with (``mids``, of :func:`close_mids`), and
    ``cash + amount * mark`` in Decimal as ``Portfolio.equity`` adds it (the other terms
    are exact zeros), each row's float from exact integers when it can be
    (:func:`exact_floats`; the rows it cannot, one Decimal sum each). Only the stretch's
    last quote need be published: every reader of a close quote keeps the latest one (the
    market state, the marks), and a safe quote triggers no exit. Returns the floats and
    the last row's equity as the Decimal ``Portfolio.equity`` would give after its quote.
    None: not such a stretch (another holding, a fee balance, dust, a contract, a zero
    bid)."""
    zeros = mids.zeros
    if zeros[hi] != zeros[lo] or not plain_equity(portfolio, series):
        return None  # the engine does not mark at a zero bid
    cash = portfolio.cash
    amount = portfolio.positions[(series.exchange, series.symbol)].amount
    mark = mids.mark
    floats = exact_floats(cash, amount, mids.scaled, lo, hi, memo=mids.memo, partial=True)
    if floats is None:
        floats = [None] * (hi - lo)
    from_ints = floats[-1] is not None  # the last row's float: no Decimal made for it
    held = cash
    for i, value in enumerate(floats):
        if value is None:
            held = cash + amount * mark(lo + i)  # as on_top marks its quote
            floats[i] = float(held)
    if from_ints:
        held = cash + amount * mark(hi - 1)
    return cast("list[float]", floats), held


def exact_floats(
    cash: Decimal,
    amount: Decimal,
    scaled: ScaledMids,
    lo: int,
    hi: int,
    *,
    memo: list[Any] | None = None,
    partial: bool = False,
) -> list[float | None] | None:
    """``float(cash + amount * mid)`` of the Decimal mids of rows ``lo:hi`` (``hi >
    lo``), from integers: with ``mid = M / 10**p`` exact (:class:`ScaledMids`), the sum is
    ``N / 10**k`` for the integer ``N`` below, and Python's int true division rounds it
    correctly, as ``float`` of the Decimal does (its string, parsed). The Decimal sum and
    product are exact, so equal to these, when their coefficients have at most the
    context's precision in digits (checked, with the largest ``|M|``). None: a row not
    exact (``partial``: None for that row only), a non-finite Decimal, or more digits than
    the precision. ``memo``: keeps the terms of the latest cash and amount (a position's
    stretches share them)."""
    inexact = scaled.inexact
    some = inexact[hi] != inexact[lo]
    if some and not partial:
        return None
    terms = _terms(cash, amount, scaled.places, [] if memo is None else memo)
    if terms is None:
        return None
    base, times, scale, coefficient, limit = terms
    ints = scaled.ints[lo:hi]
    top = max(map(abs, ints))
    if coefficient * top >= limit or abs(base) + abs(times) * top >= limit:
        return None  # the Decimal product or sum may round
    if some:
        return [
            None if inexact[r + 1] != inexact[r] else (base + times * m) / scale
            for r, m in zip(range(lo, hi), ints, strict=True)
        ]
    return [(base + times * m) / scale for m in ints]


def _terms(
    cash: Decimal, amount: Decimal, places: int, memo: list[Any]
) -> tuple[int, int, int, int, int] | None:
    """(B, T, 10**k, |A|, 10**precision) for :func:`exact_floats`: ``cash`` is
    ``B / 10**k``, ``amount * M / 10**places`` is ``T * M / 10**k``, ``A`` the amount's
    coefficient; kept in ``memo`` for the same objects and precision. None: a non-finite
    Decimal."""
    prec = getcontext().prec
    if memo:
        c0, a0, p0, prec0, known = memo[0]
        if c0 is cash and a0 is amount and p0 == places and prec0 == prec:
            return known
    c_sign, c_digits, c_exp = cash.as_tuple()
    a_sign, a_digits, a_exp = amount.as_tuple()
    terms = None
    if isinstance(c_exp, int) and isinstance(a_exp, int):  # else NaN or infinity
        c = int("".join(map(str, c_digits))) * (-1 if c_sign else 1)
        a = int("".join(map(str, a_digits))) * (-1 if a_sign else 1)
        k = max(0, -c_exp, places - a_exp)  # the sum is N * 10**-k
        terms = (c * 10 ** (c_exp + k), a * 10 ** (a_exp - places + k), 10**k, abs(a), 10**prec)
    memo[:] = [(cash, amount, places, prec, terms)]
    return terms


def reach_bounds(
    series: CandleSeries, cfg: BacktestConfig, tick: float
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per row: the candle's range widened by twice its half spread and one
    step of the price grid (a quote's bid is rounded down to it, its ask up)."""
    span = series.high - series.low
    half = np.maximum(series.high * cfg.slippage_bps / 10_000.0, cfg.slippage_range_fraction * span)
    unit = grid_unit(tick)
    step = 1.0 / unit if unit else 0.0
    return series.low - 2 * half - step, series.high + 2 * half + step


def safe_until(
    reach: tuple[np.ndarray, np.ndarray], row: int, *, long: bool, stop: float, take: float | None
) -> int:
    """The last row from ``row`` on (``row - 1``: none) whose widened range (``reach``, of
    :func:`reach_bounds`) stays strictly between ``stop`` and ``take``."""
    low, high = reach
    return int(_last_safe(low, high, row, long, stop, math.nan if take is None else take))


@njit(cache=True)
def _last_safe(  # noqa: PLR0917 - a numba kernel takes its parameters positionally
    low: np.ndarray, high: np.ndarray, row: int, long: bool, stop: float, take: float
) -> int:
    """:func:`safe_until`'s scan, one row at a time (a position's levels are usually
    hundreds to thousands of rows away); ``take`` NaN: none (no comparison holds)."""
    n = low.shape[0]
    for i in range(row, n):
        if long:
            if low[i] <= stop or high[i] >= take:
                return i - 1
        elif high[i] >= stop or low[i] <= take:
            return i - 1
    return n - 1
