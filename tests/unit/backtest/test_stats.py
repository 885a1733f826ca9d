"""Backtest statistics against a hand-computed example (four trades with fees, four days)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

from cryptomon.backtest.data import CandleSeries
from cryptomon.backtest.ledger import Ledger
from cryptomon.backtest.report import candles_figure, monthly_returns
from cryptomon.backtest.runner import BacktestResult
from cryptomon.backtest.stats import breakdown, daily_returns, summarize
from cryptomon.events import Fill
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from tests.unit.backtest.conftest import T0

DAY = 86400.0
# (side, amount, price, fee) pairs: open then close, one trade each
TRADES = [
    (("buy", "10", "100", "1.0"), ("sell", "10", "110", "1.1")),  # +100 - 2.1 = 97.9
    (("buy", "10", "100", "1.0"), ("sell", "10", "95", "0.95")),  # -50 - 1.95 = -51.95
    (("sell", "20", "100", "2.0"), ("buy", "20", "95", "1.9")),  # +100 - 3.9 = 96.1
    (("buy", "5", "100", "0.5"), ("sell", "5", "96", "0.48")),  # -20 - 0.98 = -20.98
]


def ledger() -> Ledger:
    book = Ledger()
    n = 0
    for k, legs in enumerate(TRADES):
        for side, amount, price, fee in legs:
            n += 1
            ts = T0 + k * DAY + n * 60
            book.on_fill(
                Fill(
                    exchange="binance",
                    symbol="ALT-BTC" if k % 2 == 0 else "XRP-BTC",
                    ts=ts,
                    ts_recv=ts,
                    trade_id=f"t{n}",
                    client_order_id=f"c{n}",
                    side="buy" if side == "buy" else "sell",
                    amount=Decimal(amount),
                    price=Decimal(price),
                    fee=Decimal(fee),
                    fee_currency="BTC",
                )
            )
    return book


def result() -> BacktestResult:
    series = CandleSeries(
        "binance",
        "ALT-BTC",
        "1m",
        np.array([T0, T0 + 4 * DAY - 60]),
        np.array([100.0, 110.0]),
        np.array([100.0, 120.0]),
        np.array([100.0, 110.0]),
        np.array([100.0, 120.0]),
        np.array([1.0, 1.0]),
    )
    return BacktestResult(
        series=[series],
        trades=ledger().closed,
        fills=[],
        anomalies=[],
        signals=4,
        equity_ts=T0 + DAY * np.arange(1, 5),
        equity=np.array([1100.0, 1045.0, 1149.5, 1034.55]),
        exposure=np.array([1.0, 0.0, 1.0, 0.0]),
        starting_balance=1000.0,
        quote="BTC",
        candles=4,
    )


def test_trade_statistics_match_the_hand_computation() -> None:
    """PnL, fees, win rate, profit factor, expectancy, best/worst of four trades."""
    s = summarize(result())
    assert s["trades"] == 4
    assert (s["wins"], s["losses"]) == (2, 2)
    assert s["win_rate"] == 0.5
    assert s["pnl"] == pytest.approx(121.07)
    assert s["pnl_pct"] == pytest.approx(12.107)
    assert s["fees"] == pytest.approx(8.93)
    assert s["profit_factor"] == pytest.approx(194.0 / 72.93)
    assert s["expectancy"] == pytest.approx(121.07 / 4)
    assert (s["best_trade"], s["worst_trade"]) == (pytest.approx(97.9), pytest.approx(-51.95))
    assert s["avg_trade_s"] == 60.0
    assert s["longest_trade_s"] == 60.0


def test_risk_statistics_match_the_hand_computation() -> None:
    """Daily returns +10%, -5%, +10%, -10%: Sharpe, Sortino, drawdown, Calmar, exposure."""
    s = summarize(result())
    mean = 0.0125
    assert s["sharpe"] == pytest.approx(mean / math.sqrt(0.010625) * math.sqrt(365))
    assert s["sortino"] == pytest.approx(mean / math.sqrt(0.003125) * math.sqrt(365))
    assert s["max_drawdown_pct"] == pytest.approx(10.0)
    assert s["max_drawdown_s"] == DAY  # from the peak of day 3 to the end, not recovered
    annual = 1.03455 ** (365 / 4) - 1
    assert s["annualized_return_pct"] == pytest.approx(annual * 100)
    assert s["calmar"] == pytest.approx(annual / 0.1)
    assert s["exposure_pct"] == 50.0
    assert s["buy_and_hold_pct"] == pytest.approx(20.0)
    assert s["return_pct"] == pytest.approx(3.455)


def test_breakdown_per_symbol_and_source() -> None:
    """Trades are grouped per symbol with their PnL and fees."""
    by_symbol = breakdown(result().trades, "symbol")
    assert by_symbol["binance ALT-BTC"]["trades"] == 2
    assert by_symbol["binance ALT-BTC"]["pnl"] == pytest.approx(97.9 + 96.1)
    assert by_symbol["binance XRP-BTC"]["fees"] == pytest.approx(1.95 + 0.98)
    assert set(breakdown(result().trades, "source")) == {"unknown"}


def test_breakdown_is_per_market_not_per_symbol() -> None:
    """One symbol traded on two exchanges is two rows (it was one row summing both), each
    naming its exchange and symbol."""
    trades = result().trades
    trades[2].exchange = "kraken"  # ALT-BTC's second trade: +96.1 on another venue
    by_symbol = breakdown(trades, "symbol")
    assert list(by_symbol) == ["binance ALT-BTC", "binance XRP-BTC", "kraken ALT-BTC"]
    assert by_symbol["binance ALT-BTC"]["trades"] == 1
    assert by_symbol["binance ALT-BTC"]["pnl"] == pytest.approx(97.9)
    assert by_symbol["kraken ALT-BTC"]["pnl"] == pytest.approx(96.1)
    assert by_symbol["kraken ALT-BTC"]["exchange"] == "kraken"
    assert by_symbol["kraken ALT-BTC"]["symbol"] == "ALT-BTC"


def test_short_round_trip_is_a_short() -> None:
    """A trade opened by a sell is a short with the sell as its entry price."""
    trip = ledger().closed[2]
    assert (trip.side, trip.entry_price, trip.exit_price) == ("short", Decimal(100), Decimal(95))


def test_a_candle_closing_at_midnight_ends_its_day() -> None:
    """Two days of minutes whose equity rises 10% on the candle closing at the first
    midnight: the days return +10% and 0%, and the month of the month's last candle is
    that month (the midnight candle counted in the next day: 0%, +10%, 0%)."""
    ts = T0 + 60.0 * np.arange(1, 2881)
    equity = np.where(ts >= T0 + DAY, 1100.0, 1000.0)
    assert daily_returns(ts, equity, 1000.0).tolist() == pytest.approx([0.1, 0.0])
    end_of_month = datetime(2026, 2, 1, tzinfo=UTC).timestamp()
    months_ts = np.array([end_of_month - 60, end_of_month, end_of_month + 60])
    res = result()
    res.equity_ts, res.equity = months_ts, np.array([1000.0, 1100.0, 1100.0])
    assert monthly_returns(res) == (["2026-01", "2026-02"], [pytest.approx(10.0), 0.0])


def contract(symbol: str, size: str, *, inverse: bool) -> InstrumentSpec:
    base, quote = symbol.split("-")[:2]
    return InstrumentSpec(
        exchange="binance",
        symbol=symbol,
        kind=InstrumentKind.PERPETUAL,
        base=base,
        quote=quote,
        settle=base if inverse else quote,
        contract_size=Decimal(size),
        inverse=inverse,
    )


@pytest.mark.parametrize(
    ("symbol", "size", "inverse", "legs", "pnl", "pnl_pct"),
    [
        # 10 contracts of 0.001 BTC, 50,000 -> 51,000: +10 USDT less 1.01 of fees (it was
        # 10 x 1,000 - 1.01 = 9,998.99, as if a contract were one coin)
        ("BTC-USDT-PERP", "0.001", False, (("buy", "0.5"), ("sell", "0.51")), "8.99", 1.798),
        # 10 contracts of 100 USD, inverse: 1,000 x (1/50,000 - 1/51,000) BTC
        ("BTC-USD-PERP", "100", True, (("buy", "0"), ("sell", "0")), "0.000392156862745098", 1.96),
        # the same short: a fall from 51,000 to 50,000 earns it
        ("BTC-USD-PERP", "100", True, (("sell", "0"), ("buy", "0")), "0.000392156862745098", 2.0),
    ],
)
def test_a_contract_trade_is_valued_in_contracts(
    symbol: str, size: str, inverse: bool, legs: tuple, pnl: str, pnl_pct: float
) -> None:
    """A round trip on a perpetual: its fills are venue contracts, its PnL the contract
    value in the settle currency (linear: size x price moves; inverse: coin values)."""
    spec = contract(symbol, size, inverse=inverse)
    book = Ledger(specs=lambda ex, sym: spec if sym == symbol else None)
    prices = ("50000", "51000") if legs[0][0] == "buy" else ("51000", "50000")
    for n, ((side, fee), price) in enumerate(zip(legs, prices, strict=True)):
        book.on_fill(
            Fill(
                exchange="binance",
                symbol=symbol,
                ts=T0 + n,
                ts_recv=T0 + n,
                trade_id=f"t{n}",
                client_order_id=f"c{n}",
                side="buy" if side == "buy" else "sell",
                amount=Decimal(10),
                price=Decimal(price),
                fee=Decimal(fee),
                fee_currency="USDT",
            )
        )
    [trip] = book.closed
    assert trip.pnl == pytest.approx(Decimal(pnl), abs=Decimal("1e-18"))
    assert trip.as_dict()["pnl_pct"] == pytest.approx(pnl_pct, rel=1e-3)


def test_the_price_chart_marks_the_trades_of_its_own_exchange() -> None:
    """Two ALT-BTC trades, one on kraken: binance's ALT-BTC chart marks only its own (it
    marked every exchange's trades of the symbol)."""
    res = result()
    res.trades[0].exchange = "kraken"
    fig = candles_figure(res, res.series[0])
    entries = next(t for t in fig.data if t.name == "entry")
    assert len(entries.x) == 1


