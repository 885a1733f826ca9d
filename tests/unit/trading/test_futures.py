"""Contract math: PnL, margin, liquidation estimate and funding for linear and inverse
contracts, checked against hand computations."""

from __future__ import annotations

from decimal import Decimal

from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.trading.futures import (
    Bracket,
    average_entry,
    funding_payment,
    initial_margin,
    is_contract,
    liquidation_price,
    maintenance_margin,
    mmr_for,
    pnl,
    settle_currency,
    stop_problem,
    value,
)

D = Decimal
LINEAR = InstrumentSpec(
    exchange="binance_futures",
    symbol="BTC-USDT-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDT",
    settle="USDT",
)
INVERSE = InstrumentSpec(
    exchange="huobi_swap",
    symbol="BTC-USD-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USD",
    settle="BTC",
    contract_size=D(100),
    inverse=True,
)
SPOT = InstrumentSpec(exchange="binance", symbol="BTC-USDT", kind="spot", base="BTC", quote="USDT")


def test_contract_kinds_and_settle_currency() -> None:
    """Perpetuals are contracts settled in their settle currency; spot is not a contract."""
    assert is_contract(LINEAR)
    assert is_contract(INVERSE)
    assert not is_contract(SPOT)
    assert not is_contract(None)
    assert settle_currency(LINEAR) == "USDT"
    assert settle_currency(INVERSE) == "BTC"


def test_linear_pnl_long_and_short() -> None:
    """Linear PnL is contracts x size x (exit - entry), in the quote, signed by the side."""
    assert pnl(LINEAR, D("0.5"), D(20000), D(21000)) == D(500)
    assert pnl(LINEAR, D("-0.5"), D(20000), D(21000)) == D(-500)


def test_inverse_pnl_is_in_the_base_coin() -> None:
    """Inverse PnL is contracts x size x (1/entry - 1/exit), in the base coin."""
    got = pnl(INVERSE, D(10), D(20000), D(25000))
    assert got == D(10) * D(100) * (D(1) / D(20000) - D(1) / D(25000))
    assert got == D("0.01")
    assert pnl(INVERSE, D(-10), D(20000), D(25000)) == D("-0.01")


def test_value_and_margins() -> None:
    """Initial margin is the entry value over the leverage, maintenance the mark value x mmr."""
    assert value(LINEAR, D(-2), D(100)) == D(200)
    assert initial_margin(LINEAR, D(2), D(100), D(5)) == D(40)
    assert maintenance_margin(LINEAR, D(2), D(100), D("0.004")) == D("0.8")
    assert initial_margin(INVERSE, D(10), D(20000), D(5)) == D("0.01")


def test_average_entry_linear_and_harmonic_inverse() -> None:
    """Adding contracts averages the entry; inverse uses the harmonic mean so PnL stays exact."""
    assert average_entry(LINEAR, D(1), D(100), D(1), D(200)) == D(150)
    entry = average_entry(INVERSE, D(1), D(100), D(1), D(200))
    assert entry == D(2) / (D(1) / D(100) + D(1) / D(200))
    total = pnl(INVERSE, D(2), entry, D(300))
    parts = pnl(INVERSE, D(1), D(100), D(300)) + pnl(INVERSE, D(1), D(200), D(300))
    assert abs(total - parts) < D("1e-20")


def test_liquidation_price_linear_formula() -> None:
    """Isolated linear: long entry x (1 - 1/L + mmr), short entry x (1 + 1/L - mmr)."""
    assert liquidation_price(LINEAR, True, D(20000), D(5), D("0.004")) == D(16080)
    assert liquidation_price(LINEAR, False, D(20000), D(5), D("0.004")) == D(23920)


def test_liquidation_price_inverse_formula() -> None:
    """Inverse: the same formula in 1/price; a 1x inverse short has no liquidation."""
    long = liquidation_price(INVERSE, True, D(20000), D(5), D("0.005"))
    assert long == D(20000) / D("1.195")
    short = liquidation_price(INVERSE, False, D(20000), D(5), D("0.005"))
    assert short == D(20000) / D("0.805")
    assert liquidation_price(INVERSE, False, D(20000), D(1), D(0)) is None


def test_funding_longs_pay_shorts_on_a_positive_rate() -> None:
    """A positive funding rate is paid by longs and received by shorts, on the mark value."""
    assert funding_payment(LINEAR, D(1), D(20000), D("0.0001")) == D(-2)
    assert funding_payment(LINEAR, D(-1), D(20000), D("0.0001")) == D(2)
    assert funding_payment(INVERSE, D(10), D(20000), D("0.0001")) == D("-0.000005")


def test_mmr_from_brackets_else_default() -> None:
    """The maintenance rate comes from the venue tier holding the notional, else the config."""
    tiers = [Bracket(D(50000), D("0.004")), Bracket(D(250000), D("0.005"))]
    assert mmr_for(tiers, D(1000), D("0.01")) == D("0.004")
    assert mmr_for(tiers, D(100000), D("0.01")) == D("0.005")
    assert mmr_for(tiers, D(10**9), D("0.01")) == D("0.005")
    assert mmr_for([], D(1000), D("0.01")) == D("0.01")


def test_stop_problem_when_liquidation_is_inside_the_stop() -> None:
    """A 20x long with a 10% stop would be liquidated before its stop: named as a problem."""
    problem = stop_problem(
        LINEAR, long=True, entry=D(20000), stop=D(18000), leverage=D(20), mmr=D("0.004")
    )
    assert problem is not None
    assert "liquidation price" in problem
    assert "stop-loss" in problem
    assert (
        stop_problem(
            LINEAR, long=True, entry=D(20000), stop=D(19400), leverage=D(5), mmr=D("0.004")
        )
        is None
    )
    assert (
        stop_problem(
            LINEAR, long=False, entry=D(20000), stop=D(22000), leverage=D(20), mmr=D("0.004")
        )
        is not None
    )
    assert (
        stop_problem(LINEAR, long=False, entry=D(20000), stop=None, leverage=D(20), mmr=D("0.004"))
        is None
    )


def test_funding_schedule_settles_each_funding_time_once() -> None:
    """A stream that keeps announcing the passed funding time T for a while (the venue's
    mark-price stream moves its next time a little after T) settles T once, then the next
    time once. Before, every announcement after T that still named T settled it again."""
    from cryptomon.trading.futures import FundingSchedule

    key = ("binance_futures", "BTC-USDT-PERP")
    sched = FundingSchedule()
    t = 1_700_028_800.0
    assert sched.due(key, t - 10, D("0.0001"), t) is None
    assert sched.due(key, t + 1, D("0.0002"), t) == (t, D("0.0001"))
    assert sched.due(key, t + 2, D("0.0002"), t) is None  # stale: T again
    assert sched.due(key, t + 3, D("0.0003"), t + 28_800) is None
    assert sched.due(key, t + 28_801, D("0.0003"), t + 57_600) == (t + 28_800, D("0.0003"))
