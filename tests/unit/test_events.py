"""Events: built through their slots (events.slot_init), still frozen keyword-only dataclasses."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from decimal import Decimal

import pytest

from cryptomon import events
from cryptomon.events import AUDIT_ORIGIN, AuditEntry, BookTop, Event, Fill, Signal

EVENT_CLASSES = [c for c in vars(events).values() if isinstance(c, type) and issubclass(c, Event)]
BASE = {"exchange": "binance", "symbol": "BTC-USDT", "ts": 1.5, "ts_recv": 2.5}


def test_every_event_class_takes_its_fields_and_defaults() -> None:
    """Every field given is stored; every field left out gets its default or factory's value."""
    for cls in EVENT_CLASSES:
        required = [
            f
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        given = {f.name: f"v-{f.name}" for f in required}
        event = cls(**given)
        for f in dataclasses.fields(cls):
            value = getattr(event, f.name)
            if f.name in given:
                assert value == given[f.name], (cls, f.name)
            elif f.default is not dataclasses.MISSING:
                assert value == f.default, (cls, f.name)
            elif f.name == "id":  # a fresh random id
                assert isinstance(value, str), cls
                assert len(value) == 32, cls
            else:
                assert value == f.default_factory(), (cls, f.name)


def test_events_stay_frozen_keyword_only_and_complete() -> None:
    """Assignment, positional arguments, unknown and missing fields are refused as before."""
    top = BookTop(
        **BASE,
        bid=1.0,
        bid_size=2.0,
        ask=3.0,
        ask_size=4.0,
        spread=2.0,
        spread_bps=1.0,
        bid_depth=5.0,
        ask_depth=6.0,
        imbalance=0.1,
        levels=1,
    )
    assert (top.updates, top.bid_contracts) == (1, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        top.bid = 9.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        BookTop("binance")  # type: ignore[misc]
    with pytest.raises(TypeError):
        Signal(**BASE, side="buy", strength=1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Signal(**BASE, side="buy", strength=1.0, source="x", colour="red")  # type: ignore[call-arg]
    assert pickle.loads(pickle.dumps(top)) == top
    assert copy.copy(top) == top
    assert hash(copy.copy(top)) == hash(top)
    assert dataclasses.replace(top, bid=0.5).bid == 0.5


def test_factories_run_per_event_in_field_order() -> None:
    """A default factory runs for every event built without that field (fresh ids; the
    request's origin at construction time); a given value wins."""
    one = Signal(**BASE, side="buy", strength=1.0, source="x")
    two = Signal(**BASE, side="buy", strength=1.0, source="x")
    assert one.id != two.id
    assert len(one.id) == 32
    assert Signal(**BASE, side="buy", strength=1.0, source="x", id="mine").id == "mine"
    token = AUDIT_ORIGIN.set(("10.0.0.1", "req-7"))
    try:
        entry = AuditEntry(**BASE, actor="admin", action="kill")
    finally:
        AUDIT_ORIGIN.reset(token)
    assert (entry.client, entry.request_id, entry.payload) == ("10.0.0.1", "req-7", "{}")
    fill = Fill(
        **BASE,
        client_order_id="c",
        trade_id="t",
        side="sell",
        amount=Decimal("0.5"),
        price=Decimal("100"),
        fee=Decimal("0.05"),
        fee_currency="USDT",
    )
    assert fill.amount == Decimal("0.5")
    assert fill.fee == Decimal("0.05")


def test_slot_init_takes_positional_and_keyword_fields_like_the_dataclass() -> None:
    """slot_init on a positional dataclass (the engine's risk views): the same signature,
    defaults and fresh factories, still frozen, comparable, hashable and replaceable."""

    @events.slot_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class View:
        a: int
        b: list[int] = dataclasses.field(default_factory=list)
        c: int = dataclasses.field(default=3, kw_only=True)

    assert "_set_a" in View.__init__.__globals__  # the slot-storing __init__
    one, two = View(1), View(1)
    assert (one.a, one.b, one.c) == (1, [], 3)
    assert one.b is not two.b
    assert View(1, [2], c=4) == View(a=1, b=[2], c=4)
    with pytest.raises(TypeError):
        View()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        View(1, [2], 4)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.a = 2  # type: ignore[misc]
    assert dataclasses.replace(one, c=9).c == 9
    assert copy.copy(View(5, c=6)) == View(5, c=6)
    assert hash(View(5, (), c=6)) == hash(View(5, (), c=6))  # type: ignore[arg-type]


def test_the_order_paths_views_and_answers_are_built_through_their_slots() -> None:
    """Built for every order: the risk check's views and decision, the venue's answer, a
    closed round trip."""
    from cryptomon.trading.brokers.base import BrokerOrder
    from cryptomon.trading.position import TradeResult
    from cryptomon.trading.risk_model import Decision, MarketView, PortfolioView

    for cls in (PortfolioView, MarketView, Decision, BrokerOrder, TradeResult):
        first = dataclasses.fields(cls)[0].name
        assert f"_set_{first}" in cls.__init__.__globals__, cls
    view = PortfolioView(Decimal(5))
    assert view.positions == {}
    assert view.positions is not PortfolioView(Decimal(5)).positions
    assert Decision(False, "why", "check") == Decision(approved=False, reason="why", check="check")
