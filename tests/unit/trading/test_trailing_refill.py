"""Another fill of the same entry order (a limit entry filling in parts) keeps the trailed
stop of its position: the protection is not re-armed at the entry's stop level, and the exit
closes the whole, grown, position. On the paper broker."""

from __future__ import annotations

import pytest

from cryptomon.clock import ManualClock
from cryptomon.events import Fill
from tests.unit.trading.helpers import (
    EX,
    SYM,
    Collector,
    advance_until,
    book,
    d,
    paper_engine,
    trade,
    trading_config,
)


@pytest.mark.asyncio
async def test_the_rest_of_an_entry_filling_after_the_stop_trailed_keeps_the_trailed_stop() -> None:
    """A buy limit of 2 at 100 with its stop at 97 fills 1; the bid climbs to 101.5 and the
    2% trail lifts the stop to 99.47; the other 1 fills at 100: the stop stays at 99.47 (not
    back at 97) and the pullback to 99.4 sells the position's 2."""
    engine, _, hub, _, clock = paper_engine(
        config=trading_config(trailing_stop_percentage=2.0, take_profit_percentage=50.0)
    )
    assert isinstance(clock, ManualClock)
    col = Collector(hub, Fill)
    book(hub, clock, bid=100.5, ask=100.7, size=10.0)
    await engine.start()
    await engine.controls.place_manual_order(
        actor="test",
        exchange=EX,
        symbol=SYM,
        side="buy",
        amount="2",
        type="limit",
        price="100",
        stop_loss="97",
    )
    trade(hub, clock, price=99.9, amount=1.0, side="sell")  # the first half fills
    await advance_until(
        clock, lambda: engine.portfolio.amount(EX, SYM) == d("1"), step=0.05, message="1 held"
    )
    prot = engine.protection.protections[(EX, SYM)]
    assert prot.stop == d("97")
    book(hub, clock, bid=101.5, ask=101.7, size=10.0)
    assert engine.protection.protections[(EX, SYM)].stop == d("101.5") * d("0.98")  # 99.47
    trade(hub, clock, price=99.9, amount=1.0, side="sell")  # the rest fills
    await advance_until(
        clock, lambda: engine.portfolio.amount(EX, SYM) == d("2"), step=0.05, message="2 held"
    )
    prot = engine.protection.protections[(EX, SYM)]
    assert prot.stop == d("99.47")  # never loosened back to the entry's 97
    assert prot.best == d("101.5")
    book(hub, clock, bid=99.4, ask=99.6, size=10.0)  # below the trailed stop only
    await advance_until(
        clock, lambda: engine.portfolio.amount(EX, SYM) == 0, step=0.05, message="closed"
    )
    exits = [f for f in col.of(Fill) if f.side == "sell"]
    assert sum(f.amount for f in exits) == d("2")  # the whole position, both fills
    await engine.stop()
