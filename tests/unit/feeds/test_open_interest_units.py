"""Open interest in base units like a trade's amount: the venue's contracts converted by the
instrument spec (the specs of the real HUOBI_SWAP recording), the contracts and the quote
value beside them."""

from __future__ import annotations

import math
from decimal import Decimal as D
from pathlib import Path

import pytest
from cryptofeed.types import OpenInterest as CfOpenInterest
from cryptofeed.types import OrderBook

from cryptomon.clock import LiveClock
from cryptomon.events import BookTop, OpenInterest
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.units import MarketUnits
from cryptomon.market.venues import specs_from_recording
from tests.unit.feeds.loop_turns import next_turn


def converter(shared_data: Path) -> tuple[Converter, list[object]]:
    registry = InstrumentRegistry()
    registry.add(specs_from_recording(shared_data / "HUOBI_SWAP.0"))
    hub = Hub()
    seen: list[object] = []
    hub.subscribe((OpenInterest, BookTop), seen.append)
    health = FeedHealth("huobi_swap", ["orderbook", "open_interest"], hub=hub, clock=LiveClock())
    conv = Converter("huobi_swap", hub=hub, health=health, units=MarketUnits(registry=registry))
    return conv, seen


def interest(symbol: str, contracts: str) -> CfOpenInterest:
    return CfOpenInterest("HUOBI_SWAP", symbol, D(contracts), 2.0)


async def book(conv: Converter, symbol: str, bid: str, ask: str) -> None:
    ob = OrderBook("HUOBI_SWAP", symbol, max_depth=20, bids={D(bid): D(1)}, asks={D(ask): D(1)})
    ob.delta = None
    ob.timestamp = 1.0
    await conv.book(ob, 1.0)
    await next_turn()


@pytest.mark.asyncio
async def test_linear_scaled_contracts_are_coins(shared_data: Path) -> None:
    """SOS-USDT-PERP (100,000 SOS a contract): 3 contracts of open interest are 300,000 SOS,
    worth 300,000 x the mid once a book was seen."""
    conv, seen = converter(shared_data)
    await conv.rare.open_interest(interest("SOS-USDT-PERP", "3"), 2.0)
    await book(conv, "SOS-USDT-PERP", "0.0000002", "0.0000004")
    await conv.rare.open_interest(interest("SOS-USDT-PERP", "3"), 3.0)
    first, second = (e for e in seen if isinstance(e, OpenInterest))
    assert (first.open_interest, first.contracts, first.notional) == (300_000.0, 3.0, None)
    assert second.open_interest == 300_000.0
    assert second.notional == pytest.approx(300_000 * 0.0000003)


@pytest.mark.asyncio
async def test_inverse_contracts_are_coins_at_the_mid(shared_data: Path) -> None:
    """ATOM-USD-PERP (10 USD a contract): 50 contracts are 500 USD, 50 ATOM at a mid of 10;
    before any book the coin amount is unknown (NaN), the 500 USD are not."""
    conv, seen = converter(shared_data)
    await conv.rare.open_interest(interest("ATOM-USD-PERP", "50"), 2.0)
    await book(conv, "ATOM-USD-PERP", "9.99", "10.01")
    await conv.rare.open_interest(interest("ATOM-USD-PERP", "50"), 3.0)
    first, second = (e for e in seen if isinstance(e, OpenInterest))
    assert math.isnan(first.open_interest)
    assert (first.contracts, first.notional) == (50.0, 500.0)
    assert second.open_interest == pytest.approx(50.0)
    assert (second.contracts, second.notional) == (50.0, 500.0)


@pytest.mark.asyncio
async def test_without_specs_open_interest_is_as_sent(shared_data: Path) -> None:
    """No instrument registry: the venue's number as it came, nothing beside it."""
    hub = Hub()
    seen: list[OpenInterest] = []
    hub.subscribe(OpenInterest, seen.append)
    health = FeedHealth("x", ["open_interest"], hub=hub, clock=LiveClock())
    conv = Converter("x", hub=hub, health=health)
    await conv.rare.open_interest(interest("ATOM-USD-PERP", "50"), 2.0)
    assert (seen[0].open_interest, seen[0].contracts, seen[0].notional) == (50.0, None, None)
