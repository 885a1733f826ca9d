"""Portfolio accounting: positions, realized/unrealized PnL, fees, cash, equity and stats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon.events import Fill
from cryptomon.trading.portfolio import Portfolio, Position
from tests import stubs

D = Decimal
_SEQ = [0]


def fill(
    side: str,
    amount: str,
    price: str,
    fee: str = "0",
    ts: float = 1.0,
    symbol: str = "BTC-USDT",
    fee_currency: str = "USDT",
) -> Fill:
    _SEQ[0] += 1
    return stubs.fill(
        f"t{_SEQ[0]}",
        "cm",
        symbol=symbol,
        ts=ts,
        ts_recv=ts,
        side=side,
        amount=D(amount),
        price=D(price),
        fee=D(fee),
        fee_currency=fee_currency,
    )


def test_long_round_trip_pnl_by_hand() -> None:
    """Buy 2 @100 (fee 0.2), buy 1 @106 (0.106), sell 3 @110 (0.33): hand-computed PnL."""
    p = Portfolio(quote="USDT", cash=D(1000))
    p.apply_fill(fill("buy", "2", "100", "0.2"))
    p.apply_fill(fill("buy", "1", "106", "0.106"))
    pos = p.position("binance", "BTC-USDT")
    assert pos.avg_price == D(102)
    assert pos.amount == 3
    result = p.apply_fill(fill("sell", "3", "110", "0.33", ts=5.0))
    assert result is not None
    assert result.side == "long"
    assert pos.realized_pnl == D(24)  # 3 * (110 - 102)
    assert result.pnl == D(24) - D("0.636")
    assert p.cash == D(1000) - 200 - D("0.2") - 106 - D("0.106") + 330 - D("0.33")
    assert pos.amount == 0
    assert pos.avg_price == 0


def test_short_round_trip_and_unrealized_mark() -> None:
    """A short gains when the price falls; unrealized PnL follows the mark."""
    p = Portfolio(quote="USDT", cash=D(1000))
    p.apply_fill(fill("sell", "1", "100"))
    p.mark("binance", "BTC-USDT", D(90))
    pos = p.position("binance", "BTC-USDT")
    assert pos.unrealized_pnl == D(10)
    assert p.equity == D(1010)
    result = p.apply_fill(fill("buy", "1", "95"))
    assert result is not None
    assert result.side == "short"
    assert result.pnl == D(5)


def test_flip_closes_one_trip_and_opens_another() -> None:
    """Selling more than the long closes it and opens a short at the fill price."""
    pos = Position(exchange="binance", symbol="BTC-USDT")
    pos.apply("buy", D(1), D(100), D(0), 1.0)
    result = pos.apply("sell", D(3), D(110), D(0), 2.0)
    assert result is not None
    assert result.pnl == D(10)
    assert pos.amount == D(-2)
    assert pos.avg_price == D(110)


def test_base_currency_fee_shrinks_the_position_not_the_cash() -> None:
    """A buy's fee charged in BTC leaves amount - fee held; cash pays only the notional."""
    p = Portfolio(quote="USDT", cash=D(1000))
    p.apply_fill(fill("buy", "1", "100", "0.001", fee_currency="BTC"))
    pos = p.position("binance", "BTC-USDT")
    assert pos.amount == D("0.999")
    assert p.cash == D(900)
    assert pos.fees == D("0.1")
    assert p.equity == D(900) + D("0.999") * 100


def test_base_fee_round_trip_pnl_equals_the_cash_change() -> None:
    """Buy 1 @100 (fee 0.001 BTC), sell the 0.999 held @110 (fee in USDT): net = cash moved."""
    p = Portfolio(quote="USDT", cash=D(1000))
    p.apply_fill(fill("buy", "1", "100", "0.001", fee_currency="BTC"))
    result = p.apply_fill(fill("sell", "0.999", "110", "0.10989", ts=2.0))
    assert result is not None
    assert p.position("binance", "BTC-USDT").amount == 0
    assert result.pnl == p.cash - D(1000)
    assert p.cash == D(1000) - 100 + D("109.89") - D("0.10989")