def test_contract_round_trips_carry_funding_and_quote_pnl_as_the_portfolio() -> None:
    """An inverse BTC-USD contract round trip (10 x 100 USD, 20000 -> 25000, 0.00005 and
    0.00004 BTC fees, +0.0001 BTC funding after the close) and a linear one (0.5 BTC-USDT-PERP
    20000 -> 21000, 1 USDT funding paid while open), on a USD account: the trips carry the
    portfolio's figures, funding in. Before, the summary summed the inverse trip's coin PnL
    (0.00991 BTC) with the linear trip's USDT and left both fundings out (disagreeing with
    the equity)."""
    from cryptomon.trading.futures import ContractTerms
    from cryptomon.trading.portfolio import Portfolio

    inverse = InstrumentSpec(
        exchange="sim",
        symbol="BTC-USD-PERP",
        kind=InstrumentKind.PERPETUAL,
        base="BTC",
        quote="USD",
        settle="BTC",
        contract_size=Decimal(100),
        inverse=True,
    )
    linear = InstrumentSpec(
        exchange="sim",
        symbol="BTC-USDT-PERP",
        kind=InstrumentKind.PERPETUAL,
        base="BTC",
        quote="USDT",
        settle="USDT",
    )
    specs = {s.symbol: s for s in (inverse, linear)}

    def terms(exchange: str, symbol: str) -> ContractTerms:
        spec = specs[symbol]
        return ContractTerms(spec=spec, leverage=Decimal(5), margin_mode="isolated", mmr=Decimal(0))

    pf = Portfolio(quote="USD", cash=Decimal(10_000), terms=terms)
    book = Ledger(specs=lambda exchange, symbol: specs.get(symbol))
    legs = [
        ("BTC-USD-PERP", "buy", "10", "20000", "0.00005", "BTC"),
        ("BTC-USD-PERP", "sell", "10", "25000", "0.00004", "BTC"),
        ("BTC-USDT-PERP", "buy", "0.5", "20000", "0", "USDT"),
        ("BTC-USDT-PERP", "sell", "0.5", "21000", "0", "USDT"),
    ]
    for n, (symbol, side, qty, price, fee, ccy) in enumerate(legs, 1):
        f = Fill(
            exchange="sim",
            symbol=symbol,
            ts=float(n),
            ts_recv=float(n),
            trade_id=f"t{n}",
            client_order_id=f"c{n}",
            side=side,  # type: ignore[arg-type]
            amount=Decimal(qty),
            price=Decimal(price),
            fee=Decimal(fee),
            fee_currency=ccy,
        )
        pf.apply_fill(f)
        book.on_fill(f)
        if n == 2:  # after the inverse close: booked on its trip
            pf.apply_funding("sim", "BTC-USD-PERP", Decimal("0.0001"), Decimal(25000), 2.5)
        if n == 3:  # while the linear position is open
            pf.apply_funding("sim", "BTC-USDT-PERP", Decimal(-1), Decimal(20000), 3.5)
    book.settle(pf.trades)
    inv, lin = book.closed
    assert inv.pnl == Decimal("0.01") - Decimal("0.00009") + Decimal("0.0001")  # settle: BTC
    assert inv.net == Decimal("250.5")  # 250 - 1 - 1 + 2.5 USD, as the portfolio
    assert lin.pnl == lin.net == Decimal(499)  # 500 - 1 of funding
    assert Decimal(inv.as_dict()["pnl"]) == Decimal("250.5")
    assert Decimal(inv.as_dict()["funding"]) == Decimal("0.0001")
    s = summarize(
        BacktestResult(
            series=[],
            trades=book.closed,
            fills=[],
            anomalies=[],
            signals=0,
            equity_ts=np.array([4.0]),
            equity=np.array([float(pf.equity)]),
            exposure=np.array([0.0]),
            starting_balance=10_000.0,
            quote="USD",
            candles=1,
        )
    )
    assert s["pnl"] == pytest.approx(749.5)
    assert s["final_equity"] - s["starting_balance"] == pytest.approx(s["pnl"])
    assert breakdown(book.closed, "symbol")["sim BTC-USD-PERP"]["pnl"] == pytest.approx(250.5)


