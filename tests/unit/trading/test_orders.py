"""Order state machine, deterministic client order ids and fill de-duplication."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import get_args

import pytest

from cryptomon.events import Fill, OrderIntent, OrderOrigin, OrderState
from cryptomon.trading.orders import (
    ORIGIN_CODES,
    TRANSITIONS,
    IllegalTransition,
    OrderBook,
    OrderRecord,
    client_order_id,
    is_ours,
)
from tests import stubs

S = OrderState


def _intent(coid: str = "cmsabc", amount: str = "1") -> OrderIntent:
    return OrderIntent(
        exchange="binance",
        symbol="BTC-USDT",
        ts=1.0,
        ts_recv=1.0,
        client_order_id=coid,
        side="buy",
        type="market",
        amount=Decimal(amount),
    )


def _fill(trade_id: str, amount: str, price: str = "100") -> Fill:
    return stubs.fill(
        trade_id,
        "cmsabc",
        ts=1.0,
        ts_recv=1.0,
        amount=Decimal(amount),
        price=Decimal(price),
        fee=Decimal("0.1"),
        fee_currency="USDT",
    )


def test_client_order_id_is_deterministic_and_short() -> None:
    """Same key and leg -> same id; different leg -> different id; within Binance's 36 chars."""
    a = client_order_id("signal-1", "entry", "signal")
    assert a == client_order_id("signal-1", "entry", "signal")
    assert a != client_order_id("signal-1", "stop_loss:0", "stop_loss")
    assert a != client_order_id("signal-2", "entry", "signal")
    assert len(a) == 32 <= 36
    assert a.startswith("cms")
    assert a.isalnum()
    assert is_ours(a)
    assert not is_ours("web_123")
    assert not is_ours("x" * 32)


def test_every_origin_has_a_code_letter_of_its_own() -> None:
    """An origin without a letter of its own would take settlement's ("x") in a client id."""
    assert set(ORIGIN_CODES) == set(get_args(OrderOrigin))
    assert len(set(ORIGIN_CODES.values())) == len(ORIGIN_CODES)


def test_happy_path_transitions() -> None:
    """new -> submitted -> partially_filled (twice) -> filled."""
    rec = OrderRecord(intent=_intent())
    for state in (S.SUBMITTED, S.PARTIALLY_FILLED, S.PARTIALLY_FILLED, S.FILLED):
        assert rec.transition(state) is True
    assert rec.state == S.FILLED
    assert not rec.is_open


@pytest.mark.parametrize("terminal", [S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED])
@pytest.mark.parametrize("target", list(S))
def test_terminal_states_refuse_every_change(terminal: OrderState, target: OrderState) -> None:
    """A filled/canceled/rejected/expired order never moves again."""
    rec = OrderRecord(intent=_intent(), state=terminal)
    if target == terminal:
        assert rec.transition(target) is False
    else:
        with pytest.raises(IllegalTransition, match=f"{terminal} -> {target}"):
            rec.transition(target)
    assert rec.state == terminal


def test_unknown_settles_to_any_venue_state_but_not_back_to_new() -> None:
    """unknown -> filled/canceled/rejected/... is allowed; unknown -> new is not."""
    for target in (S.SUBMITTED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED, S.PARTIALLY_FILLED):
        rec = OrderRecord(intent=_intent(), state=S.UNKNOWN)
        assert rec.transition(target)
    rec = OrderRecord(intent=_intent(), state=S.UNKNOWN)
    with pytest.raises(IllegalTransition):
        rec.transition(S.NEW)


def test_no_state_leads_back_to_new() -> None:
    """``new`` is only ever the initial state."""
    assert all(S.NEW not in targets for targets in TRANSITIONS.values())


def test_cancel_pending_needs_a_live_order() -> None:
    """An order not yet submitted cannot be cancel-pending; a submitted one can."""
    rec = OrderRecord(intent=_intent())
    with pytest.raises(IllegalTransition):
        rec.transition(S.CANCEL_PENDING)
    rec.transition(S.SUBMITTED)
    rec.transition(S.CANCEL_PENDING)
    rec.transition(S.CANCELED)
    assert rec.state == S.CANCELED


def test_fills_are_counted_once_per_trade_id() -> None:
    """A repeated trade id changes nothing; filled, cost, fees and avg price add up."""
    rec = OrderRecord(intent=_intent(amount="3"))
    assert rec.add_fill(_fill("t1", "1", "100"))
    assert rec.add_fill(_fill("t2", "2", "103"))
    assert not rec.add_fill(_fill("t1", "1", "100"))
    assert rec.filled == Decimal(3)
    assert rec.avg_price == Decimal(306) / 3
    assert rec.fees == Decimal("0.2")
    assert rec.remaining == 0


def test_order_book_add_is_idempotent_and_trims_closed() -> None:
    """Adding the same id returns the first record; only ``keep_closed`` closed ones are kept."""
    book = OrderBook(keep_closed=2)
    first = book.add(OrderRecord(intent=_intent("a")))
    assert book.add(OrderRecord(intent=_intent("a"))) is first
    for coid in ("b", "c", "d"):
        book.add(OrderRecord(intent=_intent(coid), state=S.FILLED))
    assert len(book) == 3
    assert "a" in book
    assert "b" not in book
    assert [r.client_order_id for r in book.open()] == ["a"]


def test_order_book_open_follows_state_changes_and_trims_the_oldest_closed() -> None:
    """An order that closes leaves open() and becomes trimmable; the oldest closed go first."""
    book = OrderBook(keep_closed=2)
    records = [book.add(OrderRecord(intent=_intent(coid))) for coid in ("a", "b", "c", "d")]
    assert [r.client_order_id for r in book.open()] == ["a", "b", "c", "d"]
    for rec in records[:3]:
        rec.transition(S.SUBMITTED)
        rec.transition(S.CANCELED)
    assert [r.client_order_id for r in book.open()] == ["d"]
    assert [r.client_order_id for r in book.open(symbol="ETH-USDT")] == []
    book.add(OrderRecord(intent=_intent("e"), state=S.FILLED))
    assert [r.client_order_id for r in book.all()] == ["c", "d", "e"]


def test_order_book_remembers_every_symbol_it_held_an_order_for() -> None:
    """``symbols`` (the markets the periodic reconciliation lists open orders of) keeps the
    symbol of an order trimmed from the book: an orphan of it may still rest at the venue."""
    book = OrderBook(keep_closed=1)
    old = replace(_intent("a"), symbol="ETH-USDT")
    book.add(OrderRecord(intent=old, state=S.FILLED))
    for coid in ("b", "c"):
        book.add(OrderRecord(intent=_intent(coid), state=S.FILLED))
    assert "a" not in book
    assert book.symbols == {"ETH-USDT", "BTC-USDT"}


def test_update_event_and_dict_carry_the_state() -> None:
    """The OrderUpdate and the API dict reflect the record."""
    rec = OrderRecord(intent=_intent(amount="2"))
    rec.transition(S.SUBMITTED)
    rec.add_fill(_fill("t1", "1", "100"))
    rec.transition(S.PARTIALLY_FILLED)
    ev = rec.update_event(5.0, 5.0)
    assert ev.state == S.PARTIALLY_FILLED
    assert ev.filled == 1
    assert ev.avg_price == 100
    d = rec.to_dict()
    assert d["state"] == "partially_filled"
    assert d["filled"] == "1"
    assert d["amount"] == "2"
