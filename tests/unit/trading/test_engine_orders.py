"""Engine order path: write-before-send, unknown outcomes settled by lookup and never resent,
fill de-duplication, protective exits (emulated, trailing, native)."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from cryptomon.clock import ManualClock
from cryptomon.errors import RiskRejected, TemporaryError
from cryptomon.events import Fill, OrderIntent, OrderState, OrderUpdate, RiskEvent, Signal
from cryptomon.kinds import SignalGrade
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.orders import client_order_id
from tests.unit.trading.brokers_for_tests import ScriptedBroker
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
from tests.util import wait_until

S = OrderState


# the ManualClock's start: a signal made now (older ones are not traded: max_signal_age_s)
T_SIGNAL = 1_700_000_000.0


def scripted_engine(
    native: bool = False, **cfg: object
) -> tuple[TradingEngine, ScriptedBroker, MemoryJournal, Collector, ManualClock]:
    engine, paper, hub, market, clock = paper_engine(config=trading_config(**cfg))
    broker = ScriptedBroker(paper, native=native)
    journal = engine.journal
    assert isinstance(journal, MemoryJournal)
    engine = TradingEngine(
        config=engine.config, hub=hub, clock=clock, broker=broker, market=market, journal=journal
    )
    col = Collector(hub, OrderIntent, OrderUpdate, Fill, RiskEvent)
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    assert isinstance(clock, ManualClock)
    return engine, broker, journal, col, clock


def signal(side: str = "buy", strength: float = 0.9, sid: str = "sig-1") -> Signal:
    return Signal(
        exchange=EX,
        symbol=SYM,
        ts=T_SIGNAL,
        ts_recv=T_SIGNAL,
        side=side,  # type: ignore[arg-type]
        strength=strength,
        source="test",
        reason="test",
        id=sid,
    )


def states(col: Collector, coid: str) -> list[OrderState]:
    return [u.state for u in col.of(OrderUpdate) if u.client_order_id == coid]


@pytest.mark.asyncio
async def test_intent_is_written_before_the_order_is_sent() -> None:
    """The journal holds the intent when the broker receives it; a failed write sends nothing."""
    engine, broker, journal, _, _ = scripted_engine()
    await engine.start()
    seen_in_journal: list[bool] = []
    place = broker.place_order

    async def checking(intent: OrderIntent):  # type: ignore[no-untyped-def]
        seen_in_journal.append(intent.client_order_id in journal.intents)
        return await place(intent)

    broker.place_order = checking  # type: ignore[method-assign]
    rec = await engine.handle_signal(signal())
    assert rec is not None
    assert rec.state == S.FILLED
    assert seen_in_journal == [True]
    journal.fail_next = OSError("disk full")
    with pytest.raises(TemporaryError, match="could not be written"):
        await engine.handle_signal(signal("sell", sid="sig-2"))
    assert sum(broker.calls.values()) == 1
    await engine.stop()


@pytest.mark.asyncio
async def test_dropped_response_settles_by_lookup_without_resending() -> None:
    """Venue accepted, response lost: unknown -> filled via fetch_order; placed exactly once."""
    engine, broker, _, col, clock = scripted_engine()
    await engine.start()
    broker.mode = "drop"
    rec = await engine.handle_signal(signal())
    assert rec is not None
    assert rec.state == S.UNKNOWN
    await advance_until(clock, lambda: rec.state == S.FILLED, message="settled")
    assert broker.calls[rec.client_order_id] == 1
    assert broker.placed[rec.client_order_id] == 1
    assert states(col, rec.client_order_id) == [S.NEW, S.UNKNOWN, S.FILLED]
    assert engine.portfolio.amount(EX, SYM) == rec.intent.amount
    await engine.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("mode", "why"),
    [("hang", "placement failed"), ("boom", "RuntimeError")],
    ids=["no-answer-within-order-timeout", "unexpected-broker-error"],
)
async def test_placement_without_an_answer_is_unknown_then_settled(mode: str, why: str) -> None:
    """No answer within order_timeout_s, or any other error from place_order (either may hide
    an accepted order): unknown, then settled by lookup, never resent."""
    engine, broker, _, _, clock = scripted_engine(order_timeout_s=0.05)
    await engine.start()
    broker.mode = mode
    rec = await engine.handle_signal(signal())
    assert rec is not None
    assert rec.state == S.UNKNOWN
    assert why in rec.reason
    await advance_until(clock, lambda: rec.state == S.FILLED, message="settled")
    assert broker.calls[rec.client_order_id] == 1
    await engine.stop()


@pytest.mark.asyncio
async def test_429_never_reaching_the_venue_ends_rejected_after_lookups() -> None:
    """A 429 (Retry-After 2 s) for an order the venue never saw: looked up unknown_lookups
    times, honouring Retry-After first, then rejected; never resent."""
    engine, broker, _, _, clock = scripted_engine(unknown_lookups=3)
    await engine.start()
    broker.mode = "429"
    rec = await engine.handle_signal(signal())
    assert rec is not None
    assert rec.state == S.UNKNOWN
    before = broker.lookups
    clock.advance(1.0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert broker.lookups == before  # Retry-After 2 s not yet over
    await advance_until(clock, lambda: rec.state == S.REJECTED, message="rejected")
    assert "not found at the venue after" in rec.reason
    assert broker.lookups - before >= 3
    assert clock.time() >= rec.sent + engine.config.live.recv_window_ms / 1000
    assert broker.calls[rec.client_order_id] == 1
    assert rec.client_order_id not in broker.placed
    assert engine.portfolio.amount(EX, SYM) == 0
    await engine.stop()


@pytest.mark.asyncio
async def test_same_signal_never_places_a_second_order() -> None:
    """The client order id derives from the signal id: handling it again is a no-op."""
    engine, broker, _, _, _ = scripted_engine()
    await engine.start()
    first = await engine.handle_signal(signal())
    assert first is not None
    assert first.client_order_id == client_order_id("sig-1", "entry", "signal")
    assert await engine.handle_signal(signal()) is None  # already long
    again = await engine.executor.submit(first.intent)
    assert again is first
    assert sum(broker.calls.values()) == 1
    await engine.stop()


@pytest.mark.asyncio
async def test_fills_are_applied_once_per_trade_id() -> None:
    """The same fills arriving from placement, polling and the listener count once."""
    engine, broker, _, col, _ = scripted_engine()
    await engine.start()
    rec = await engine.handle_signal(signal())
    assert rec is not None
    bo = await broker.fetch_order(SYM, rec.client_order_id)
    assert bo is not None
    await engine.executor.apply_broker_order(rec, bo)
    await engine.executor.apply_broker_order(rec, bo)
    assert len(col.of(Fill)) == len(bo.fills)
    assert engine.portfolio.amount(EX, SYM) == rec.intent.amount == rec.filled
    await engine.stop()


@pytest.mark.asyncio
async def test_weak_or_disabled_signals_place_nothing() -> None:
    """Below min_signal_strength, or with auto trading off, a signal is ignored."""
    engine, broker, _, _, _ = scripted_engine()
    await engine.start()
    assert await engine.handle_signal(signal(strength=0.5)) is None
    engine.update_limits("test", auto_trading_enabled=False)
    assert await engine.handle_signal(signal()) is None
    assert sum(broker.calls.values()) == 0
    await engine.stop()


@pytest.mark.asyncio
async def test_a_signal_older_than_max_signal_age_s_is_not_traded() -> None:
    """A signal made from events older than max_signal_age_s (a brain draining its backlog
    after a restart re-detects hour-old anomalies) places nothing; one within the limit, or
    any with the limit off (0), is traded. Before, the hour-old signal was traded at today's
    price."""
    engine, broker, _, _, clock = scripted_engine()
    await engine.start()
    now = clock.time()
    with capture_logs() as logs:
        old = dataclasses.replace(signal(sid="old"), ts=now - 3600, ts_recv=now)
        assert await engine.handle_signal(old) is None
    assert sum(broker.calls.values()) == 0
    [line] = [e for e in logs if e["event"] == "trading.signal_too_old"]
    assert line["age_s"] == 3600.0
    recent = dataclasses.replace(signal(sid="recent"), ts=now - 299, ts_recv=now)
    assert await engine.handle_signal(recent) is not None
    await engine.stop()
    engine, broker, _, _, clock = scripted_engine(max_signal_age_s=0)
    await engine.start()
    now = clock.time()
    old = dataclasses.replace(signal(sid="old"), ts=now - 3600, ts_recv=now)
    assert await engine.handle_signal(old) is not None
    await engine.stop()


@pytest.mark.asyncio
async def test_ignore_grade_is_never_traded_whatever_the_strength() -> None:
    """A signal graded ignore places nothing even above min_signal_strength; an ungraded one
    is graded by trading.grades (0.4 < weak 0.5: ignore, with the gate lowered to 0.3)."""
    engine, broker, _, _, _ = scripted_engine(min_signal_strength=0.3)
    await engine.start()
    ignored = dataclasses.replace(signal(strength=0.9), grade=SignalGrade.IGNORE)
    assert await engine.handle_signal(ignored) is None
    assert await engine.handle_signal(signal(strength=0.4)) is None
    assert sum(broker.calls.values()) == 0
    assert await engine.handle_signal(signal(strength=0.55)) is not None  # weak: traded
    await engine.stop()


@pytest.mark.asyncio
async def test_entry_sized_from_risk_and_stop_distance() -> None:
    """2% of 10000 over a 3% stop at mid 100.1 is 66.6 BTC, capped at 1000 quote -> 9.99."""
    engine, _, _, _, _ = scripted_engine(
        max_position_size=10000.0,
        max_symbol_exposure=10000.0,
        max_total_exposure=20000.0,
        max_leverage=3.0,
        risk_percentage=0.2,
    )
    await engine.start()
    rec = await engine.handle_signal(signal())
    assert rec is not None
    # 0.2% of 10000 = 20 quote risked; stop distance 3% of 100.1 = 3.003 -> 6.6600 BTC
    assert rec.intent.amount == d("6.6600")
    assert rec.intent.stop_loss == d("97.09")
    assert rec.intent.take_profit == d("106.11")
    await engine.stop()


@pytest.mark.asyncio
async def test_emulated_stop_loss_closes_the_position() -> None:
    """Bid falling to the stop sends one reduce-only market exit; the position closes."""
    engine, _broker, _, col, clock = scripted_engine()
    await engine.start()
    rec = await engine.handle_signal(signal())
    assert rec is not None
    book(engine.hub, clock, bid=97.5, ask=97.7, size=10.0)
    assert engine.portfolio.amount(EX, SYM) > 0  # above the stop: nothing
    book(engine.hub, clock, bid=97.0, ask=97.2, size=10.0)
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=5)
    exits = [i for i in col.of(OrderIntent) if i.origin == "stop_loss"]
    assert len(exits) == 1
    assert exits[0].reduce_only
    assert exits[0].side == "sell"
    assert (EX, SYM) not in engine.protection.protections
    stats = engine.stats()
    assert stats["trades"] == 1
    assert stats["losses"] == 1
    await engine.stop()


@pytest.mark.asyncio
async def test_trailing_stop_follows_the_best_bid() -> None:
    """With a 2% trail the stop rises with the bid and fires on the pullback."""
    engine, _, _, col, clock = scripted_engine(
        trailing_stop_percentage=2.0, take_profit_percentage=50.0
    )
    await engine.start()
    await engine.handle_signal(signal())
    for bid in (102.0, 104.0, 105.0):
        book(engine.hub, clock, bid=bid, ask=bid + 0.2, size=10.0)
    prot = engine.protection.protections[(EX, SYM)]
    assert prot.stop == d("105.0") * d("0.98")
    book(engine.hub, clock, bid=103.0, ask=103.2, size=10.0)  # above the trailed stop 102.9
    assert not engine.protection.protections[(EX, SYM)].exiting
    book(engine.hub, clock, bid=102.5, ask=102.7, size=10.0)
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=5)
    exit_fill = [f for f in col.of(Fill) if f.side == "sell"]
    assert exit_fill[0].price == d("102.5")
    await engine.stop()


@pytest.mark.asyncio
async def test_native_stop_and_take_profit_legs_one_cancels_the_other() -> None:
    """With native support the entry gets reduce-only stop_market and take_profit orders at
    the venue; when the stop fills, the take-profit leg is canceled."""
    engine, broker, _, col, _ = scripted_engine(native=True)
    await engine.start()
    rec = await engine.handle_signal(signal())
    assert rec is not None
    await wait_until(lambda: len(broker.native_orders) == 2, timeout=5)
    legs = {i.type: i for i in col.of(OrderIntent) if i.origin in ("stop_loss", "take_profit")}
    assert legs["stop_market"].stop_price == d("97.09")
    assert legs["stop_market"].reduce_only
    assert legs["take_profit"].stop_price == d("106.11")
    prot = engine.protection.protections[(EX, SYM)]
    assert prot.native
    sl = legs["stop_market"].client_order_id
    tp = legs["take_profit"].client_order_id
    order = broker.fill_native(sl, d("97.09"))
    sl_rec = engine.book.get(sl)
    assert sl_rec is not None
    await engine.executor.apply_broker_order(sl_rec, order)
    assert engine.portfolio.amount(EX, SYM) == 0
    await wait_until(lambda: tp in broker.canceled, timeout=5)
    await wait_until(lambda: S.CANCELED in states(col, tp), timeout=5)
    await engine.stop()


@pytest.mark.asyncio
async def test_another_fill_of_the_entry_keeps_its_resting_legs() -> None:
    """A fill of the entry counted while its own legs rest (a restart's reconciliation books
    an entry filled in several trades one by one, its legs already in the book) re-arms the
    protection on the same legs: they are not canceled as an earlier entry's would be (the
    position would fall back to the book watch with no leg at the venue)."""
    engine, broker, _, col, _ = scripted_engine(native=True)
    await engine.start()
    rec = await engine.handle_signal(signal())
    assert rec is not None
    await wait_until(lambda: len(broker.native_orders) == 2, timeout=5)
    prot = engine.protection.protections[(EX, SYM)]
    fill = next(f for f in col.of(Fill) if f.client_order_id == rec.client_order_id)
    engine.protection.on_fill(rec, fill, engine.portfolio.positions[(EX, SYM)])
    again = engine.protection.protections[(EX, SYM)]
    assert again.native
    assert (again.stop_order, again.take_order) == (prot.stop_order, prot.take_order)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("cancel-leg:")]
    assert broker.canceled == []
    await engine.stop()


@pytest.mark.asyncio
async def test_exit_rejected_by_risk_is_retried_after_a_backoff() -> None:
    """A stop exit refused because the feed went stale is not retried on every book (it
    backs off) and fires again once the feed is live and the backoff has passed."""
    from tests.unit.trading.helpers import status

    engine, _, _, col, clock = scripted_engine()
    await engine.start()
    await engine.handle_signal(signal())
    status(engine.hub, clock, "stale")
    book(engine.hub, clock, bid=96.0, ask=96.2, size=10.0)
    await wait_until(lambda: any(r.check == "stale_feed" for r in col.of(RiskEvent)), timeout=5)
    assert engine.portfolio.amount(EX, SYM) > 0
    await wait_until(lambda: not engine.protection.protections[(EX, SYM)].exiting, timeout=5)
    for _ in range(20):  # books inside the backoff: no new attempt
        book(engine.hub, clock, bid=96.0, ask=96.2, size=10.0)
        await asyncio.sleep(0)
    assert sum(r.check == "stale_feed" for r in col.of(RiskEvent)) == 1
    status(engine.hub, clock, "live")
    clock.advance(1.0)
    book(engine.hub, clock, bid=96.0, ask=96.2, size=10.0)
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=5)
    await engine.stop()


@pytest.mark.asyncio
async def test_exit_backoff_after_hours_of_refusals_stays_at_its_cap() -> None:
    """The backoff of an exit refused 1100 times (9 hours of refusals at the 30 s cap) is the
    cap: before, 0.5 * 2**1100 overflowed a float, the exit's task died on the OverflowError
    and the stop stayed ``exiting`` for good (never fired again)."""
    from cryptomon.trading.guard import EXIT_BACKOFF_MAX_S
    from tests.unit.trading.helpers import status

    engine, _, _, col, clock = scripted_engine()
    await engine.start()
    await engine.handle_signal(signal())
    prot = engine.protection.protections[(EX, SYM)]
    prot.refused = 1100  # as after 9 hours of refusals
    status(engine.hub, clock, "stale")
    book(engine.hub, clock, bid=96.0, ask=96.2, size=10.0)
    await wait_until(lambda: any(r.check == "stale_feed" for r in col.of(RiskEvent)), timeout=5)
    await wait_until(lambda: not prot.exiting, timeout=5, message="the stop re-armed")
    assert prot.retry_at - clock.monotonic() == EXIT_BACKOFF_MAX_S
    status(engine.hub, clock, "live")
    clock.advance(EXIT_BACKOFF_MAX_S)
    book(engine.hub, clock, bid=96.0, ask=96.2, size=10.0)
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=5)
    await engine.stop()


@pytest.mark.asyncio
async def test_order_rejected_for_an_unwritten_intent_keeps_its_origin() -> None:
    """An intent the journal could not write is published with its true origin before its
    rejection, so the stored rejected order says ``signal``, not ``reconcile``."""
    engine, _, journal, col, _ = scripted_engine()
    await engine.start()
    journal.fail_next = OSError("database away")
    with pytest.raises(TemporaryError):
        await engine.handle_signal(signal())
    rejected = [u for u in col.of(OrderUpdate) if u.state == S.REJECTED]
    assert len(rejected) == 1
    intents = [i for i in col.of(OrderIntent) if i.client_order_id == rejected[0].client_order_id]
    assert [i.origin for i in intents] == ["signal"]
    events = col.events
    assert events.index(intents[0]) < events.index(rejected[0])
    await engine.stop()


@pytest.mark.asyncio
async def test_manual_order_rejection_raises_and_publishes() -> None:
    """A manual order failing a check raises RiskRejected and publishes a RiskEvent."""
    engine, _, _, col, _ = scripted_engine()
    await engine.start()
    with pytest.raises(RiskRejected) as err:
        await engine.place_manual_order(
            actor="alice", exchange=EX, symbol="BTC/USDT", side="buy", amount="50"
        )
    assert err.value.check == "max_position_size"
    ev = [r for r in col.of(RiskEvent) if r.kind == "rejected"]
    assert ev
    assert ev[-1].check == "max_position_size"
    assert ev[-1].client_order_id is not None
    await engine.stop()


@pytest.mark.asyncio
async def test_unknown_order_counts_as_pending_exposure() -> None:
    """While an entry is unknown, a second entry on the same market is sized against it."""
    engine, broker, _, _, _ = scripted_engine()
    await engine.start()
    broker.mode = "lost"
    rec = await engine.place_manual_order(
        actor="a", exchange=EX, symbol=SYM, side="buy", amount="9", request_id="r1"
    )
    assert rec["state"] == "unknown"
    with pytest.raises(RiskRejected, match="position would be"):
        await engine.place_manual_order(
            actor="a", exchange=EX, symbol=SYM, side="buy", amount="2", request_id="r2"
        )
    await engine.stop()


def test_paper_engine_helper_builds_a_paper_broker() -> None:
    """The helper wires the real paper broker (sanity check for the other tests)."""
    _, paper, _, _, _ = paper_engine()
    assert isinstance(paper, PaperBroker)
    assert Decimal(1) == d("1")


@pytest.mark.asyncio
async def test_unavailable_market_info_rejects_instead_of_trading_blind() -> None:
    """When the venue's market info cannot be read the order is refused (check market_info)."""
    engine, broker, _, col, _ = scripted_engine()
    await engine.start()

    async def broken(symbol: str) -> None:
        raise TemporaryError("exchangeInfo timed out")

    broker.market = broken  # type: ignore[assignment,method-assign]
    engine.context.market_infos.clear()
    with pytest.raises(RiskRejected) as err:
        await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="1")
    assert err.value.check == "market_info"
    assert "exchangeInfo timed out" in col.of(RiskEvent)[-1].reason
    assert sum(broker.calls.values()) == 0
    await engine.stop()


