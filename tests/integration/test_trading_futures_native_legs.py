"""Venue-side stop-loss and take-profit of live perpetuals, end to end through the real ccxt
``binanceusdm`` code on the simulator: after the entry fill both legs rest on the venue as
reduce-only conditional orders (``/fapi/v1/algoOrder``, as the installed ccxt sends them);
the venue fires one, the engine books its fill and cancels the other; PnL equals the hand
computation and the venue's wallet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.events import OrderState
from cryptomon.sim.usdm import UsdmVenue
from tests.usdm import EX, PERP, VENUE_ID, Live, enter, start_live
from tests.util import wait_until

D = Decimal
KEY, SECRET = "legs-key", "legs-secret"
FEE = D("0.0004")
ALGO = "/fapi/v1/algoOrder"


@pytest_asyncio.fixture
async def live() -> AsyncIterator[Live]:
    rig = await start_live(
        key=KEY,
        secret=SECRET,
        seed=4,
        native=True,
        allow_short=True,
    )
    try:
        yield rig
    finally:
        await rig.stop()


def algos(venue: UsdmVenue, status: str | None = None) -> list[dict[str, object]]:
    return [a for a in venue.book.algos if status in (None, a["algoStatus"])]


async def legs_resting(live: Live) -> None:
    await wait_until(lambda: len(algos(live.venue, "NEW")) == 2, timeout=10, message="2 legs")


@pytest.mark.asyncio
async def test_long_gets_venue_legs_and_the_venue_take_profit_closes_it(live: Live) -> None:
    """Both legs rest on the venue as reduce-only conditional orders of the position's size;
    the venue fires the take-profit at 21300: the engine books the fill, cancels the stop leg
    and its PnL = 0.1 x 1300 - fees, as the venue's wallet says."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400", take_profit="21200")
    await legs_resting(live)
    stop, take = sorted(algos(venue), key=lambda a: str(a["orderType"]))
    assert (stop["orderType"], stop["side"]) == ("STOP_MARKET", "SELL")
    assert stop["triggerPrice"] == "19400"
    assert (take["orderType"], take["triggerPrice"]) == ("TAKE_PROFIT_MARKET", "21200")
    assert stop["reduceOnly"] is True
    assert take["reduceOnly"] is True
    assert D(str(stop["quantity"])) == D(str(take["quantity"])) == D("0.1")
    prot = engine.protection.protections[(EX, PERP)]
    assert prot.native
    assert {prot.stop_order, prot.take_order} == {stop["clientAlgoId"], take["clientAlgoId"]}
    venue.set_price(VENUE_ID, D(21300))  # the venue fires; no book top reaches the engine
    pos = engine.portfolio.positions[(EX, PERP)]
    await wait_until(lambda: pos.amount == 0, timeout=10, message="position closed")
    await wait_until(lambda: stop["algoStatus"] == "CANCELED", timeout=10, message="stop gone")
    assert take["algoStatus"] == "FINISHED"
    assert engine.book.get(str(take["clientAlgoId"])).state == OrderState.FILLED  # type: ignore[union-attr]
    hand = D("0.1") * (D(21300) - D(20000)) - D("0.1") * (D(20000) + D(21300)) * FEE
    assert engine.portfolio.trades[-1].pnl == hand
    assert venue.book.wallet == D(10_000) + hand
    assert await engine.broker.fetch_positions() == {}  # type: ignore[attr-defined]
    assert not engine.book.open()


@pytest.mark.asyncio
async def test_short_venue_stop_fires_and_take_profit_leg_is_canceled(live: Live) -> None:
    """A 5x short: the venue's stop-market buys back at 20700; PnL = -0.1 x 700 - fees."""
    engine, venue = live.engine, live.venue
    await enter(engine, "sell", stop_loss="20600", take_profit="18800")
    await legs_resting(live)
    venue.set_price(VENUE_ID, D(20700))
    pos = engine.portfolio.positions[(EX, PERP)]
    await wait_until(lambda: pos.amount == 0, timeout=10, message="short closed")
    await wait_until(lambda: not algos(venue, "NEW"), timeout=10, message="take leg canceled")
    statuses = sorted(str(a["algoStatus"]) for a in algos(venue))
    assert statuses == ["CANCELED", "FINISHED"]
    hand = D("-0.1") * (D(20700) - D(20000)) - D("0.1") * (D(20000) + D(20700)) * FEE
    assert engine.portfolio.trades[-1].pnl == hand
    assert venue.book.wallet == D(10_000) + hand


