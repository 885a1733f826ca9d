"""A restart that finds only one of a position's two venue legs (the process died between
sending the stop-loss and the take-profit) completes the pair, end to end through the real
ccxt ``binanceusdm`` code on the simulator: the missing leg is placed with the id the pair
would have had, the book watches its side until it rests, and a second restart adopts it
instead of placing a third."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.config import load_settings
from cryptomon.hub import Hub
from cryptomon.kinds import OrderState
from cryptomon.sim.usdm import UsdmVenue
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal
from tests.usdm import EX, PERP, VENUE_ID, Live, enter, live_engine, live_trading, start_live, top
from tests.util import wait_until

D = Decimal
KEY, SECRET = "restart-key", "restart-secret"
ALGO = "/fapi/v1/algoOrder"
FEE = D("0.0004")


@pytest_asyncio.fixture
async def live() -> AsyncIterator[Live]:
    rig = await start_live(key=KEY, secret=SECRET, seed=8, native=True)
    try:
        yield rig
    finally:
        for hold in list(rig.venue.holds.values()):
            hold.release()
        await rig.stop()


def algos(venue: UsdmVenue, status: str | None = None) -> list[dict[str, object]]:
    return [a for a in venue.book.algos if status in (None, a["algoStatus"])]


def posts(venue: UsdmVenue) -> int:
    return [m for m, p in venue.requests if p == ALGO].count("POST")


async def crash_journal(
    live: Live | MemoryJournal, *, fills: bool, drop: str | None = None
) -> MemoryJournal:
    """What the crash left of the first engine's journal (or of ``live``, a journal): every
    intent (written before it was sent) except ``drop``'s; with ``fills`` also the states and
    fills the store had written (else the restart finds the entry's fill in its
    reconciliation)."""
    old = live if isinstance(live, MemoryJournal) else live.engine.journal
    assert isinstance(old, MemoryJournal)
    lost = MemoryJournal()
    for coid, intent in old.intents.items():
        if coid != drop:
            await lost.record_intent(intent)
            if fills and coid in old.states:
                lost.states[coid] = old.states[coid]
    if fills:
        for fill in await old.fills():
            lost.add_fill(fill)
    return lost


async def restart(rig: Live, journal: MemoryJournal, **trading: object) -> TradingEngine:
    """A new engine on ``journal`` (which follows its hub from now on), started; ``trading``
    adds keys to its config (``live``: to its ``live`` section)."""
    url = rig.sim.rest_url
    data = {"trading": live_trading(url, key=KEY, secret=SECRET, native=True, **trading)}
    hub = Hub()
    journal.close()
    journal.follow(hub)
    engine = live_engine(load_settings(data=data).trading, hub=hub, journal=journal)
    top(hub, 20000.0)
    await engine.start()
    return engine


async def second_restart(
    live: Live, engine: TradingEngine, journal: MemoryJournal
) -> TradingEngine:
    """Stop ``engine`` and start another on its journal: both legs are adopted, none sent."""
    await engine.stop()
    sent = posts(live.venue)
    again = await restart(live, journal)
    prot = again.protection.protections[(EX, PERP)]
    resting = {str(a["clientAlgoId"]) for a in algos(live.venue, "NEW")}
    assert prot.native
    assert prot.missing is None
    assert {prot.stop_order, prot.take_order} == resting
    assert prot.trigger(D("19399.9"), D("19400.1")) is None  # both sides rest at the venue
    assert prot.trigger(D("21200.1"), D("21200.2")) is None
    assert posts(live.venue) == sent  # no third leg
    return again


@pytest.mark.asyncio
@pytest.mark.parametrize("fills", [True, False], ids=["fill-journaled", "fill-lost"])
async def test_only_the_stop_resting_after_a_restart_gets_its_take_profit(
    live: Live, fills: bool
) -> None:
    """Killed while the stop-loss's request was on its way (the venue took it; the take-profit
    was never sent): the restart adopts the stop and places the take-profit (21200, the id
    the pair's own placement gives it), the take side watched on the book until it rests;
    a second restart places nothing; the venue's take-profit then closes the position and
    the stop is canceled. Before, the stop alone was adopted and the position had no
    take-profit at all (native: the book watch off)."""
    venue = live.venue
    hold = venue.hold("POST", ALGO)  # the stop leg: taken by the venue, its answer held
    entry = asyncio.create_task(enter(live.engine, "buy", stop_loss="19400", take_profit="21200"))
    await asyncio.wait_for(hold.reached.wait(), timeout=10)
    await entry
    journal = await crash_journal(live, fills=fills)
    await live.engine.stop()
    hold.release()
    (stop,) = algos(venue, "NEW")
    assert stop["orderType"] == "STOP_MARKET"
    assert posts(venue) == 1

    held = venue.hold("POST", ALGO, before=True)  # the completing leg, still on its way
    engine = await restart(live, journal)
    try:
        prot = engine.protection.protections[(EX, PERP)]
        await asyncio.wait_for(held.reached.wait(), timeout=10)
        assert prot.native
        assert prot.stop_order == stop["clientAlgoId"]
        assert prot.missing == "take_profit"
        assert prot.trigger(D("19399.9"), D("19400.1")) is None  # the venue's stop rests
        assert prot.trigger(D("21200.0"), D("21200.1")) == "take_profit"  # watched meanwhile
        held.release()
        await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="pair")
        await wait_until(lambda: prot.missing is None, timeout=10, message="take resting")
        take = next(a for a in algos(venue, "NEW") if a is not stop)
        assert (take["orderType"], take["triggerPrice"]) == ("TAKE_PROFIT_MARKET", "21200")
        assert take["reduceOnly"] is True
        assert D(str(take["quantity"])) == D("0.1")
        assert prot.take_order == take["clientAlgoId"]
        assert posts(venue) == 2

        engine = await second_restart(live, engine, journal)
        venue.set_price(VENUE_ID, D(21300))  # the venue fires the take-profit
        pos = engine.portfolio.positions[(EX, PERP)]
        await wait_until(lambda: pos.amount == 0, timeout=10, message="position closed")
        await wait_until(lambda: stop["algoStatus"] == "CANCELED", timeout=10, message="stop gone")
        assert take["algoStatus"] == "FINISHED"
        hand = D("0.1") * (D(21300) - D(20000)) - D("0.1") * (D(20000) + D(21300)) * FEE
        assert engine.portfolio.trades[-1].pnl == hand
        await wait_until(lambda: not engine.book.open(), timeout=10, message="no open order")
    finally:
        held.release()
        await engine.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("fills", [True, False], ids=["fill-journaled", "fill-lost"])
async def test_only_the_take_profit_resting_after_a_restart_gets_its_stop(
    live: Live, fills: bool
) -> None:
    """A restart that finds only the take-profit resting (no stop-loss at the venue nor in
    the journal) places the stop-loss (19400), the stop side watched on the book until it
    rests; a second restart places nothing; the venue's stop then closes the position and
    the take-profit is canceled. Before, the position had no stop-loss at all."""
    venue = live.venue
    await enter(live.engine, "buy", stop_loss="19400", take_profit="21200")
    await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="2 legs")
    gone = next(a for a in algos(venue) if a["orderType"] == "STOP_MARKET")
    journal = await crash_journal(live, fills=fills, drop=str(gone["clientAlgoId"]))
    await live.engine.stop()
    venue.book.algos.remove(gone)  # never reached the venue
    (take,) = algos(venue, "NEW")
    sent = posts(venue)

    held = venue.hold("POST", ALGO, before=True)  # the completing leg, still on its way
    engine = await restart(live, journal)
    try:
        prot = engine.protection.protections[(EX, PERP)]
        await asyncio.wait_for(held.reached.wait(), timeout=10)
        assert prot.native
        assert prot.take_order == take["clientAlgoId"]
        assert prot.missing == "stop_loss"
        assert prot.trigger(D("21200.0"), D("21200.1")) is None  # the venue's take-profit
        assert prot.trigger(D("19400.0"), D("19400.1")) == "stop_loss"  # never unprotected
        held.release()
        await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="pair")
        await wait_until(lambda: prot.missing is None, timeout=10, message="stop resting")
        stop = next(a for a in algos(venue, "NEW") if a is not take)
        assert (stop["orderType"], stop["triggerPrice"]) == ("STOP_MARKET", "19400")
        assert stop["reduceOnly"] is True
        assert D(str(stop["quantity"])) == D("0.1")
        assert prot.stop_order == stop["clientAlgoId"]
        assert posts(venue) == sent + 1

        engine = await second_restart(live, engine, journal)
        venue.set_price(VENUE_ID, D(19300))  # the venue fires the stop
        pos = engine.portfolio.positions[(EX, PERP)]
        await wait_until(lambda: pos.amount == 0, timeout=10, message="position closed")
        await wait_until(lambda: take["algoStatus"] == "CANCELED", timeout=10, message="take gone")
        assert stop["algoStatus"] == "FINISHED"
        hand = D("0.1") * (D(19300) - D(20000)) - D("0.1") * (D(20000) + D(19300)) * FEE
        assert engine.portfolio.trades[-1].pnl == hand
        await wait_until(lambda: not engine.book.open(), timeout=10, message="no open order")
    finally:
        held.release()
        await engine.stop()


@pytest.mark.asyncio
async def test_a_refused_completing_leg_falls_back_to_the_book(live: Live) -> None:
    """The take-profit a restart sends to complete the pair is refused by the venue: the
    position goes back to the book watch (both sides) and the lone stop leg is canceled, as
    for any refused leg."""
    from cryptomon.sim.usdm import MAX_STOP_ORDERS

    venue = live.venue
    hold = venue.hold("POST", ALGO)
    entry = asyncio.create_task(enter(live.engine, "buy", stop_loss="19400", take_profit="21200"))
    await asyncio.wait_for(hold.reached.wait(), timeout=10)
    await entry
    journal = await crash_journal(live, fills=True)
    await live.engine.stop()
    hold.release()
    (stop,) = algos(venue, "NEW")

    venue.refuse("POST", ALGO, MAX_STOP_ORDERS)
    engine = await restart(live, journal)
    try:
        prot = engine.protection.protections[(EX, PERP)]
        await wait_until(lambda: not prot.native, timeout=10, message="back to the book")
        await wait_until(lambda: stop["algoStatus"] == "CANCELED", timeout=10, message="stop gone")
        assert prot.trigger(D("19399.9"), D("19400.1")) == "stop_loss"
        assert prot.trigger(D("21200.0"), D("21200.1")) == "take_profit"
        record = engine.book.get(str(prot.take_order))
        assert record is not None
        assert "Reach max stop order limit" in record.reason
        assert posts(venue) == 2
    finally:
        await engine.stop()


@pytest.mark.asyncio
async def test_the_book_watch_of_a_missing_stop_fires_and_retries_a_refused_exit(
    live: Live,
) -> None:
    """Only the take-profit rests and the stop placed to complete the pair is still on its
    way when the book falls through the stop: the engine's own stop exit fires; the venue
    refuses it (PERCENT_PRICE) and it is tried again until it closes the position, then the
    take-profit leg is canceled. Before, a refused exit of a protection with venue legs was
    never tried again (its trigger stayed off): the position was left without a stop."""
    from cryptomon.sim.usdm import PERCENT_PRICE

    venue = live.venue
    await enter(live.engine, "buy", stop_loss="19400", take_profit="21200")
    await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="2 legs")
    gone = next(a for a in algos(venue) if a["orderType"] == "STOP_MARKET")
    journal = await crash_journal(live, fills=True, drop=str(gone["clientAlgoId"]))
    await live.engine.stop()
    venue.book.algos.remove(gone)
    (take,) = algos(venue, "NEW")

    held = venue.hold("POST", ALGO, before=True)
    # the exit waits for the leg's placement (one order is sent at a time) until it times
    # out; the leg then stays unknown (looked up, not at the venue) for the whole test
    engine = await restart(live, journal, order_timeout_s=1.0, live={"recv_window_ms": 30_000})
    try:
        prot = engine.protection.protections[(EX, PERP)]
        await asyncio.wait_for(held.reached.wait(), timeout=10)
        assert prot.missing == "stop_loss"
        venue.refuse("POST", "/fapi/v1/order", PERCENT_PRICE)
        venue.set_price(VENUE_ID, D(19390))
        hub = engine.hub
        pos = engine.portfolio.positions[(EX, PERP)]

        def falling() -> bool:
            top(hub, 19390.0)  # the book keeps quoting below the stop
            return pos.amount == 0

        await wait_until(falling, timeout=10, interval=0.05, message="closed by the book watch")
        leg = engine.book.get(str(prot.stop_order))
        assert leg is not None
        assert leg.state.value == "unknown"  # the exit did not wait for the leg's outcome
        exits = [r for r in engine.book.all() if r.intent.type == "market" and r.intent.reduce_only]
        assert [(r.intent.origin, r.state.value) for r in exits] == [
            ("stop_loss", "rejected"),
            ("stop_loss", "filled"),
        ]
        held.release()
        await wait_until(lambda: take["algoStatus"] == "CANCELED", timeout=10, message="take gone")
        await wait_until(lambda: not algos(venue, "NEW"), timeout=10, message="no leg resting")
        assert venue.book.positions[VENUE_ID].qty == 0
    finally:
        held.release()
        await engine.stop()


@pytest.mark.asyncio
async def test_a_completing_leg_of_unknown_outcome_is_looked_up_not_resent(live: Live) -> None:
    """Killed again while the take-profit completing the pair was on its way (the venue took
    it, its answer never came): its intent is in the journal, so the next restart looks it up
    and adopts it; nothing is sent (no second take-profit, no third leg)."""
    venue = live.venue
    hold = venue.hold("POST", ALGO)
    entry = asyncio.create_task(enter(live.engine, "buy", stop_loss="19400", take_profit="21200"))
    await asyncio.wait_for(hold.reached.wait(), timeout=10)
    await entry
    journal = await crash_journal(live, fills=True)
    await live.engine.stop()
    hold.release()

    held = venue.hold("POST", ALGO)  # the completing take-profit: taken, its answer held
    engine = await restart(live, journal)
    try:
        await asyncio.wait_for(held.reached.wait(), timeout=10)
        lost = await crash_journal(journal, fills=True)  # the second crash's journal
    finally:
        await engine.stop()
        held.release()
    assert len(algos(venue, "NEW")) == 2
    sent = posts(venue)
    assert sent == 2

    engine = await restart(live, lost)
    try:
        prot = engine.protection.protections[(EX, PERP)]
        assert prot.native
        assert prot.missing is None
        assert {prot.stop_order, prot.take_order} == {
            str(a["clientAlgoId"]) for a in algos(venue, "NEW")
        }
        take = engine.book.get(str(prot.take_order))
        assert take is not None
        assert take.state.value == "submitted"  # looked up at the venue by the reconciliation
        assert posts(venue) == sent
    finally:
        await engine.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("resting", ["stop_loss", "take_profit"])
async def test_a_restored_half_pair_is_completed_at_the_entrys_own_levels(
    live: Live, resting: str
) -> None:
    """The entry's own stop-loss and take-profit (19000 and 22000, not the configured 3% and
    6%: 19400 and 21200) survive a restart whose journal has the entry's fill (the position
    is restored from it): the leg completing the half pair is placed at the entry's level,
    found in the entry's intent in the journal, and the book watches that level until it
    rests; the restored protection takes the entry's id, so the leg gets the id the pair's
    own placement gives it. Before, the missing leg went to the default level."""
    venue = live.venue
    await enter(live.engine, "buy", stop_loss="19000", take_profit="22000")
    await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="2 legs")
    kind = "STOP_MARKET" if resting == "take_profit" else "TAKE_PROFIT_MARKET"
    gone = next(a for a in algos(venue) if a["orderType"] == kind)  # the missing leg
    journal = await crash_journal(live, fills=True, drop=str(gone["clientAlgoId"]))
    await live.engine.stop()
    venue.book.algos.remove(gone)  # never reached the venue
    (kept,) = algos(venue, "NEW")

    held = venue.hold("POST", ALGO, before=True)  # the completing leg, still on its way
    engine = await restart(live, journal)
    try:
        prot = engine.protection.protections[(EX, PERP)]
        await asyncio.wait_for(held.reached.wait(), timeout=10)
        assert (prot.stop, prot.take) == (D(19000), D(22000))
        if resting == "stop_loss":
            assert prot.trigger(D("21200.0"), D("21200.1")) is None  # not the default
            assert prot.trigger(D("22000.0"), D("22000.1")) == "take_profit"
        else:
            assert prot.trigger(D("19400.0"), D("19400.1")) is None
            assert prot.trigger(D("19000.0"), D("19000.1")) == "stop_loss"
        held.release()
        await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="pair")
        await wait_until(lambda: prot.missing is None, timeout=10, message="leg resting")
        (placed,) = [a for a in algos(venue, "NEW") if a is not kept]
        assert placed["orderType"] == kind
        assert D(str(placed["triggerPrice"])) == (D(22000) if kind != "STOP_MARKET" else D(19000))
        assert placed["clientAlgoId"] == gone["clientAlgoId"]  # the pair's own id
        assert kept["algoStatus"] == "NEW"
    finally:
        held.release()
        await engine.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("window_ms", [100, 5_000], ids=["past-window", "looked-up"])
async def test_a_completing_leg_that_never_reached_the_venue_is_placed_again(
    live: Live, window_ms: int
) -> None:
    """Killed again while the take-profit completing the pair was on its way, before the
    venue had it (the request dropped with the process): the next restart finds it nowhere
    (at once past its recv window, or after its lookups inside it) and places it again under
    a new id (the old one is spent), the stop leg kept resting; the book watches the take
    side meanwhile. Before, it was taken for a refused leg: the stop was canceled and the
    position went back to the book watch."""
    from cryptomon.sim.usdm import SERVER_BUSY

    venue = live.venue
    hold = venue.hold("POST", ALGO)
    entry = asyncio.create_task(enter(live.engine, "buy", stop_loss="19000", take_profit="22000"))
    await asyncio.wait_for(hold.reached.wait(), timeout=10)
    await entry
    journal = await crash_journal(live, fills=True)
    await live.engine.stop()
    hold.release()
    (stop,) = algos(venue, "NEW")

    held = venue.hold("POST", ALGO, before=True)  # the completing take-profit, on its way
    engine = await restart(live, journal)
    try:
        await asyncio.wait_for(held.reached.wait(), timeout=10)
        burned = engine.protection.protections[(EX, PERP)].take_order
        lost = await crash_journal(journal, fills=True)  # the second crash's journal
    finally:
        await engine.stop()
        venue.refuse("POST", ALGO, SERVER_BUSY)  # the held request is dropped untouched
        held.release()
    await wait_until(lambda: not venue.refusals, timeout=10, message="request dropped")
    assert algos(venue, "NEW") == [stop]
    assert burned in lost.intents

    engine = await restart(live, lost, live={"recv_window_ms": window_ms})
    try:
        prot = engine.protection.protections[(EX, PERP)]
        if window_ms == 5_000:  # still looked up: its side is watched meanwhile
            assert prot.missing == "take_profit"
            assert prot.trigger(D("18999.9"), D("19000.0")) is None  # the venue's stop rests
            assert prot.trigger(D("22000.0"), D("22000.1")) == "take_profit"
        await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=15, message="take again")
        await wait_until(lambda: prot.missing is None, timeout=10, message="take resting")
        take = next(a for a in algos(venue, "NEW") if a is not stop)
        assert (take["orderType"], D(str(take["triggerPrice"]))) == ("TAKE_PROFIT_MARKET", 22000)
        assert prot.native
        assert prot.take_order == take["clientAlgoId"] != burned
        assert prot.stop_order == stop["clientAlgoId"]
        assert stop["algoStatus"] == "NEW"  # kept
        old = engine.book.get(str(burned))
        assert old is not None
        assert old.state.value == "rejected"
    finally:
        await engine.stop()


@pytest.mark.asyncio
async def test_a_leg_the_venue_keeps_losing_falls_back_to_the_book(live: Live) -> None:
    """The stop-loss completing the pair never reaches the venue, time after time (every
    request answered busy, untouched): it is placed again at most 3 times, then the position
    goes back to the book watch (both sides) and the take-profit leg is canceled, as for a
    refused leg; nothing more is sent."""
    from cryptomon.sim.usdm import SERVER_BUSY

    venue = live.venue
    await enter(live.engine, "buy", stop_loss="19000", take_profit="22000")
    await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="2 legs")
    gone = next(a for a in algos(venue) if a["orderType"] == "STOP_MARKET")
    journal = await crash_journal(live, fills=True, drop=str(gone["clientAlgoId"]))
    await live.engine.stop()
    venue.book.algos.remove(gone)
    (take,) = algos(venue, "NEW")
    sent = posts(venue)

    engine = await restart(live, journal, live={"recv_window_ms": 100})
    try:
        prot = engine.protection.protections[(EX, PERP)]

        def dropping() -> bool:  # every placement of the stop is lost
            if ("POST", ALGO) not in venue.refusals:
                venue.refuse("POST", ALGO, SERVER_BUSY)
            return not prot.native

        await wait_until(dropping, timeout=30, interval=0.02, message="back to the book")
        venue.refusals.clear()
        await wait_until(lambda: take["algoStatus"] == "CANCELED", timeout=10, message="take gone")
        assert posts(venue) == sent + 4  # the completing leg, then 3 more
        stops = [r for r in engine.book.all() if r.intent.type == "stop_market"]
        assert len({r.client_order_id for r in stops}) == 4
        assert all(r.absent and r.state.value == "rejected" for r in stops)
        assert prot.trigger(D("19000.0"), D("19000.1")) == "stop_loss"
        assert prot.trigger(D("22000.0"), D("22000.1")) == "take_profit"
    finally:
        await engine.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("then", ["settled", "crossed"])
async def test_a_leg_unknown_in_the_journal_has_its_side_watched_until_settled(
    live: Live, then: str
) -> None:
    """The journal has the stop-loss leg ``unknown`` (its answer never came before the crash)
    and the venue does not have it yet (the request still on its way), the take-profit
    resting: after the restart its lookups find nothing inside its recv window, and the
    stop side is watched on the book meanwhile (a fall through 19000 closes the position
    with the engine's own exit); once the venue has it, the lookup finds it resting and the
    watch stops, nothing placed again. Before, the unknown leg counted as covering its side
    and no state change came to turn the watch on: the position had no stop until the
    lookup settled it."""
    venue = live.venue
    await enter(live.engine, "buy", stop_loss="19000", take_profit="22000")
    await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="2 legs")
    stop = next(a for a in algos(venue) if a["orderType"] == "STOP_MARKET")
    stop_id = str(stop["clientAlgoId"])
    journal = await crash_journal(live, fills=True)
    journal.states[stop_id] = (OrderState.UNKNOWN, None)
    await live.engine.stop()
    venue.book.algos.remove(stop)  # not at the venue yet
    sent = posts(venue)

    engine = await restart(live, journal, live={"recv_window_ms": 30_000})
    try:
        prot = engine.protection.protections[(EX, PERP)]
        leg = engine.book.get(stop_id)
        assert leg is not None
        assert leg.state == OrderState.UNKNOWN  # looked up, not found yet
        assert prot.native
        assert prot.stop_order == stop_id
        assert prot.missing == "stop_loss"
        assert prot.trigger(D("21999.9"), D("22000.0")) is None  # the venue's take-profit
        if then == "crossed":
            venue.set_price(VENUE_ID, D(18990))
            hub = engine.hub
            pos = engine.portfolio.positions[(EX, PERP)]

            def falling() -> bool:
                top(hub, 18990.0)  # the book keeps quoting below the stop
                return pos.amount == 0

            await wait_until(falling, timeout=10, interval=0.05, message="closed by the book")
            exits = [r for r in engine.book.all() if r.intent.type == "market"]
            assert [(r.intent.origin, r.state) for r in exits] == [("stop_loss", OrderState.FILLED)]
            return
        assert prot.trigger(D("19000.0"), D("19000.1")) == "stop_loss"  # watched meanwhile
        venue.book.algos.append(stop)  # the request arrives: the venue has the leg
        await wait_until(lambda: leg.state == OrderState.SUBMITTED, timeout=10, message="found")
        assert prot.missing is None
        assert prot.native
        assert prot.trigger(D("18999.9"), D("19000.0")) is None  # the venue's stop rests
        assert posts(venue) == sent  # nothing placed again
    finally:
        await engine.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("then", ["settled", "crossed"])
async def test_both_legs_unknown_in_the_journal_have_both_sides_watched_until_settled(
    live: Live, then: str
) -> None:
    """The journal has both legs ``unknown`` (neither answer came before the crash) and the
    venue has neither yet: after the restart both sides are watched on the book (a rise
    through 22000 closes the position with the engine's own take-profit exit), not the stop
    alone as before; each lookup that finds its leg resting stops that side's watch only,
    nothing is placed again."""
    venue = live.venue
    await enter(live.engine, "buy", stop_loss="19000", take_profit="22000")
    await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="2 legs")
    stop = next(a for a in algos(venue) if a["orderType"] == "STOP_MARKET")
    take = next(a for a in algos(venue) if a["orderType"] != "STOP_MARKET")
    stop_id, take_id = str(stop["clientAlgoId"]), str(take["clientAlgoId"])
    journal = await crash_journal(live, fills=True)
    journal.states[stop_id] = (OrderState.UNKNOWN, None)
    journal.states[take_id] = (OrderState.UNKNOWN, None)
    await live.engine.stop()
    venue.book.algos.remove(stop)  # neither at the venue yet
    venue.book.algos.remove(take)
    sent = posts(venue)

    engine = await restart(live, journal, live={"recv_window_ms": 30_000})
    try:
        prot = engine.protection.protections[(EX, PERP)]
        stop_leg, take_leg = engine.book.get(stop_id), engine.book.get(take_id)
        assert stop_leg is not None
        assert take_leg is not None
        assert (stop_leg.state, take_leg.state) == (OrderState.UNKNOWN, OrderState.UNKNOWN)
        assert prot.native
        assert (prot.stop_order, prot.take_order) == (stop_id, take_id)
        assert prot.trigger(D("19000.0"), D("19000.1")) == "stop_loss"
        assert prot.trigger(D("22000.0"), D("22000.1")) == "take_profit"
        if then == "crossed":
            venue.set_price(VENUE_ID, D(22010))
            hub = engine.hub
            pos = engine.portfolio.positions[(EX, PERP)]

            def rising() -> bool:
                top(hub, 22010.0)  # the book keeps quoting above the take-profit
                return pos.amount == 0

            await wait_until(rising, timeout=10, interval=0.05, message="closed by the book")
            exits = [r for r in engine.book.all() if r.intent.type == "market"]
            assert [(r.intent.origin, r.state) for r in exits] == [
                ("take_profit", OrderState.FILLED)
            ]
            return
        venue.book.algos.append(stop)  # the stop's request arrives: the venue has it
        await wait_until(
            lambda: stop_leg.state == OrderState.SUBMITTED, timeout=10, message="stop found"
        )
        assert prot.native
        assert prot.trigger(D("18999.9"), D("19000.0")) is None  # the venue's stop rests
        assert prot.trigger(D("22000.0"), D("22000.1")) == "take_profit"  # still watched
        venue.book.algos.append(take)
        await wait_until(
            lambda: take_leg.state == OrderState.SUBMITTED, timeout=10, message="take found"
        )
        assert prot.missing is None
        assert prot.trigger(D("22000.0"), D("22000.1")) is None  # the venue's take rests
        assert prot.trigger(D("18999.9"), D("19000.0")) is None
        assert posts(venue) == sent  # nothing placed again
    finally:
        await engine.stop()


@pytest.mark.asyncio
async def test_both_legs_unknown_and_never_arrived_are_placed_again_each_side_watched(
    live: Live,
) -> None:
    """Both legs ``unknown`` in the journal and neither ever reaches the venue: their lookups
    find them absent past the recv window and each is placed again under a new id; while
    one is placed again the other's side stays watched on the book, and once both new legs
    rest the book watch is off, with one post per leg."""
    venue = live.venue
    await enter(live.engine, "buy", stop_loss="19000", take_profit="22000")
    await wait_until(lambda: len(algos(venue, "NEW")) == 2, timeout=10, message="2 legs")
    old = {str(a["clientAlgoId"]) for a in algos(venue)}
    journal = await crash_journal(live, fills=True)
    for coid in old:
        journal.states[coid] = (OrderState.UNKNOWN, None)
    await live.engine.stop()
    venue.book.algos.clear()  # neither request ever arrives
    sent = posts(venue)

    engine = await restart(live, journal, live={"recv_window_ms": 500})
    try:
        prot = engine.protection.protections[(EX, PERP)]
        assert prot.trigger(D("19000.0"), D("19000.1")) == "stop_loss"
        assert prot.trigger(D("22000.0"), D("22000.1")) == "take_profit"
        await wait_until(
            lambda: len(algos(venue, "NEW")) == 2 and prot.missing is None,
            timeout=20,
            message="both legs placed again and resting",
        )
        assert prot.native
        assert {prot.stop_order, prot.take_order}.isdisjoint(old)
        assert {str(a["clientAlgoId"]) for a in algos(venue, "NEW")} == {
            prot.stop_order,
            prot.take_order,
        }
        assert prot.trigger(D("18999.9"), D("19000.0")) is None
        assert prot.trigger(D("22000.0"), D("22000.1")) is None
        assert posts(venue) == sent + 2
    finally:
        await engine.stop()
