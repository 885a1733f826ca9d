"""A trailing stop is persisted as it moves, throttled: a ``ProtectionUpdate`` once it moved a
tick or more, at most once per ``trailing_stop_save_interval_s`` per position (a move held
back is written by the engine's poll once the interval is over), and always at the engine's
stop. Paper perpetual, in-memory journal (the database round trip is in
``tests/integration/test_trading_trailing_restart.py``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.events import ProtectionUpdate
from tests.unit.trading.test_futures_paper import EX, PERP, build, quote
from tests.util import wait_until

D = Decimal


@pytest.mark.asyncio
async def test_a_trailing_stop_is_saved_throttled_and_at_stop() -> None:
    """Long 0.1 at 20000.5, 1% trail, 5 s interval, tick 0.1: the first move is written at
    once; 20 moves within the next 2 s write nothing; the poll writes the latest once the
    interval is over; a move below a tick is never written before the stop; the stop writes
    the last level whatever the throttle, and every write is the protection's level then."""
    engine, _broker, hub, clock = build(
        trailing_stop_percentage=1.0, trailing_stop_save_interval_s=5.0
    )
    saved: list[ProtectionUpdate] = []
    hub.subscribe(ProtectionUpdate, saved.append, name="test.trails")
    quote(hub, clock, 20000)
    await engine.start()
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1", stop_loss="19400"
    )
    prot = engine.protection.protections[(EX, PERP)]
    assert prot.stop == D(19400)
    quote(hub, clock, 20000)
    assert saved == []  # not moved: the entry's own stop needs no write

    quote(hub, clock, 20100)  # bid 20099.5: stop 19898.505
    assert prot.stop == D("19898.505")
    assert [(s.stop, s.best, s.side, s.entry_id) for s in saved] == [
        (D("19898.505"), D("20099.5"), "long", prot.entry_id)
    ]
    for i in range(1, 21):  # a fast book: 20 higher tops within 2 s
        clock.advance(0.1)
        quote(hub, clock, 20100 + 10 * i)
    assert prot.stop == D("20096.505")  # 20299.5 x 0.99
    assert len(saved) == 1  # held back by the 5 s interval

    def polled() -> bool:  # the engine's poll runs as the clock goes on, no new top
        if len(saved) < 2:
            clock.advance(0.5)
        return len(saved) == 2

    await wait_until(polled, message="the held-back move written by the poll")
    assert saved[1].ts - saved[0].ts >= 5  # not before the interval was over
    assert (saved[-1].stop, saved[-1].best) == (D("20096.505"), D("20299.5"))

    clock.advance(10)
    quote(hub, clock, 20300.05)  # bid 20299.55: the stop moves 0.0495, below the 0.1 tick
    assert prot.stop == D("20096.5545")
    assert engine.protection.save_trails() == 0
    assert len(saved) == 2

    quote(hub, clock, 20400)  # a tick or more, the interval over: written at once
    assert len(saved) == 3
    assert saved[-1].stop == prot.stop == D("20195.505")
    clock.advance(1)
    quote(hub, clock, 20500)  # held back (1 s after the last write) ...
    assert len(saved) == 3
    await engine.stop()  # ... and written at the stop
    assert len(saved) == 4
    assert (
        (saved[-1].stop, saved[-1].best)
        == (prot.stop, prot.best)
        == (
            D("20294.505"),
            D("20499.5"),
        )
    )
    assert engine.protection.trail_writes == 4


@pytest.mark.asyncio
async def test_a_short_trailing_stop_is_saved_as_it_falls() -> None:
    """Short 0.1 at 19999.5, 2% trail, no interval (0): every move of a tick or more is
    written, as a short's (the stop above the best ask)."""
    engine, _broker, hub, clock = build(
        trailing_stop_percentage=2.0, trailing_stop_save_interval_s=0.0
    )
    saved: list[ProtectionUpdate] = []
    hub.subscribe(ProtectionUpdate, saved.append, name="test.trails")
    quote(hub, clock, 20000)
    await engine.start()
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", stop_loss="20600"
    )
    prot = engine.protection.protections[(EX, PERP)]
    for mid in (19900, 19800, 19700):
        quote(hub, clock, mid)
    assert [(s.side, s.stop, s.best) for s in saved] == [
        ("short", D("20298.51"), D("19900.5")),  # 19900.5 x 1.02
        ("short", D("20196.51"), D("19800.5")),
        ("short", D("20094.51"), D("19700.5")),
    ]
    assert prot.stop == D("20094.51")
    await engine.stop()
    assert len(saved) == 3  # nothing left to write at the stop