@pytest.mark.asyncio
async def test_signal_on_the_hub_becomes_an_order() -> None:
    """A Signal published on the hub reaches the engine's worker and is traded."""
    engine, _broker, _, col, _ = scripted_engine()
    await engine.start()
    engine.hub.publish(signal(sid="hub-signal"))
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) > 0, timeout=5)
    [intent] = col.of(OrderIntent)
    assert intent.signal_id == "hub-signal"
    assert intent.client_order_id == client_order_id("hub-signal", "entry", "signal")
    await engine.stop()


@pytest.mark.asyncio
async def test_polling_a_partly_filled_order_publishes_only_changes() -> None:
    """Re-reading a partially filled resting order without new fills publishes nothing."""
    engine, broker, _, col, clock = scripted_engine()
    book(engine.hub, clock, bid=100.0, ask=100.2, size=4.0, levels=2)  # 4 @100.2, 4 @101.2
    await engine.start()
    out = await engine.place_manual_order(
        actor="a", exchange=EX, symbol=SYM, side="buy", amount="9", type="limit", price="100.5"
    )
    rec = engine.book.get(out["client_order_id"])
    assert rec is not None
    assert rec.state == S.PARTIALLY_FILLED
    before = len(col.of(OrderUpdate))
    bo = await broker.fetch_order(SYM, rec.client_order_id)
    assert bo is not None
    await engine.executor.apply_broker_order(rec, bo)
    await engine.executor.apply_broker_order(rec, bo)
    assert len(col.of(OrderUpdate)) == before
    await engine.stop()


