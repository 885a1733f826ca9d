"""Fast event constructors build the same frozen events as the dataclass constructors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from cryptomon.events import BookTop, Trade
from cryptomon.feeds.fastevents import factory


def test_fast_trade_equals_dataclass_trade_and_is_frozen() -> None:
    """Positional fast construction gives an equal, still frozen Trade."""
    fast = factory(Trade)("x", "BTC-USDT", 1.0, 2.0, 3.0, 4.0, "buy", "7")
    slow = Trade(
        exchange="x",
        symbol="BTC-USDT",
        ts=1.0,
        ts_recv=2.0,
        price=3.0,
        amount=4.0,
        side="buy",
        trade_id="7",
    )
    assert fast == slow
    assert type(fast) is Trade
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.price = 5.0  # type: ignore[misc]


def test_fast_booktop_field_order() -> None:
    """Fields are taken in declaration order."""
    top = factory(BookTop)("x", "S", 1.0, 2.0, 10.0, 1.0, 11.0, 2.0, 1.0, 952.0, 3.0, 4.0, -0.1, 5)
    assert (top.bid, top.ask, top.imbalance, top.levels) == (10.0, 11.0, -0.1, 5)


def test_post_init_is_never_skipped() -> None:
    """A class with __post_init__ gets its own constructor, so validation still runs."""

    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("x >= 0")

    make = factory(Checked)
    assert make(1) == Checked(1)
    with pytest.raises(ValueError, match="x >= 0"):
        make(-1)
