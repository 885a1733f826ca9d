"""The pure risk check: one test per rejection reason, the state rules, and a property test
that approved orders never breach a limit whatever the sequence of intents and prices."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptomon.events import OrderIntent
from cryptomon.trading.brokers.base import MarketInfo
from cryptomon.trading.risk import (
    CHECKS,
    Limits,
    MarketView,
    PortfolioView,
    RiskState,
    check,
    increases_exposure,
)

D = Decimal
INFO = MarketInfo(
    symbol="BTC-USDT",
    base="BTC",
    quote="USDT",
    tick_size=D("0.01"),
    lot_size=D("0.001"),
    min_amount=D("0.001"),
    min_notional=D(5),
)
LIMITS = Limits(
    auto_trading_enabled=True,
    max_position_size=D(1000),
    max_open_positions=2,
    max_symbol_exposure=D(1500),
    max_total_exposure=D(2500),
    daily_loss_limit=D(200),
    max_orders_per_minute=5,
    price_band_percentage=D(2),
    max_leverage=D(1),
)
MID = D(100)
MARKET = MarketView(mid=MID, info=INFO)
EMPTY = PortfolioView(equity=D(10000))


def intent(
    side: str = "buy",
    amount: str = "1",
    *,
    type: str = "market",
    price: str | None = None,
    symbol: str = "BTC-USDT",
    exchange: str = "binance",
    **kw: Any,
) -> OrderIntent:
    return OrderIntent(
        exchange=exchange,
        symbol=symbol,
        ts=0.0,
        ts_recv=0.0,
        client_order_id="cmsx",
        side=side,
        type=type,  # type: ignore[arg-type]
        amount=D(amount),
        price=None if price is None else D(price),
        **kw,
    )


def rejected(
    i: OrderIntent,
    p: PortfolioView = EMPTY,
    m: MarketView = MARKET,
    limits: Limits = LIMITS,
    state: RiskState = RiskState.ACTIVE,
) -> str:
    decision = check(i, p, m, limits, state)
    assert not decision.approved, "expected a rejection"
    assert decision.check in CHECKS
    assert decision.reason
    return decision.check


def test_plain_entry_is_approved() -> None:
    """A small market buy within every limit passes."""
    assert check(intent(amount="1"), EMPTY, MARKET, LIMITS).approved


def test_halted_allows_only_reduce_only_exits() -> None:
    """Halted: an entry is refused, a reduce-only stop-loss exit passes."""
    p = PortfolioView(equity=D(10000), positions={("binance", "BTC-USDT"): D(2)})
    assert rejected(intent(), p, state=RiskState.HALTED) == "halted"
    assert rejected(intent("sell", "1", origin="signal"), p, state=RiskState.HALTED) == "halted"
    exit_ = intent("sell", "2", reduce_only=True, origin="stop_loss")
    assert check(exit_, p, MARKET, LIMITS, RiskState.HALTED).approved


def test_reducing_refuses_growth_but_allows_reduction() -> None:
    """Reducing: new exposure is refused, a plain sell of part of a long passes."""
    p = PortfolioView(equity=D(10000), positions={("binance", "BTC-USDT"): D(2)})
    assert rejected(intent("buy", "1"), p, state=RiskState.REDUCING) == "reducing"
    assert check(
        intent("sell", "1", origin="manual"), p, MARKET, LIMITS, RiskState.REDUCING
    ).approved


def test_auto_trading_disabled_refuses_signals_not_manual() -> None:
    """With auto trading off a signal order is refused; the same manual order passes."""
    limits = replace(LIMITS, auto_trading_enabled=False)
    assert rejected(intent(origin="signal"), limits=limits) == "auto_trading_disabled"
    assert check(intent(origin="manual"), EMPTY, MARKET, limits).approved


def test_stale_feed_pauses_trading_except_kill_switch() -> None:
    """A stale feed refuses orders; the kill switch's flatten still goes out."""
    stale = replace(MARKET, stale=True)
    assert rejected(intent(), m=stale) == "stale_feed"
    p = PortfolioView(equity=D(10000), positions={("binance", "BTC-USDT"): D(1)})
    kill = intent("sell", "1", reduce_only=True, origin="kill_switch")
    assert check(kill, p, stale, LIMITS, RiskState.HALTED).approved