@pytest.mark.asyncio
async def test_signals_for_untraded_markets_are_ignored() -> None:
    """With trading.exchange / trading.symbols set, other markets' signals place nothing."""
    engine, broker, _, _, _ = scripted_engine(exchange="okx")
    await engine.start()
    assert await engine.handle_signal(signal()) is None
    engine.update_limits("t", auto_trading_enabled=True)
    assert sum(broker.calls.values()) == 0
    await engine.stop()


@pytest.mark.asyncio
async def test_canceled_native_leg_falls_back_to_emulation() -> None:
    """Kill switch without flatten cancels the venue SL/TP legs; the position stays
    protected by the engine watching the book."""
    engine, broker, _, col, clock = scripted_engine(native=True)
    await engine.start()
    await engine.handle_signal(signal())
    await wait_until(lambda: len(broker.native_orders) == 2, timeout=5)
    await engine.kill_switch("ops", flatten=False)
    prot = engine.protection.protections[(EX, SYM)]
    assert not prot.native
    book(engine.hub, clock, bid=97.0, ask=97.2, size=10.0)
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=5)
    assert [i.origin for i in col.of(OrderIntent) if i.type == "market"][-1] == "stop_loss"
    await engine.stop()


@pytest.mark.asyncio
async def test_rejected_native_leg_falls_back_to_emulation_and_cancels_the_other() -> None:
    """The venue refuses the take-profit leg: the resting stop leg is canceled and the
    position is protected by emulation (a book at the stop closes it)."""
    engine, broker, _, col, clock = scripted_engine(native=True)
    broker.reject_types = {"take_profit"}
    await engine.start()
    await engine.handle_signal(signal())
    prot = engine.protection.protections[(EX, SYM)]
    await wait_until(lambda: prot.stop_order in broker.canceled, timeout=5)
    assert not prot.native
    assert prot.stop_order is not None
    assert S.CANCELED in states(col, prot.stop_order)
    book(engine.hub, clock, bid=97.0, ask=97.2, size=10.0)
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=5)
    assert [i.origin for i in col.of(OrderIntent) if i.type == "market"][-1] == "stop_loss"
    await engine.stop()