@pytest.mark.asyncio
async def test_a_leg_the_venue_refuses_falls_back_to_emulation(live: Live) -> None:
    """A stop the venue refuses (-2021, it would trigger at once) leaves the position protected
    by the engine on the book and no leg resting alone. The refusal is ccxt's
    OrderImmediatelyFillable as on fapi.binance.com (the loopback URL is classified as the
    real host): the stop is rejected at once with the venue's message, never looked up, and
    the take-profit leg is never sent."""
    engine, venue = live.engine, live.venue
    # the venue's price has fallen below the stop the engine's book still allows: a sell
    # stop above the venue's price is refused
    venue.set_price(VENUE_ID, D(19300))
    await enter(engine, "buy", stop_loss="19400", take_profit="21200")
    prot = engine.protection.protections[(EX, PERP)]
    await wait_until(lambda: prot.stop_order is not None, timeout=10, message="stop sent")
    await wait_until(lambda: not prot.native, timeout=10, message="back to emulation")
    await wait_until(lambda: not algos(venue, "NEW"), timeout=10, message="no leg resting")
    record = engine.book.get(str(prot.stop_order))
    assert record is not None
    assert record.state == OrderState.REJECTED
    assert "OrderImmediatelyFillable" in record.reason
    assert "Order would immediately trigger." in record.reason
    assert algos(venue) == []  # the take-profit leg was never placed
    calls = [m for m, p in venue.requests if p == ALGO]
    assert calls.count("POST") == 1
    assert calls[calls.index("POST") :] == ["POST"]  # the stop's: no lookup, no cancel after
    assert prot.trigger(D("19399.9"), D("19400.1")) == "stop_loss"  # the book watch is back


@pytest.mark.asyncio
async def test_an_opposite_signal_closes_a_position_whose_legs_rest_on_the_venue() -> None:
    """A sell signal closes a long even while its venue-side stop and take-profit rest (they
    are not a close on its way): a reduce-only market sell of the whole position, then both
    legs are canceled; before, the resting legs made the signal look like a working order of
    the market and it was dropped, leaving the position open."""
    import time

    from cryptomon.events import Signal

    rig = await start_live(key=KEY, secret=SECRET, seed=5, native=True, auto_trading_enabled=True)
    try:
        engine, venue = rig.engine, rig.venue
        await enter(engine, "buy", stop_loss="19400", take_profit="21200")
        await legs_resting(rig)
        now = time.time()
        sig = Signal(
            exchange=EX, symbol=PERP, ts=now, ts_recv=now, side="sell", strength=0.9, source="t"
        )
        record = await engine.handle_signal(sig)
        assert record is not None, "the opposite signal was dropped"
        assert record.intent.reduce_only
        assert record.intent.amount == D("0.1")
        pos = engine.portfolio.positions[(EX, PERP)]
        await wait_until(lambda: pos.amount == 0, timeout=10, message="position closed")
        await wait_until(lambda: not algos(venue, "NEW"), timeout=10, message="legs canceled")
        assert sorted(str(a["algoStatus"]) for a in algos(venue)) == ["CANCELED", "CANCELED"]
        await wait_until(lambda: not engine.book.open(), timeout=10, message="no open order")
        assert await engine.broker.fetch_positions() == {}  # type: ignore[attr-defined]
    finally:
        await rig.stop()