def test_no_market_price() -> None:
    """Without a mid price nothing can be valued: refused."""
    assert rejected(intent(), m=MarketView(mid=None, info=INFO)) == "no_market_price"


def test_invalid_amount() -> None:
    """Zero amount is refused."""
    assert rejected(intent(amount="0")) == "invalid_amount"


def test_lot_size() -> None:
    """An amount that is not a multiple of the lot size is refused."""
    assert rejected(intent(amount="1.0005")) == "lot_size"


@pytest.mark.parametrize("amount", ["1e40", "1e290"])
def test_a_huge_amount_is_refused_by_the_limits_not_a_decimal_error(amount: str) -> None:
    """The lot check's remainder raised DivisionImpossible when amount / lot has more than
    the 28 digits of Decimal's default context (engine.place_manual_order(amount="1e290")
    ended in a traceback); it is exact now, and the position limit refuses the order."""
    assert rejected(intent(amount=amount)) == "max_position_size"
    off_the_lot = f"{int(D(amount))}.0005"  # as a string: adding would round to 28 digits
    assert rejected(intent(amount=off_the_lot)) == "lot_size"


def test_min_amount() -> None:
    """An amount below the venue minimum is refused."""
    info = replace(INFO, min_amount=D("0.01"))
    assert rejected(intent(amount="0.005"), m=MarketView(mid=MID, info=info)) == "min_amount"


def test_tick_size() -> None:
    """A limit price off the tick grid is refused."""
    assert rejected(intent(type="limit", price="100.005")) == "tick_size"


def test_min_notional() -> None:
    """Notional below the venue minimum is refused."""
    assert rejected(intent(amount="0.04")) == "min_notional"


def test_price_band() -> None:
    """A limit price more than price_band_percentage from mid is refused; inside passes."""
    assert rejected(intent(type="limit", price="97.99")) == "price_band"
    assert check(intent(type="limit", price="98.01"), EMPTY, MARKET, LIMITS).approved


def test_max_orders_per_minute_spares_protective_exits() -> None:
    """At the rate limit an entry or a manual exit is refused; stop-loss, take-profit,
    kill-switch flatten and reconcile exits still pass."""
    p = PortfolioView(
        equity=D(10000), positions={("binance", "BTC-USDT"): D(1)}, orders_last_minute=5
    )
    assert rejected(intent(), p) == "max_orders_per_minute"
    for origin in ("stop_loss", "take_profit", "kill_switch", "reconcile"):
        exit_ = intent("sell", "1", reduce_only=True, origin=origin)
        assert check(exit_, p, MARKET, LIMITS).approved, origin
    assert rejected(intent("sell", "1", reduce_only=True, origin="manual"), p) == (
        "max_orders_per_minute"
    )


def test_reduce_only_must_reduce() -> None:
    """Reduce-only larger than the position, or on the wrong side, is refused."""
    p = PortfolioView(equity=D(10000), positions={("binance", "BTC-USDT"): D(1)})
    assert rejected(intent("sell", "2", reduce_only=True, origin="manual"), p) == "reduce_only"
    assert rejected(intent("buy", "1", reduce_only=True, origin="manual"), p) == "reduce_only"


def test_reduce_only_counts_closes_already_working() -> None:
    """A stop firing while a close of the whole position is in flight is refused: the two
    would sell the position twice and open a short; the part not yet being closed may go."""
    key = ("binance", "BTC-USDT")
    p = PortfolioView(equity=D(10000), positions={key: D(1)}, exiting={key: D("-0.6")})
    stop = intent("sell", "1", reduce_only=True, origin="stop_loss")
    assert rejected(stop, p) == "reduce_only"
    rest = intent("sell", "0.4", reduce_only=True, origin="stop_loss")
    assert check(rest, p, MARKET, LIMITS).approved