@pytest.mark.asyncio
async def test_cancel_of_an_unknown_order_inside_its_recv_window_keeps_it_unknown() -> None:
    """Canceling an unknown order the venue does not (yet) know does not close it while the
    request can still land; after the window it ends rejected by lookup."""
    engine, broker, _, _, clock = scripted_engine(unknown_lookups=2)
    await engine.start()
    broker.mode = "lost"
    rec = await engine.handle_signal(signal())
    assert rec is not None
    assert rec.state == S.UNKNOWN
    await engine.executor.cancel(rec)
    assert rec.state == S.UNKNOWN
    await advance_until(clock, lambda: rec.state == S.REJECTED, message="rejected")
    assert clock.time() >= rec.sent + engine.config.live.recv_window_ms / 1000
    assert broker.calls[rec.client_order_id] == 1
    await engine.stop()


@pytest.mark.asyncio
async def test_an_exit_refused_then_another_fill_of_the_entry_still_exits() -> None:
    """A stop exit the venue refuses, then another fill of the same entry (a limit entry
    filling in parts) arms the position again: the next try is a new exit order, not the
    refused one's id again (the executor answers an id it knows with its record: the
    refused one, and the stop waited forever on an exit that never came)."""
    engine, broker, _, col, clock = scripted_engine()
    await engine.start()
    rec = await engine.handle_signal(signal())
    assert rec is not None
    broker.reject_types = {"market"}
    book(engine.hub, clock, bid=96.0, ask=96.2, size=10.0)
    await wait_until(lambda: any(u.state == S.REJECTED for u in col.of(OrderUpdate)), timeout=5)
    await wait_until(lambda: not engine.protection.protections[(EX, SYM)].exiting, timeout=5)
    fill = next(f for f in col.of(Fill) if f.client_order_id == rec.client_order_id)
    engine.protection.on_fill(rec, fill, engine.portfolio.positions[(EX, SYM)])  # the entry again
    broker.reject_types = set()
    clock.advance(5.0)  # past the backoff
    book(engine.hub, clock, bid=96.0, ask=96.2, size=10.0)
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=5)
    await engine.stop()