def test_third_currency_fee_is_a_separate_balance_valued_when_priced() -> None:
    """A BNB fee is neither cash nor base: tracked as BNB, valued only at a known BNB price."""
    p = Portfolio(quote="USDT", cash=D(1000))
    p.apply_fill(fill("buy", "1", "100", "0.01", fee_currency="BNB"))
    pos = p.position("binance", "BTC-USDT")
    assert pos.amount == 1
    assert p.cash == D(900)
    assert p.fee_balances == {"BNB": D("-0.01")}
    assert p.equity == D(1000)  # BNB price unknown: not valued (never as BTC)
    p.observe_price("BNB-USDT", D(300))
    assert p.equity == D(1000) - 3
    p.apply_fill(fill("sell", "1", "100", "0.01", fee_currency="BNB", ts=2.0))
    assert pos.fees == D(3)  # the second fee is valued at the BNB price now known
    assert p.stats()["fee_balances"] == {"BNB": "-0.02"}


def test_dust_below_the_lot_leaves_the_position_and_stays_in_equity() -> None:
    """A leftover smaller than the lot closes the round trip and is kept as dust."""
    p = Portfolio(quote="USDT", cash=D(1000))
    p.apply_fill(fill("buy", "0.012345", "100", "0.000012345", fee_currency="BTC"))
    p.apply_fill(fill("sell", "0.01233", "100", "0", ts=2.0))
    equity = p.equity
    result = p.sweep_dust("binance", "BTC-USDT", D("0.00001"), D(100), 3.0)
    assert result is not None
    assert p.position("binance", "BTC-USDT").amount == 0
    assert p.dust == {"BTC": D("0.000002655")}
    assert p.equity == equity
    assert p.open_positions() == []


def test_stats_win_rate_profit_factor_drawdown_sharpe() -> None:
    """Two wins and one loss: win rate, averages, profit factor, drawdown and Sharpe."""
    p = Portfolio(quote="USDT", cash=D(1000))
    p.snapshot(0.0)
    for buy, sell in (("100", "110"), ("100", "95"), ("100", "120")):
        p.apply_fill(fill("buy", "1", buy))
        p.apply_fill(fill("sell", "1", sell))
    s = p.stats()
    assert s["trades"] == 3
    assert s["wins"] == 2
    assert s["losses"] == 1
    assert s["win_rate"] == pytest.approx(2 / 3)
    assert D(s["avg_win"]) == D(15)
    assert D(s["avg_loss"]) == D(-5)
    assert s["profit_factor"] == pytest.approx(30 / 5)
    assert s["max_drawdown"] == pytest.approx(5 / 1010)
    rets = [0.10, -0.05, 0.20]
    mean = sum(rets) / 3
    sd = (sum((r - mean) ** 2 for r in rets) / 2) ** 0.5
    assert s["sharpe"] == pytest.approx(mean / sd * 3**0.5)
    assert D(s["net_pnl"]) == D(25)
    assert D(s["equity"]) == D(1025)


def test_daily_pnl_resets_at_utc_midnight() -> None:
    """Daily PnL counts from the first equity of the UTC day."""
    p = Portfolio(quote="USDT", cash=D(1000))
    day = 1_700_006_400.0  # 2023-11-15 00:00 UTC
    p.snapshot(day + 10)
    p.apply_fill(fill("buy", "1", "100", ts=day + 20))
    p.mark("binance", "BTC-USDT", D(80))
    assert p.daily_pnl(day + 30) == D(-20)
    assert p.daily_pnl(day + 86_400 + 5) == 0


fills_strategy = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(min_value=1, max_value=50),  # amount in 0.1
        st.integers(min_value=50, max_value=150),  # price
        st.integers(min_value=0, max_value=30),  # fee in 0.01
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(fills_strategy, st.integers(min_value=50, max_value=150))
def test_pnl_and_positions_reconcile_with_fills(
    raw: list[tuple[str, int, int, int]], mark: int
) -> None:
    """For any fills: position = signed sum of fill amounts; cash = the fills' flows;
    equity - start = realized + unrealized - fees; closed trips sum to realized - their fees."""
    start = D(10000)
    p = Portfolio(quote="USDT", cash=start)
    signed = D(0)
    flows = D(0)
    fees = D(0)
    for side, amt, price, fee in raw:
        f = fill(side, str(D(amt) / 10), str(price), str(D(fee) / 100))
        p.apply_fill(f)
        signed += f.amount if side == "buy" else -f.amount
        flows += (-f.amount if side == "buy" else f.amount) * f.price - f.fee
        fees += f.fee
    p.mark("binance", "BTC-USDT", D(mark))
    pos = p.position("binance", "BTC-USDT")
    assert pos.amount == signed
    assert p.cash == start + flows
    assert pos.fees == fees
    assert p.equity - start == pos.realized_pnl + pos.unrealized_pnl - pos.fees
    open_trip_fees = pos.trip_fees
    assert sum((t.pnl for t in p.trades), D(0)) == pos.realized_pnl - pos.trip_pnl - (
        fees - open_trip_fees
    )