def test_short_not_allowed() -> None:
    """Selling into a short is refused unless allow_short."""
    assert rejected(intent("sell", "1")) == "short_not_allowed"
    assert check(intent("sell", "1"), EMPTY, MARKET, replace(LIMITS, allow_short=True)).approved


def test_a_sell_through_a_long_into_a_short_is_refused_without_allow_short() -> None:
    """A plain sell of more than the long holds ends short; without ``allow_short`` it is
    refused (before, a sell of up to twice the long "reduced the exposure" and was approved
    without the short check: long 1, sell 1.5 -> short 0.5; in ``reducing`` too). Closing the
    long exactly, reducing it, and buying back an existing short still pass."""
    key = ("binance", "BTC-USDT")
    long1 = PortfolioView(equity=D(10000), positions={key: D(1)})
    assert rejected(intent("sell", "1.5"), long1) == "short_not_allowed"
    assert rejected(intent("sell", "1.5"), long1, state=RiskState.REDUCING) in (
        "short_not_allowed",
        "reducing",
    )
    assert check(intent("sell", "1"), long1, MARKET, LIMITS).approved
    assert check(intent("sell", "0.5"), long1, MARKET, LIMITS).approved
    short1 = PortfolioView(equity=D(10000), positions={key: D(-1)})
    assert check(intent("buy", "0.5"), short1, MARKET, LIMITS).approved
    with_short = replace(LIMITS, allow_short=True)
    assert check(intent("sell", "1.5"), long1, MARKET, with_short).approved


def test_daily_loss_limit_halts_entries_only() -> None:
    """After the daily loss limit entries are refused; reducing is still allowed."""
    p = PortfolioView(equity=D(9800), daily_pnl=D(-200), positions={("binance", "BTC-USDT"): D(1)})
    assert rejected(intent("buy", "1"), p) == "daily_loss_limit"
    assert check(intent("sell", "1", origin="manual"), p, MARKET, LIMITS).approved


def test_max_open_positions() -> None:
    """A third market cannot be opened with max_open_positions = 2; adding to one can."""
    p = PortfolioView(
        equity=D(10000),
        positions={("binance", "ETH-USDT"): D(1), ("binance", "SOL-USDT"): D(1)},
        marks={("binance", "ETH-USDT"): D(10), ("binance", "SOL-USDT"): D(10)},
    )
    assert rejected(intent(), p) == "max_open_positions"
    assert check(intent(symbol="ETH-USDT"), p, MARKET, LIMITS).approved


def test_max_position_size_counts_pending_orders() -> None:
    """Position + open orders + this order above max_position_size is refused."""
    assert rejected(intent(amount="10.001")) == "max_position_size"
    p = PortfolioView(equity=D(10000), pending={("binance", "BTC-USDT"): D(6)})
    assert rejected(intent(amount="5"), p) == "max_position_size"
    assert check(intent(amount="4"), p, MARKET, LIMITS).approved


def test_max_symbol_exposure_across_exchanges() -> None:
    """The same symbol on two exchanges adds up against max_symbol_exposure."""
    p = PortfolioView(
        equity=D(10000), positions={("okx", "BTC-USDT"): D(8)}, marks={("okx", "BTC-USDT"): D(100)}
    )
    assert rejected(intent(amount="8"), p) == "max_symbol_exposure"
    assert check(intent(amount="7"), p, MARKET, LIMITS).approved


def test_max_total_exposure() -> None:
    """All positions together above max_total_exposure is refused."""
    p = PortfolioView(
        equity=D(10000),
        positions={("binance", "ETH-USDT"): D(20)},
        marks={("binance", "ETH-USDT"): D(100)},
    )
    assert rejected(intent(amount="6"), p) == "max_total_exposure"


