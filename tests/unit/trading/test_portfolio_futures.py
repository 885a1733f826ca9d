"""Contract positions in the portfolio: long and short, linear and inverse, PnL in the settle
currency, margin, liquidation estimate and funding, against hand computations."""

from __future__ import annotations

from decimal import Decimal

from cryptomon.events import Fill
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.trading.futures import ContractTerms
from cryptomon.trading.portfolio import Portfolio

D = Decimal
LINEAR = InstrumentSpec(
    exchange="sim",
    symbol="BTC-USDT-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDT",
    settle="USDT",
)
INVERSE = InstrumentSpec(
    exchange="sim",
    symbol="BTC-USD-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USD",
    settle="BTC",
    contract_size=D(100),
    inverse=True,
)
SPECS = {s.symbol: s for s in (LINEAR, INVERSE)}


def terms(exchange: str, symbol: str) -> ContractTerms | None:
    spec = SPECS.get(symbol)
    if spec is None:
        return None
    return ContractTerms(spec=spec, leverage=D(5), margin_mode="isolated", mmr=D("0.004"))


def fill(symbol: str, side: str, qty: str, price: str, fee: str, ccy: str, n: int) -> Fill:
    return Fill(
        exchange="sim",
        symbol=symbol,
        ts=float(n),
        ts_recv=float(n),
        trade_id=f"t{n}",
        client_order_id=f"c{n}",
        side=side,  # type: ignore[arg-type]
        amount=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency=ccy,
    )


def test_linear_long_5x_with_funding_closes_at_the_hand_pnl() -> None:
    """0.5 BTC long 20000 -> 21000 at 5x, one funding at 0.01%: PnL 500 - 1 - fees."""
    pf = Portfolio(quote="USDT", cash=D(10_000), terms=terms)
    pf.apply_fill(fill("BTC-USDT-PERP", "buy", "0.5", "20000", "4", "USDT", 1))
    pos = pf.positions[("sim", "BTC-USDT-PERP")]
    event = pos.event(1.0, 1.0)
    assert event.side == "long"
    assert event.initial_margin == D(2000)  # 10000 notional / 5
    assert event.liquidation_price == D(16080)  # 20000 * (1 - 0.2 + 0.004)
    assert pf.cash == D(9996)  # only the fee left the cash; the margin is not spent
    pf.apply_funding("sim", "BTC-USDT-PERP", D(-1), D(20000), 2.0)  # 0.5*20000*0.0001 paid
    pf.mark("sim", "BTC-USDT-PERP", D(21000))
    assert pos.unrealized_pnl == D(500)
    assert pf.equity == D(9996) - D(1) + D(500)
    result = pf.apply_fill(fill("BTC-USDT-PERP", "sell", "0.5", "21000", "4.2", "USDT", 3))
    assert result is not None
    assert result.side == "long"
    assert result.pnl == D(500) - D(1) - D(4) - D("4.2")
    assert pf.cash == D(10_000) + result.pnl
    assert pos.event(3.0, 3.0).funding == D(0)  # a new position starts without funding


def test_linear_short_5x_receives_funding_and_gains_on_a_fall() -> None:
    """0.5 BTC short 20000 -> 19000 at 5x with +0.01% funding received: PnL 500 + 1."""
    pf = Portfolio(quote="USDT", cash=D(10_000), terms=terms)
    pf.apply_fill(fill("BTC-USDT-PERP", "sell", "0.5", "20000", "0", "USDT", 1))
    pos = pf.positions[("sim", "BTC-USDT-PERP")]
    assert pos.amount == D("-0.5")
    assert pos.event(1.0, 1.0).liquidation_price == D(23920)
    pf.apply_funding("sim", "BTC-USDT-PERP", D(1), D(20000), 2.0)
    assert pos.event(2.0, 2.0).funding == D(1)
    result = pf.apply_fill(fill("BTC-USDT-PERP", "buy", "0.5", "19000", "0", "USDT", 3))
    assert result is not None
    assert result.side == "short"
    assert result.pnl == D(501)
    assert pf.cash == D(10_501)


def test_inverse_long_pnl_in_the_base_coin() -> None:
    """10 contracts of 100 USD long 20000 -> 25000: 1000*(1/20000 - 1/25000) = 0.01 BTC."""
    pf = Portfolio(quote="USD", cash=D(0), terms=terms)
    pf.apply_fill(fill("BTC-USD-PERP", "buy", "10", "20000", "0", "BTC", 1))
    pos = pf.positions[("sim", "BTC-USD-PERP")]
    event = pos.event(1.0, 1.0)
    assert event.settle == "BTC"
    assert event.contracts == D(10)
    assert event.base_amount == D("0.05")
    assert event.initial_margin == D("0.01")  # 0.05 BTC / 5
    assert pos.notional(D(20000)) == D(1000)  # quote value of 10 x 100 USD
    result = pf.apply_fill(fill("BTC-USD-PERP", "sell", "10", "25000", "0", "BTC", 2))
    assert result is not None
    assert pos.realized_pnl == D("0.01")
    assert pf.cash == D(250)  # 0.01 BTC at the exit price


