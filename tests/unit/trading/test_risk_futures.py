"""The risk check on contract entries: an order whose estimated liquidation price lies inside
its stop-loss is refused; exits and safe stops pass."""

from __future__ import annotations

from decimal import Decimal

from cryptomon.events import OrderIntent
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.trading.futures import ContractTerms
from cryptomon.trading.risk import Limits, MarketView, PortfolioView, check

D = Decimal
PERP = InstrumentSpec(
    exchange="binance_futures",
    symbol="BTC-USDT-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDT",
    settle="USDT",
)
LIMITS = Limits(
    auto_trading_enabled=True,
    max_position_size=D(100_000),
    max_symbol_exposure=D(100_000),
    max_total_exposure=D(100_000),
    max_leverage=D(20),
    allow_short=True,
)
EQUITY = PortfolioView(equity=D(10_000))


def terms(leverage: int) -> ContractTerms:
    return ContractTerms(spec=PERP, leverage=D(leverage), margin_mode="isolated", mmr=D("0.004"))


def entry(side: str, stop: str | None, **kw: object) -> OrderIntent:
    return OrderIntent(
        exchange="binance_futures",
        symbol="BTC-USDT-PERP",
        ts=0.0,
        ts_recv=0.0,
        client_order_id="cmfut",
        side=side,  # type: ignore[arg-type]
        type="market",
        amount=D("0.1"),
        stop_loss=None if stop is None else D(stop),
        **kw,  # type: ignore[arg-type]
    )


def test_long_with_liquidation_inside_stop_is_rejected() -> None:
    """20x long at 20000 liquidates near 19080: a stop at 18000 is refused, naming both."""
    market = MarketView(mid=D(20000), contract=terms(20))
    decision = check(entry("buy", "18000"), EQUITY, market, LIMITS)
    assert not decision.approved
    assert decision.check == "liquidation_inside_stop"
    assert "19080" in decision.reason
    assert "18000" in decision.reason


def test_short_with_liquidation_inside_stop_is_rejected() -> None:
    """20x short at 20000 liquidates near 20920: a stop at 22000 is refused."""
    market = MarketView(mid=D(20000), contract=terms(20))
    decision = check(entry("sell", "22000"), EQUITY, market, LIMITS)
    assert decision.check == "liquidation_inside_stop"


def test_stop_before_liquidation_passes() -> None:
    """5x long (liquidation ~16080) with a 3% stop at 19400 is approved."""
    market = MarketView(mid=D(20000), contract=terms(5))
    assert check(entry("buy", "19400"), EQUITY, market, LIMITS).approved
    assert check(entry("sell", "20600"), EQUITY, market, LIMITS).approved


def test_spot_and_exits_are_not_checked_for_liquidation() -> None:
    """Without contract terms (spot) or on a reduce-only exit there is no liquidation check."""
    spot = MarketView(mid=D(20000))
    assert check(entry("buy", "18000"), EQUITY, spot, LIMITS).approved
    held = PortfolioView(equity=D(10_000), positions={("binance_futures", "BTC-USDT-PERP"): D(1)})
    market = MarketView(mid=D(20000), contract=terms(20))
    exit_ = entry("sell", "22000", reduce_only=True, origin="stop_loss")
    assert check(exit_, held, market, LIMITS).approved


def test_an_add_is_checked_at_the_position_s_new_average_entry() -> None:
    """Long 0.1 at 20000 (5x, mmr 0.4%), adding 0.1 at 18000 with a stop at 14600: the
    position's entry becomes 19000 and its liquidation 19000 x 0.804 = 15276, above the stop:
    refused. Before, the add was checked alone at 18000 (liquidation 14472) and passed."""
    key = ("binance_futures", "BTC-USDT-PERP")
    held = PortfolioView(equity=D(10_000), positions={key: D("0.1")}, entries={key: D(20000)})
    market = MarketView(mid=D(18000), contract=terms(5))
    decision = check(entry("buy", "14600"), held, market, LIMITS)
    assert decision.check == "liquidation_inside_stop"
    assert "15276" in decision.reason
    assert check(entry("buy", "15300"), held, market, LIMITS).approved
    fresh = check(entry("buy", "14600"), EQUITY, market, LIMITS)  # no position: 18000 x 0.804
    assert fresh.approved