def test_rebasing_cash_to_the_venue_is_not_pnl() -> None:
    """Cash set from the venue (engine started at 0) moves equity, not the day's PnL or the
    drawdown."""
    p = Portfolio(quote="USDT", cash=D(0))
    p.apply_fill(fill("buy", "1", "100", "0.1", ts=10.0))
    p.mark("binance", "BTC-USDT", D(90))
    before = p.daily_pnl(20.0)
    assert p.rebase_cash(D(5000)) == D("5100.1")
    assert p.cash == D(5000)
    assert p.daily_pnl(20.0) == before
    assert p.equity == D(5090)
    assert p.max_drawdown < D("0.01")


@pytest.mark.parametrize(
    "base",
    [0.0, 86_400.0 * 19_723, -86_400.0 * 3],  # the epoch, 2024-01-01, before the epoch
)
def test_utc_day_matches_datetime_at_and_around_day_edges(base: float) -> None:
    """utc_day remembers the last day's span; near an edge (the microsecond rounding of
    datetime.fromtimestamp) and in any order it names the day datetime formats."""
    from datetime import UTC, datetime

    from cryptomon.trading.portfolio import utc_day

    offsets = [43_200.0, 0.0, 4e-7, 5e-7, 6e-7, 0.001, 86_399.999, 86_400.0 - 6e-7]
    offsets += [86_400.0 - 5e-7, 86_400.0 - 4e-7, 86_400.0, 1.0, 86_399.0, -1e-7, -0.5]
    for ts in [base + o for o in offsets] + [base + o for o in reversed(offsets)]:
        assert utc_day(ts) == datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d"), ts


def test_a_fill_stamped_yesterday_does_not_reset_todays_loss() -> None:
    """A fill whose venue time is still yesterday (an order that filled just before midnight,
    learned of after it, or settled after a restart) is booked without moving the day back:
    the day's loss so far still counts toward ``daily_loss_limit``. Before, the old stamp
    rolled the day back and the next snapshot rolled it forward with the current equity as
    the day's start, so the loss made so far today was forgotten."""
    p = Portfolio(quote="USDT", cash=D(1000))
    day = 1_700_006_400.0  # 2023-11-15 00:00 UTC
    p.apply_fill(fill("buy", "1", "100", ts=day - 3600))
    assert p.daily_pnl(day + 10) == 0  # the new day starts at 1000
    p.mark("binance", "BTC-USDT", D(70))
    assert p.daily_pnl(day + 20) == D(-30)
    p.apply_fill(fill("buy", "1", "70", ts=day - 1))  # venue time: yesterday
    assert p.day == "2023-11-15"
    assert p.daily_pnl(day + 30) == D(-30)


def test_daily_pnl_rolls_with_the_utc_day() -> None:
    """daily_pnl snapshots the day's start equity once per UTC day."""
    p = Portfolio(quote="USDT", cash=D("1000"))
    day = 86_400.0 * 19_723
    assert p.daily_pnl(day + 10.0) == 0
    assert p.day == "2024-01-01"
    p.cash = D("1100")
    assert p.daily_pnl(day + 86_399.5) == D("100")
    assert p.daily_pnl(day + 86_400.0) == 0
    assert p.day == "2024-01-02"


def test_daily_pnl_takes_the_equity_its_caller_just_computed() -> None:
    """Given the current equity, daily_pnl answers as it does when computing it, across a day
    roll too (the roll's snapshot still starts the day at the equity)."""
    p = Portfolio(quote="USDT", cash=D("1000"))
    day = 86_400.0 * 19_723
    assert p.daily_pnl(day + 10.0, p.equity) == 0
    p.cash = D("1100")
    assert p.daily_pnl(day + 20.0, p.equity) == D("100") == p.daily_pnl(day + 20.0)
    assert p.daily_pnl(day + 20.0, D("1150")) == D("150")  # the figure given is the one used
    p.cash = D("1200")
    assert p.daily_pnl(day + 86_400.0, p.equity) == 0
    assert p.day == "2024-01-02"
    assert p.day_start_equity == D("1200")