@pytest.mark.parametrize(("account", "fees"), [("USD", "2"), ("BTC", "0.00009")])
def test_an_inverse_trips_fees_are_summed_in_the_account_currency(account: str, fees: str) -> None:
    """An inverse BTC-USD trip's BTC fees (0.00005 at 20000, 0.00004 at 25000) are 2 USD in a
    USD account's summary and breakdowns (each at its fill's price, as the portfolio books
    them), and stay 0.00009 in an account kept in BTC. The summary summed the coin fees as
    if they were USD (0.00009 USD; 75125.8 'USDT' for a SHIB-USD-PERP liquidation)."""
    spec = contract("BTC-USD-PERP", "100", inverse=True)
    book = Ledger(specs=lambda ex, sym: spec, quote=account)
    for n, (side, price, fee) in enumerate((("buy", 20000, "0.00005"), ("sell", 25000, "0.00004"))):
        book.on_fill(
            Fill(
                exchange="binance",
                symbol=spec.symbol,
                ts=T0 + n,
                ts_recv=T0 + n,
                trade_id=f"t{n}",
                client_order_id=f"c{n}",
                side=side,  # type: ignore[arg-type]
                amount=Decimal(10),
                price=Decimal(price),
                fee=Decimal(fee),
                fee_currency="BTC",
            )
        )
    [trip] = book.closed
    assert trip.fees == Decimal("0.00009")  # the trade list's fees: the settle currency
    assert trip.quote_fees == Decimal(fees)
    assert breakdown(book.closed, "source")["unknown"]["fees"] == pytest.approx(float(fees))
    s = summarize(
        BacktestResult(
            series=[],
            trades=book.closed,
            fills=[],
            anomalies=[],
            signals=0,
            equity_ts=np.array([T0 + 2]),
            equity=np.array([10_000.0]),
            exposure=np.array([0.0]),
            starting_balance=10_000.0,
            quote=account,
            candles=1,
        )
    )
    assert s["fees"] == pytest.approx(float(fees))