@pytest.mark.asyncio
async def test_an_entry_filling_again_after_its_stop_closed_the_position_is_protected() -> None:
    """A limit entry fills in part, its stop closes that part, then the rest of the entry
    fills: the new position's stop exit is a new order. Before, the new protection counted
    its exits from zero again: its exit id was the one that had closed the first part, and the
    executor answered it with that filled order (nothing sent, the exit never ended)."""
    engine, _, _, col, clock = scripted_engine()
    await engine.start()
    order = await engine.place_manual_order(
        actor="t",
        exchange=EX,
        symbol=SYM,
        side="buy",
        amount="1",
        type="limit",
        price="99",
        stop_loss="98",
    )
    entry = order["client_order_id"]
    trade(engine.hub, clock, price=99.0, amount=0.5)  # the entry fills in part
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == d("0.5"), timeout=5)
    book(engine.hub, clock, bid=97.5, ask=97.7, size=10.0)  # the stop closes it
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=5)
    trade(engine.hub, clock, price=99.0, amount=0.5)  # the rest of the entry fills
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == d("0.5"), timeout=5)
    assert engine.context.book.get(entry).state == S.FILLED  # type: ignore[union-attr]
    clock.advance(1.0)
    book(engine.hub, clock, bid=97.5, ask=97.7, size=10.0)  # the stop again
    await wait_until(
        lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=5, message="the stop closed it"
    )
    exits = {u.client_order_id for u in col.of(OrderUpdate) if u.state == S.FILLED} - {entry}
    assert len(exits) == 2
    await engine.stop()