def test_max_leverage() -> None:
    """Exposure above equity * max_leverage is refused, also with the venue's lower cap."""
    p = PortfolioView(equity=D(500))
    margin = MarketView(mid=MID, info=replace(INFO, max_leverage=D(5)))
    assert rejected(intent(amount="6"), p, margin) == "max_leverage"
    assert check(intent(amount="6"), p, margin, replace(LIMITS, max_leverage=D(2))).approved
    capped = MarketView(mid=MID, info=replace(INFO, max_leverage=D(1)))
    assert rejected(intent(amount="6"), p, capped, replace(LIMITS, max_leverage=D(2))) == (
        "max_leverage"
    )


def test_increases_exposure() -> None:
    """Buying from flat grows exposure; selling part of a long does not; flipping does."""
    p = PortfolioView(equity=D(1), positions={("binance", "BTC-USDT"): D(2)})
    assert increases_exposure(intent("buy", "1"), EMPTY)
    assert not increases_exposure(intent("sell", "1"), p)
    assert increases_exposure(intent("sell", "5"), p)


# --------------------------------------------------------------------------- property

MARKETS = tuple((x, s) for x in ("binance", "okx") for s in ("BTC-USDT", "ETH-USDT", "SOL-USDT"))
PROP_LIMITS = Limits(
    auto_trading_enabled=True,
    max_position_size=D(800),
    max_open_positions=3,
    max_symbol_exposure=D(1200),
    max_total_exposure=D(1800),
    daily_loss_limit=D(150),
    max_orders_per_minute=4,
    price_band_percentage=D(3),
    max_leverage=D(2),
    allow_short=True,
)

step = st.fixed_dictionaries(
    {
        "market": st.sampled_from(MARKETS),
        "side": st.sampled_from(["buy", "sell"]),
        "lots": st.integers(min_value=10, max_value=12000) | st.sampled_from([4000, 7000, 9000]),
        "move": st.integers(min_value=-60, max_value=60),  # price change in 0.1% steps
        "limit": st.none() | st.integers(min_value=-40, max_value=40),  # offset in 0.1%
        "reduce_only": st.sampled_from([False, False, True]),
        "origin": st.sampled_from(["signal", "manual", "stop_loss"]),
        "stale": st.sampled_from([False] * 9 + [True]),
        "dt": st.integers(min_value=0, max_value=40),
        "state": st.sampled_from([RiskState.ACTIVE] * 6 + [RiskState.REDUCING, RiskState.HALTED]),
    }
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=40))
def test_approved_orders_never_breach_a_limit(steps: list[dict[str, Any]]) -> None:
    """Any sequence of intents and prices: what risk approves (filled at once) keeps every
    limit: size, count, symbol/total exposure, leverage, rate, band, lot/tick, notional,
    daily loss, reduce-only, risk state."""
    lim = PROP_LIMITS
    info = replace(INFO, lot_size=D("0.001"), min_notional=D(1), max_leverage=D(3))
    prices = {s: D(100) for s in ("BTC-USDT", "ETH-USDT", "SOL-USDT")}
    pos: dict[tuple[str, str], Decimal] = {m: D(0) for m in MARKETS}
    cash = D(800)
    start = cash
    now = 0.0
    sent: list[float] = []
    for s in steps:
        now += s["dt"]
        key = s["market"]
        sym = key[1]
        prices[sym] = (prices[sym] * (1 + D(s["move"]) / 1000)).quantize(D("0.01"))
        mid = prices[sym]
        price = None
        if s["limit"] is not None:
            price = (mid * (1 + D(s["limit"]) / 1000)).quantize(D("0.01"))
        i = intent(
            s["side"],
            str(D(s["lots"]) * info.lot_size),
            symbol=sym,
            exchange=key[0],
            type="limit" if price is not None else "market",
            price=None if price is None else str(price),
            reduce_only=s["reduce_only"],
            origin=s["origin"],
        )
        equity = cash + sum(pos[k] * prices[k[1]] for k in MARKETS)
        recent = [t for t in sent if t > now - 60]
        view = PortfolioView(
            equity=equity,
            daily_pnl=equity - start,
            positions={k: v for k, v in pos.items() if v != 0},
            marks={k: prices[k[1]] for k in MARKETS},
            orders_last_minute=len(recent),
        )
        market = MarketView(mid=mid, stale=s["stale"], info=info)
        decision = check(i, view, market, lim, s["state"])
        if not decision.approved:
            continue
        grows = increases_exposure(i, view)
        fill_price = price if price is not None else mid
        # every approval respects the state, feed, venue and band rules
        assert not s["stale"]
        assert s["state"] == RiskState.ACTIVE or not grows
        if s["state"] == RiskState.HALTED:
            assert i.reduce_only
        assert i.amount % info.lot_size == 0
        assert i.amount * fill_price >= info.min_notional
        if price is not None:
            assert abs(price - mid) / mid * 100 <= lim.price_band_percentage
        if i.origin != "stop_loss":
            assert len(recent) < lim.max_orders_per_minute
            sent.append(now)
        before = pos[key]
        pos[key] += i.amount if i.side == "buy" else -i.amount
        cash -= (i.amount if i.side == "buy" else -i.amount) * fill_price
        if i.reduce_only:
            assert abs(pos[key]) < abs(before)
            assert pos[key] == 0 or (pos[key] > 0) == (before > 0)
        if grows:
            assert view.daily_pnl > -lim.daily_loss_limit
            value = {k: abs(pos[k]) * (fill_price if k == key else prices[k[1]]) for k in MARKETS}
            assert value[key] <= lim.max_position_size
            assert sum(v for k, v in value.items() if k[1] == sym) <= lim.max_symbol_exposure
            total = sum(value.values())
            assert total <= lim.max_total_exposure
            assert total <= equity * lim.max_leverage
            assert sum(1 for k in MARKETS if pos[k] != 0) <= lim.max_open_positions