def test_a_position_open_at_the_end_is_counted_and_valued(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A run that ends with a position open has PnL (closed trades only) and return (the
    equity, the open position marked) that disagree: the README's ALT/BTC example shows
    PnL -4.10% and return -1.77% with nothing saying why. The summary counts the open
    positions and values them (final equity - start - PnL), and the printed summary says so;
    a run that ends flat has neither."""
    from cryptomon.commands.backtest import _print_summary

    base = result()
    opening = Fill(
        exchange="binance",
        symbol="ALT-BTC",
        ts=T0 + 3 * DAY + 600,
        ts_recv=T0 + 3 * DAY + 600,
        trade_id="t-open",
        client_order_id="c-open",
        side="buy",
        amount=Decimal("3"),
        price=Decimal("100"),
        fee=Decimal("0.3"),
        fee_currency="BTC",
    )
    base.fills = list(ledger().fills)  # four closed trades: flat at the end
    flat = summarize(base)
    assert (flat["open_at_end"], flat["open_pnl"]) == (0, 0.0)
    base.fills.append(opening)
    s = summarize(base)
    assert s["open_at_end"] == 1
    assert s["open_pnl"] == pytest.approx(1034.55 - 1000.0 - 121.07)
    _print_summary({"summary": s, "by_source": {}}, 0.1)
    out = capsys.readouterr().out
    assert "open at end    1 position(s), -86.52 BTC unrealized (in return, not in PnL)" in out
    _print_summary({"summary": flat, "by_source": {}}, 0.1)
    assert "open at end" not in capsys.readouterr().out