@pytest.mark.asyncio
async def test_adding_to_a_position_replaces_its_venue_legs(live: Live) -> None:
    """A second entry on a position protected by venue legs cancels the old pair and places
    one pair of the new size: no leg of the old size is left resting untracked (it would stay
    open in the book, block every later signal on the market and could close a later position
    at the old stop)."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400", take_profit="21200")
    await legs_resting(live)
    old = {str(a["clientAlgoId"]) for a in algos(venue)}
    await enter(engine, "buy", stop_loss="19500", take_profit="21300", actor="t2")
    pos = engine.portfolio.positions[(EX, PERP)]
    assert pos.amount == D("0.2")

    def new_pair() -> bool:
        resting = algos(venue, "NEW")
        return len(resting) == 2 and all(str(a["clientAlgoId"]) not in old for a in resting)

    await wait_until(new_pair, timeout=10, message="one pair of the new size")
    resting = algos(venue, "NEW")
    assert all(D(str(a["quantity"])) == D("0.2") for a in resting)
    assert sorted(str(a["triggerPrice"]) for a in resting) == ["19500", "21300"]
    assert all(a["algoStatus"] == "CANCELED" for a in algos(venue) if a["clientAlgoId"] in old)
    await wait_until(
        lambda: all(not engine.book.get(c).is_open for c in old),  # type: ignore[union-attr]
        timeout=10,
        message="old legs closed in the book",
    )
    prot = engine.protection.protections[(EX, PERP)]
    assert prot.native
    assert {prot.stop_order, prot.take_order} == {str(a["clientAlgoId"]) for a in resting}


@pytest.mark.asyncio
async def test_legs_resting_when_the_journal_lost_the_entry_fill_are_adopted() -> None:
    """The process died after both legs were sent but before the store wrote the entry's
    fill (the journal holds the three intents, all ``new``, and no fill): the restarted
    engine gets the position from the reconciliation and adopts the legs at once (native,
    no second pair, no book watch); when the venue fires the take-profit the stop leg is
    canceled with the close, not left resting until a periodic reconciliation. Before, the
    protection came back emulated with both legs resting beside it, untracked."""
    from cryptomon.config import load_settings
    from cryptomon.hub import Hub
    from cryptomon.trading.journal import MemoryJournal
    from tests.usdm import live_engine, live_trading, top

    rig = await start_live(key=KEY, secret=SECRET, seed=6, native=True)
    engine = None
    try:
        await enter(rig.engine, "buy", stop_loss="19400", take_profit="21200")
        await legs_resting(rig)
        lost = MemoryJournal()  # what the crash left: the intents, written before sending
        for record in rig.engine.book.all():
            await lost.record_intent(record.intent)
        await rig.engine.stop()
        sent = [m for m, p in rig.venue.requests if p == ALGO].count("POST")
        assert sent == 2

        data = {"trading": live_trading(rig.sim.rest_url, key=KEY, secret=SECRET, native=True)}
        hub = Hub()
        engine = live_engine(load_settings(data=data).trading, hub=hub, journal=lost)
        top(hub, 20000.0)
        await engine.start()
        assert engine.portfolio.amount(EX, PERP) == D("0.1")
        prot = engine.protection.protections[(EX, PERP)]
        assert prot.native
        stop, take = sorted(algos(rig.venue, "NEW"), key=lambda a: str(a["orderType"]))
        assert (prot.stop_order, prot.take_order) == (stop["clientAlgoId"], take["clientAlgoId"])
        assert (prot.stop, prot.take) == (D(19400), D(21200))
        assert prot.trigger(D("19399.9"), D("19400.1")) is None  # the venue's legs, no watch

        rig.venue.set_price(VENUE_ID, D(21300))  # the venue fires the take-profit
        pos = engine.portfolio.positions[(EX, PERP)]
        await wait_until(lambda: pos.amount == 0, timeout=10, message="position closed")
        await wait_until(lambda: stop["algoStatus"] == "CANCELED", timeout=10, message="stop gone")
        assert take["algoStatus"] == "FINISHED"
        assert [m for m, p in rig.venue.requests if p == ALGO].count("POST") == sent
        await wait_until(lambda: not engine.book.open(), timeout=10, message="no open order")
    finally:
        if engine is not None:
            await engine.stop()
        await rig.stop()


@pytest.mark.asyncio
async def test_an_entry_filled_while_the_engine_died_gets_its_legs_after_the_restart() -> None:
    """The process died after the venue filled the entry, before its answer arrived (no leg
    was sent): the restarted engine finds the fill in its reconciliation and, once that has
    finished, places the pair at the entry's levels. Before, no leg was placed: the venue's
    metadata had not been asked yet at that point (nothing since the start had needed it),
    so the position was watched on the book only and had no protection at the venue."""
    import asyncio

    from cryptomon.config import load_settings
    from cryptomon.hub import Hub
    from cryptomon.trading.journal import MemoryJournal
    from tests.usdm import live_engine, live_trading, top

    rig = await start_live(key=KEY, secret=SECRET, seed=7, native=True)
    engine = None
    try:
        hold = rig.venue.hold("POST", "/fapi/v1/order")  # filled, the answer held
        entry = asyncio.create_task(
            enter(rig.engine, "buy", stop_loss="19400", take_profit="21200")
        )
        await asyncio.wait_for(hold.reached.wait(), timeout=10)
        lost = MemoryJournal()  # what the crash left: the entry's intent, written before sending
        for record in rig.engine.book.all():
            await lost.record_intent(record.intent)
        entry.cancel()
        await rig.engine.stop()
        hold.release()
        assert rig.venue.book.positions[VENUE_ID].qty == D("0.1")
        assert algos(rig.venue) == []

        data = {"trading": live_trading(rig.sim.rest_url, key=KEY, secret=SECRET, native=True)}
        hub = Hub()
        engine = live_engine(load_settings(data=data).trading, hub=hub, journal=lost)
        top(hub, 20000.0)
        await engine.start()
        assert engine.portfolio.amount(EX, PERP) == D("0.1")
        await legs_resting(Live(rig.sim, rig.venue, engine, hub))
        stop, take = sorted(algos(rig.venue, "NEW"), key=lambda a: str(a["orderType"]))
        assert (stop["triggerPrice"], take["triggerPrice"]) == ("19400", "21200")
        assert D(str(stop["quantity"])) == D(str(take["quantity"])) == D("0.1")
        prot = engine.protection.protections[(EX, PERP)]
        await wait_until(lambda: prot.take_order is not None, timeout=10, message="pair known")
        assert prot.native
        assert (prot.stop_order, prot.take_order) == (stop["clientAlgoId"], take["clientAlgoId"])
        assert [m for m, p in rig.venue.requests if p == ALGO].count("POST") == 2
    finally:
        if engine is not None:
            await engine.stop()
        await rig.stop()