@pytest.mark.parametrize("name", CHECKS)
def test_every_check_name_is_documented(name: str) -> None:
    """Each check name is a short snake_case identifier (stable for the API and alerts)."""
    assert name.replace("_", "").isalpha()
    assert name.islower()


def test_unknown_instrument_refuses_sizing_but_not_exits() -> None:
    """Without an instrument spec no order grows exposure; a reducing exit still passes."""
    unknown = replace(MARKET, spec_known=False)
    assert rejected(intent(), m=unknown) == "unknown_instrument"
    p = PortfolioView(equity=D(10000), positions={("binance", "BTC-USDT"): D(1)})
    assert check(intent("sell", "1", origin="manual"), p, unknown, LIMITS).approved


def test_a_delisted_market_keeps_its_protective_exits() -> None:
    """Delisted (stale for good): entries and manual orders are refused, a reduce-only
    stop-loss exit goes through; merely stale, the stop waits for data."""
    p = PortfolioView(equity=D(10000), positions={("binance", "BTC-USDT"): D(1)})
    stop = intent("sell", "1", reduce_only=True, origin="stop_loss")
    delisted = replace(MARKET, stale=True, delisted=True)
    assert check(stop, p, delisted, LIMITS).approved
    assert rejected(intent(), p, m=delisted) == "stale_feed"
    assert rejected(stop, p, m=replace(MARKET, stale=True)) == "stale_feed"


def test_an_unmanaged_market_refuses_every_order_that_is_not_reduce_only() -> None:
    """The venue holds a position there that the engine did not open: an entry (or a
    manual order) would net against it, so it is refused with what to do; nothing else."""
    what = "BTC-USDT: the venue holds -0.2 contracts that cryptomon did not open"
    unmanaged = replace(MARKET, unmanaged=what)
    decision = check(intent(), PortfolioView(equity=D(10000)), unmanaged, LIMITS)
    assert (decision.approved, decision.check, decision.reason) == (
        False,
        "unmanaged_position",
        what,
    )
    assert rejected(intent("sell", "1", origin="manual"), m=unmanaged) == "unmanaged_position"
    assert check(intent(), PortfolioView(equity=D(10000)), MARKET, LIMITS).approved