def test_spot_positions_are_unchanged_without_terms() -> None:
    """A spot market (no contract terms) keeps the spot accounting and no contract fields."""
    pf = Portfolio(quote="USDT", cash=D(1000), terms=terms)
    pf.apply_fill(fill("BTC-USDT", "buy", "0.01", "20000", "0", "USDT", 1))
    pos = pf.positions[("sim", "BTC-USDT")]
    assert pos.contract is None
    assert pf.cash == D(800)
    assert pos.event(1.0, 1.0).side is None
    assert "leverage" not in pos.to_dict()


def test_api_position_model_carries_the_contract_fields() -> None:
    """The API's position model keeps side, leverage, margin, liquidation and funding."""
    from cryptomon.api.models_trading import PositionOut

    pf = Portfolio(quote="USDT", cash=D(10_000), terms=terms)
    pf.apply_fill(fill("BTC-USDT-PERP", "sell", "0.5", "20000", "0", "USDT", 1))
    pf.apply_funding("sim", "BTC-USDT-PERP", D(1), D(20000), 2.0)
    out = PositionOut.model_validate(pf.positions[("sim", "BTC-USDT-PERP")].to_dict())
    assert out.side == "short"
    assert out.leverage == "5"
    assert out.margin_mode == "isolated"
    assert out.initial_margin == "2000"
    assert out.liquidation_price == "23920"
    assert out.funding == "1"


def test_stats_of_an_inverse_contract_are_in_the_quote_currency() -> None:
    """10 BTC-USD contracts (100 USD) long 20000 -> 25000 with a 0.00005 BTC entry fee (1 USD
    at 20000) and a 0.00004 BTC exit fee (1 USD at 25000): 0.01 BTC realized = 250 USD, net
    248 USD, as the cash moved; a second long of 10 at 20000 marked 25000 is 250 USD
    unrealized. Before, the statistics (API /trading/stats, crypto-monitor trades) summed the
    coin amounts under the quote currency: net PnL 0.01001, fees 0.00009."""
    pf = Portfolio(quote="USD", cash=D(1000), terms=terms)
    pf.apply_fill(fill("BTC-USD-PERP", "buy", "10", "20000", "0.00005", "BTC", 1))
    pf.apply_fill(fill("BTC-USD-PERP", "sell", "10", "25000", "0.00004", "BTC", 2))
    pf.apply_funding("sim", "BTC-USD-PERP", D("0.0001"), D(25000), 2.5)  # after the close
    assert pf.cash == D(1000) - 1 + 250 - 1 + D("2.5")
    pf.apply_fill(fill("BTC-USD-PERP", "buy", "10", "20000", "0", "BTC", 3))
    pf.mark("sim", "BTC-USD-PERP", D(25000))
    stats = pf.stats()
    assert stats["quote_currency"] == "USD"
    assert stats["net_pnl"] == "250.5"  # 250 - 1 - 1 + 2.5 of funding booked on the trip
    assert stats["avg_win"] == "250.5"
    assert stats["realized_pnl"] == "252.5"  # 250 + 2.5 of funding, before fees
    assert stats["fees"] == "2"
    assert stats["unrealized_pnl"] == "250"
    assert stats["equity"] == "1500.5"
    assert pf.trades[0].pnl == D("0.01") - D("0.00009") + D("0.0001")  # settle currency


def test_a_coin_account_books_coin_settled_pnl_without_converting_it() -> None:
    """A BTC-denominated account (``paper.quote_currency: BTC``, a COIN-M wallet) trading
    10 BTC-USD contracts long 20000 -> 25000 with a 0.00005 BTC fee each way: the cash moves by
    0.01 - 0.0001 BTC, funding of -0.000002 BTC by that, and the open unrealized PnL counts in
    BTC. Before, each BTC amount was multiplied by the price as if the account were in USD:
    the cash became 1 - 1 - 0.04 + 250 - 1.25 = 248.71 "BTC"."""
    pf = Portfolio(quote="BTC", cash=D(1), terms=terms)
    pf.apply_fill(fill("BTC-USD-PERP", "buy", "10", "20000", "0.00005", "BTC", 1))
    pf.apply_funding("sim", "BTC-USD-PERP", D("-0.000002"), D(20000), 1.5)
    pf.apply_fill(fill("BTC-USD-PERP", "sell", "10", "25000", "0.00005", "BTC", 2))
    assert pf.cash == D(1) + D("0.01") - D("0.0001") - D("0.000002")
    pf.apply_fill(fill("BTC-USD-PERP", "buy", "10", "20000", "0", "BTC", 3))
    pf.mark("sim", "BTC-USD-PERP", D(25000))
    assert pf.equity == pf.cash + D("0.01")
    assert pf.exposure() == D("0.04")  # 1000 USD at 25000, in BTC (was 1000)
    stats = pf.stats()
    assert stats["net_pnl"] == "0.009898"
    assert stats["fees"] == "0.0001"