@pytest.mark.asyncio
async def test_a_restored_protection_counts_its_exits_on_past_a_gap_in_the_journal() -> None:
    """The exit attempts of a restored entry are read back from the journal in batches: an
    attempt whose intent was never written (its write failed and the process stopped before
    the store's writer wrote it) leaves a gap, and a later one written after such a gap (here
    attempts 1 to 39) still counts."""
    from cryptomon.trading.guard import ATTEMPTS_PROBED, exit_id

    engine, _, journal, _, _ = scripted_engine()
    await engine.start()
    rec = await engine.handle_signal(signal())
    assert rec is not None
    entry = rec.client_order_id
    for origin, n in (("stop_loss", 0), ("take_profit", 40)):
        coid = exit_id(entry, origin, n)
        journal.intents[coid] = dataclasses.replace(rec.intent, client_order_id=coid)
    assert ATTEMPTS_PROBED < 39  # the gap is longer than a batch
    pos = engine.portfolio.positions[(EX, SYM)]
    engine.protection.protections.clear()
    await engine.protection.arm_restored([pos], {(EX, SYM): [entry]})
    assert engine.protection.protections[(EX, SYM)].attempt == 41
    await engine.stop()


@pytest.mark.asyncio
async def test_a_restored_position_takes_default_levels_on_the_markets_tick() -> None:
    """At a restart the market's tick is not known yet; the levels a restored position takes
    from the configured percentages are still rounded to it (a venue refuses a leg off the
    tick; before, the take-profit came back as 101.0016 on a 0.01 tick)."""
    engine, _, _, _, _ = scripted_engine()
    await engine.start()
    rec = await engine.handle_signal(signal())
    assert rec is not None
    pos = engine.portfolio.positions[(EX, SYM)]
    pos.cost = pos.amount * d("100.0016")  # off the tick, as fills at several prices give
    engine.protection.protections.clear()
    engine.context.market_infos.clear()  # as at a restart: nothing looked up yet
    await engine.protection.arm_restored([pos], {})
    prot = engine.protection.protections[(EX, SYM)]
    tick = d("0.01")
    assert prot.stop % tick == 0, prot.stop
    assert prot.take is not None
    assert prot.take % tick == 0, prot.take
    await engine.stop()