def test_rejection_reasons_spell_amounts_plainly() -> None:
    """A venue's steps and an order's amounts come as Decimals in any spelling (``1E-8``,
    ``0.0010000``); the reasons people read show them as plain digits, never an exponent."""
    info = replace(INFO, lot_size=D("1E-5"), min_amount=D("1E-8"), min_notional=D("5E+1"))
    market = MarketView(mid=MID, info=info)

    def reason(i: OrderIntent) -> str:
        decision = check(i, EMPTY, market, LIMITS)
        assert not decision.approved
        return decision.reason

    assert (
        reason(intent(amount="1.000000001E-3"))
        == "amount 0.001000000001 is not a multiple of lot size 0.00001"
    )
    assert reason(intent(amount="0.10000")) == "notional 10 < minimum 50"
    assert (
        reason(intent(type="limit", amount="1", price="1.5E+2"))
        == "limit price 150 is 50.00% from mid 100 (band 2%)"
    )


def test_the_daily_loss_reason_spells_the_loss_and_the_limit_plainly() -> None:
    """The daily loss refusal shows the day's PnL as plain digits, at most 8 decimal places
    (an equity with an inverse contract's 1/price in it carries 28 digits), and the limit as
    given in any spelling (``2.0E+2``, from ``200.0`` in YAML) as plain digits."""
    limits = replace(LIMITS, daily_loss_limit=D("2.0E+2"))
    for pnl, shown in (
        ("-200.1234567891234567891234567", "-200.12345679"),
        ("-2.00E+2", "-200"),
        ("-250.50000000", "-250.5"),
    ):
        p = PortfolioView(equity=D(9800), daily_pnl=D(pnl))
        decision = check(intent("buy", "1"), p, MARKET, limits)
        assert (decision.check, decision.reason) == (
            "daily_loss_limit",
            f"daily loss {shown} reached the limit -200",
        )


def test_exposure_reasons_spell_values_plainly() -> None:
    """The position size, exposure and leverage refusals show their values as plain digits
    (no exponent, no trailing zeros, at most 8 decimal places)."""
    p = PortfolioView(equity=D("10000.000"))
    m = MarketView(mid=D("100.00000"), info=INFO)

    def reason(i: OrderIntent, limits: Limits = LIMITS) -> str:
        decision = check(i, p, m, limits)
        assert not decision.approved
        return decision.reason

    assert reason(intent(amount="10.01")) == "position would be 1001 USDT (max 1000 USDT)"
    assert (
        reason(
            intent(amount="10.01"),
            replace(LIMITS, max_position_size=D("1.5E+3"), max_symbol_exposure=D("1.0E+3")),
        )
        == "BTC-USDT exposure would be 1001 USDT (max 1000 USDT)"
    )
    low = replace(LIMITS, max_leverage=D("0.050"))
    assert (
        reason(intent(amount="9"), low)
        == "exposure 900 USDT on equity 10000 USDT exceeds leverage 0.05"
    )


@pytest.mark.parametrize("digits", [26, 27, 28, 29, 30])
@pytest.mark.parametrize("step", ["0.001", "0.5", "7", "0.00000013"])
def test_the_lot_check_is_exact_at_and_past_the_context_precision(digits: int, step: str) -> None:
    """A quotient the default context holds is taken there, a longer one in a wider local
    context: either way the answer is that of exact integer arithmetic."""
    from cryptomon.trading.risk import _multiple

    lot = D(step)
    places = -int(lot.as_tuple().exponent)  # the lot as an integer number of 10**-places
    units = int(lot.scaleb(places))
    for k in (10 ** (digits - 1) + 3, 10**digits - 1, 123456789 * 10 ** (digits - 9)):
        for extra in (0, 1):
            value = D(f"{k * units + extra}E-{places}")  # from text: exact at any length
            exact = (k * units + extra) % units == 0
            assert _multiple(value, lot) is exact
