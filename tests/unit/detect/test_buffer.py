"""The engine's event buffers: edges at the first event and at ``cap``, order kept, growth
past the initial slots, a batch nobody takes, events put while an edge runs."""

from __future__ import annotations

import weakref
from typing import Any

import pytest

from cryptomon.detect.buffer import INITIAL_SLOTS, event_buffer
from cryptomon.events import Trade
from tests.unit.detect.market import T0, engine


class Edges:
    """Records the edges; takes the batch at ``cap`` when ``take_full``."""

    def __init__(self, cap: int, *, take_full: bool = True) -> None:
        self.cap = cap
        self.take_full = take_full
        self.calls: list[int] = []
        self.batches: list[list[Any]] = []
        self.buf = event_buffer(cap, self)

    def __call__(self, n: int) -> None:
        self.calls.append(n)
        if n >= self.cap and self.take_full:
            self.batches.append(self.buf.take())


@pytest.mark.parametrize("cap", [1, 2, 5, INITIAL_SLOTS, INITIAL_SLOTS + 1, 3 * INITIAL_SLOTS])
def test_edges_at_the_first_event_and_at_cap_in_order(cap: int) -> None:
    e = Edges(cap)
    rest = min(cap - 1, 3)  # a partial third batch
    for i in range(2 * cap + rest):
        e.buf.put(i)
    if cap == 1:
        assert e.calls == [1, 1]  # first and full at once: one call
    else:
        assert e.calls == [1, cap, 1, cap, 1]
    assert e.batches == [list(range(cap)), list(range(cap, 2 * cap))]
    assert e.buf.size() == rest
    assert e.buf.take() == list(range(2 * cap, 2 * cap + rest))
    assert e.buf.size() == 0
    assert e.buf.take() == []


def test_a_full_batch_nobody_takes_keeps_every_event_and_keeps_calling() -> None:
    """Like the list it replaced: past ``cap`` each event calls the edge again, none lost."""
    e = Edges(3, take_full=False)
    for i in range(7):
        e.buf.put(i)
    assert e.calls == [1, 3, 4, 5, 6, 7]
    assert e.buf.size() == 7
    assert e.buf.take() == list(range(7))


def test_an_event_put_while_the_edge_runs_starts_the_next_batch() -> None:
    """A flush may publish (an anomaly subscriber publishing market data): the event lands
    in the next batch and announces it with its own first-event edge."""
    calls: list[int] = []
    batches: list[list[Any]] = []

    def edge(n: int) -> None:
        calls.append(n)
        if n >= 3:
            batches.append(buf.take())
            buf.put("nested")

    buf = event_buffer(3, edge)
    for ev in "abcd":
        buf.put(ev)
    assert batches == [["a", "b", "c"]]
    assert calls == [1, 3, 1]
    assert buf.take() == ["nested", "d"]


def test_engine_batch_larger_than_the_initial_slots_flushes_exactly_at_batch_size() -> None:
    size = INITIAL_SLOTS * 2 + 5
    eng, _ = engine(batch_size=size)
    for i in range(size - 1):
        eng.hub.publish(
            Trade(
                exchange="x",
                symbol="BTC-USDT",
                ts=T0 + i,
                ts_recv=T0 + i,
                price=100.0,
                amount=1.0,
                side="buy",
            )
        )
    assert eng.stats()["batches"] == 0  # no running loop: nothing flushed yet
    eng.hub.publish(
        Trade(
            exchange="x",
            symbol="BTC-USDT",
            ts=T0 + size,
            ts_recv=T0,
            price=1.0,
            amount=1.0,
            side="buy",
        )
    )
    assert eng.stats()["batches"] == 1
    assert eng.stats()["events"] == {"trades": size}


@pytest.mark.parametrize("n", [1, 3, INITIAL_SLOTS // 4 - 1, INITIAL_SLOTS // 4, INITIAL_SLOTS])
def test_take_holds_no_reference_and_later_puts_do_not_touch_a_taken_batch(n: int) -> None:
    """A short batch is copied out and its slots cleared, a long one handed over: either
    way the buffer keeps no event alive and a taken batch never changes afterwards."""

    class Ev:
        pass

    buf = event_buffer(INITIAL_SLOTS, lambda _n: None)
    evs = [Ev() for _ in range(n)]
    refs = [weakref.ref(ev) for ev in evs]
    for ev in evs:
        buf.put(ev)
    taken = buf.take()
    assert taken == evs
    assert buf.size() == 0
    for i in range(n):
        buf.put(i)
    assert taken == evs  # the next batch lands elsewhere
    assert buf.take() == list(range(n))
    del evs, taken, ev
    assert [r() for r in refs] == [None] * n
