"""Fast event constructors build the same frozen events as the dataclass constructors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from cryptomon.events import BookSnapshot, BookTop, Ticker, Trade
from cryptomon.feeds.booktop import BOOK_TOP_FIELDS
from cryptomon.feeds.convert import SNAPSHOT_FIELDS, TICKER_FIELDS, TRADE_FIELDS
from cryptomon.feeds.fastevents import factory


def test_fast_trade_equals_dataclass_trade_and_is_frozen() -> None:
    """Positional fast construction gives an equal, still frozen Trade."""
    fast = factory(Trade, TRADE_FIELDS)(
        "x", "BTC-USDT", 1.0, 2.0, 3.0, 4.0, "buy", "7", None, None, None
    )
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
    make = factory(BookTop, BOOK_TOP_FIELDS)
    top = make(
        "x", "S", 1.0, 2.0, 10.0, 1.0, 11.0, 2.0, 1.0, 952.0, 3.0, 4.0, -0.1, 5, 7, None, None
    )
    assert (top.bid, top.ask, top.imbalance, top.levels, top.updates) == (10.0, 11.0, -0.1, 5, 7)


def test_post_init_is_never_skipped() -> None:
    """A class with __post_init__ gets its own constructor, so validation still runs."""

    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("x >= 0")

    make = factory(Checked, ("x",))
    assert make(1) == Checked(1)
    with pytest.raises(ValueError, match="x >= 0"):
        make(-1)


@pytest.mark.parametrize(
    ("cls", "order"),
    [
        (Trade, TRADE_FIELDS),
        (Ticker, TICKER_FIELDS),
        (BookTop, BOOK_TOP_FIELDS),
        (BookSnapshot, SNAPSHOT_FIELDS),
    ],
)
def test_call_sites_pass_the_dataclass_field_order(cls: type, order: tuple[str, ...]) -> None:
    """Every positional call site in the feeds passes exactly the fields of events.py, in order:
    a field added to or moved in an event fails here until the call site follows."""
    assert order == tuple(field.name for field in dataclasses.fields(cls))


def test_a_stale_order_is_refused_with_both_orders_named() -> None:
    """A factory asked for an order that is not the dataclass's raises, naming both orders."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Quote:
        bid: float
        ask: float

    with pytest.raises(TypeError, match=r"Quote: the caller passes ask, bid .* are bid, ask"):
        factory(Quote, ("ask", "bid"))
    with pytest.raises(TypeError, match="caller passes bid, ask, last"):
        factory(Quote, ("bid", "ask", "last"))


def test_built_events_are_of_the_event_class_only() -> None:
    """The constructor stores the fields on a builder instance and swaps its class: what comes
    out is exactly the event class, equal, hashable and frozen like a class-built one (and
    its ``__delattr__`` still refuses)."""
    make = factory(BookTop, BOOK_TOP_FIELDS)
    args = ("x", "S", 1.0, 2.0, 10.0, 1.0, 11.0, 2.0, 1.0, 952.0, 3.0, 4.0, -0.1, 5, 7, None, 2.0)
    top = make(*args)
    slow = BookTop(**dict(zip(BOOK_TOP_FIELDS, args, strict=True)))
    assert type(top) is BookTop
    assert top == slow
    assert hash(top) == hash(slow)
    assert repr(top) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        top.bid = 5.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del top.bid  # type: ignore[misc]


def test_a_class_that_refuses_the_builder_gets_the_descriptor_constructor() -> None:
    """Where no builder subclass can be made the constructor sets the slots through their
    descriptors: the same frozen instances either way."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Sealed:
        a: float
        b: str

        def __init_subclass__(cls, **kwargs: object) -> None:
            raise TypeError("no subclasses")

    make = factory(Sealed, ("a", "b"))
    built = make(1.5, "x")
    assert type(built) is Sealed
    assert built == Sealed(a=1.5, b="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.a = 2.0  # type: ignore[misc]
