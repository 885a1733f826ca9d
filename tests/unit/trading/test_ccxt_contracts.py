"""ccxt positions (``fetch_positions`` rows) as the venue's positions per cryptofeed symbol."""

from __future__ import annotations

from decimal import Decimal

from cryptomon.trading.brokers.base import VenuePosition
from cryptomon.trading.brokers.ccxt_contracts import venue_positions

D = Decimal
MARKETS = {
    "BTC/USDT:USDT": {"base": "BTC", "quote": "USDT", "settle": "USDT", "swap": True},
    "BTC/USD:BTC": {"base": "BTC", "quote": "USD", "settle": "BTC", "swap": True},
}


def row(symbol: str, side: str, contracts: float, upnl: float | None) -> dict[str, object]:
    return {"symbol": symbol, "side": side, "contracts": contracts, "unrealizedPnl": upnl}


def test_signed_contracts_the_venues_unrealized_pnl_and_the_settle_currency() -> None:
    rows = [
        row("BTC/USDT:USDT", "short", 0.2, 100.0),
        row("BTC/USD:BTC", "long", 3, -0.0012),
        row("ETH/USDT:USDT", "long", 1, 5.0),  # not a loaded market
        row("BTC/USDT:USDT", "long", 0, 0.0),  # a flat side
    ]
    assert venue_positions(rows, MARKETS) == {
        "BTC-USDT-PERP": VenuePosition(contracts=D("-0.2"), unrealized=D(100), settle="USDT"),
        "BTC-USD-PERP": VenuePosition(contracts=D(3), unrealized=D("-0.0012"), settle="BTC"),
    }


def test_hedge_mode_sides_are_added_and_a_side_without_a_figure_leaves_none() -> None:
    both = [row("BTC/USDT:USDT", "long", 0.5, 30.0), row("BTC/USDT:USDT", "short", 0.2, -12.5)]
    assert venue_positions(both, MARKETS)["BTC-USDT-PERP"] == VenuePosition(
        contracts=D("0.3"), unrealized=D("17.5"), settle="USDT"
    )
    blind = [row("BTC/USDT:USDT", "long", 0.5, 30.0), row("BTC/USDT:USDT", "short", 0.2, None)]
    assert venue_positions(blind, MARKETS)["BTC-USDT-PERP"].unrealized is None
