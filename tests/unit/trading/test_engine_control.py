"""Operator controls: kill switch, resume, manual orders and limit changes (all audited),
the daily loss limit and the stale-feed pause."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from cryptomon.errors import ConfigError, RiskRejected
from cryptomon.events import AuditEntry, OrderState, RiskEvent
from cryptomon.trading.risk import RiskState
from tests.unit.trading.helpers import (
    EX,
    SYM,
    Collector,
    book,
    d,
    paper_engine,
    status,
    trade,
    trading_config,
)
from tests.util import wait_until


async def _started(**cfg: object):  # type: ignore[no-untyped-def]
    engine, broker, hub, _market, clock = paper_engine(config=trading_config(**cfg))
    col = Collector(hub, AuditEntry, RiskEvent)
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    await engine.start()
    return engine, broker, hub, clock, col


@pytest.mark.asyncio
async def test_kill_switch_cancels_flattens_halts_and_audits() -> None:
    """Kill switch: open orders canceled, positions closed, state halted, audit + RiskEvent;
    entries are refused until resume."""
    engine, broker, _, _, col = await _started()
    await engine.place_manual_order(actor="alice", exchange=EX, symbol=SYM, side="buy", amount="5")
    resting = await engine.place_manual_order(
        actor="alice", exchange=EX, symbol=SYM, side="buy", amount="1", type="limit", price="99"
    )
    assert resting["state"] == "submitted"
    out = await engine.kill_switch("bob", flatten=True)
    assert out["state"] == "halted"
    assert out["canceled"] == [resting["client_order_id"]]
    assert out["flatten"][0]["state"] == "filled"
    assert engine.portfolio.amount(EX, SYM) == 0
    assert engine.book.get(resting["client_order_id"]).state == OrderState.CANCELED  # type: ignore[union-attr]
    assert (await broker.fetch_open_orders()) == []
    assert any(e.kind == "kill_switch" and e.state == "halted" for e in col.of(RiskEvent))
    audit = [(a.actor, a.action) for a in col.of(AuditEntry)]
    assert ("bob", "kill_switch") in audit
    assert audit.count(("alice", "place_order")) == 2
    with pytest.raises(RiskRejected) as err:
        await engine.place_manual_order(
            actor="alice", exchange=EX, symbol=SYM, side="buy", amount="1"
        )
    assert err.value.check == "halted"
    assert await engine.resume("bob") == "active"
    assert ("bob", "resume") in [(a.actor, a.action) for a in col.of(AuditEntry)]
    await engine.stop()


@pytest.mark.asyncio
async def test_kill_switch_flatten_goes_on_past_a_position_it_cannot_close() -> None:
    """A flatten exit that fails (its intent cannot be written) is reported for its symbol
    and the next position is still closed; before, the error escaped the kill switch and
    every later position stayed open."""
    engine, _, hub, clock, _ = await _started(max_total_exposure=3000.0)
    book(hub, clock, bid=50.0, ask=50.1, size=10.0, symbol="ETH-USDT")
    for symbol in (SYM, "ETH-USDT"):
        await engine.place_manual_order(
            actor="a", exchange=EX, symbol=symbol, side="buy", amount="2"
        )
    engine.journal.fail_next = OSError("database away")  # type: ignore[attr-defined]
    out = await engine.kill_switch("ops", flatten=True)
    assert out["state"] == "halted"
    first, second = out["flatten"]
    assert first["symbol"] == SYM
    assert "database away" in first["rejected"]
    assert second["state"] == "filled"
    assert engine.portfolio.amount(EX, SYM) == d(2)
    assert engine.portfolio.amount(EX, "ETH-USDT") == 0
    await engine.stop()


@pytest.mark.asyncio
async def test_kill_switch_without_flatten_keeps_positions() -> None:
    """flatten=False cancels and halts but leaves the position; the default comes from config."""
    engine, _, _, _, _ = await _started(kill_switch_flatten=False)
    await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="2")
    out = await engine.kill_switch("ops")
    assert out["flatten"] == []
    assert engine.portfolio.amount(EX, SYM) == d(2)
    assert engine.risk_state == RiskState.HALTED
    await engine.stop()


@pytest.mark.asyncio
async def test_manual_order_validation_and_idempotency() -> None:
    """Bad sides, amounts and prices raise ValueError naming the field; the same request id
    returns the same order."""
    engine, _broker, _, _, col = await _started()
    for kwargs, field in (
        ({"side": "hold"}, "side"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"type": "limit"}, "price"),
        ({"type": "iceberg"}, "type"),
    ):
        args = {"actor": "a", "exchange": EX, "symbol": SYM, "side": "buy", "amount": "1", **kwargs}
        with pytest.raises(ValueError, match=field):
            await engine.place_manual_order(**args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symbol"):
        await engine.place_manual_order(
            actor="a", exchange=EX, symbol="bad symbol!", side="buy", amount="1"
        )
    first = await engine.place_manual_order(
        actor="a", exchange=EX, symbol=SYM, side="buy", amount="1", request_id="req-7"
    )
    again = await engine.place_manual_order(
        actor="a", exchange=EX, symbol=SYM, side="buy", amount="1", request_id="req-7"
    )
    assert first["client_order_id"] == again["client_order_id"]
    assert engine.portfolio.amount(EX, SYM) == d(1)
    payload = json.loads(col.of(AuditEntry)[-1].payload)
    assert payload["request_id"] == "req-7"
    assert payload["amount"] == "1"
    await engine.stop()


@pytest.mark.asyncio
async def test_manual_entry_gets_stop_loss_and_take_profit() -> None:
    """A manual entry without SL/TP is protected with the configured percentages."""
    engine, _, _, _, _ = await _started()
    await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="1")
    prot = engine.protection.protections[(EX, SYM)]
    assert prot.stop == d("97.19")
    assert prot.take == d("106.22")
    await engine.stop()


@pytest.mark.asyncio
async def test_manual_entry_with_a_stop_or_take_profit_on_the_wrong_side_is_refused() -> None:
    """A stop-loss or take-profit on the wrong side of the entry (swapped, or a typo) is a
    ValueError naming the field and the price it was held against, and nothing is sent;
    before, the entry filled and its own protection sold it again on the next book (a round
    trip of spread and fees)."""
    engine, broker, hub, clock, _ = await _started()
    base = {"actor": "a", "exchange": EX, "symbol": SYM, "amount": "1"}
    for kwargs, field in (
        ({"side": "buy", "stop_loss": "101"}, "stop_loss"),  # mid 100.1
        ({"side": "buy", "take_profit": "99"}, "take_profit"),
        ({"side": "buy", "stop_loss": "106", "take_profit": "97"}, "stop_loss"),
        ({"side": "buy", "type": "limit", "price": "99", "stop_loss": "99.5"}, "stop_loss"),
        ({"side": "sell", "stop_loss": "99"}, "stop_loss"),
        ({"side": "sell", "take_profit": "100.1"}, "take_profit"),
    ):
        with pytest.raises(ValueError, match=rf"^{field}: .*(below|above) .* price"):
            await engine.place_manual_order(**base, **kwargs)  # type: ignore[arg-type]
    assert engine.book.all() == []
    assert engine.portfolio.amount(EX, SYM) == 0
    # the right side passes; an exit's levels are not an entry's bracket (never armed)
    await engine.place_manual_order(**base, side="buy", stop_loss="99", take_profit="103")
    prot = engine.protection.protections[(EX, SYM)]
    assert (prot.stop, prot.take) == (d(99), d(103))
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    assert engine.portfolio.amount(EX, SYM) == d(1)  # not stopped out by its own levels
    await engine.place_manual_order(**base, side="sell", reduce_only=True, stop_loss="150")
    assert engine.portfolio.amount(EX, SYM) == 0
    assert broker is engine.broker
    await engine.stop()


@pytest.mark.asyncio
async def test_update_limits_validates_applies_and_audits() -> None:
    """Valid changes apply at once and are audited; bad values and unknown keys raise
    ConfigError naming the key."""
    engine, _, _, _, col = await _started()
    out = engine.update_limits("admin", max_open_positions=1, daily_loss_limit=50.0)
    assert out["max_open_positions"] == 1
    assert engine.limits()["daily_loss_limit"] == 50.0
    assert engine.runtime.limits.max_open_positions == 1
    entry = col.of(AuditEntry)[-1]
    assert entry.action == "update_limits"
    assert "max_open_positions" in entry.payload
    with pytest.raises(ConfigError, match=r"trading\.max_open_positions"):
        engine.update_limits("admin", max_open_positions=0)
    with pytest.raises(ConfigError, match=r"trading\.max_symbol_exposure"):
        engine.update_limits("admin", max_symbol_exposure=99999.0)
    with pytest.raises(ConfigError, match=r"trading\.leverage"):
        engine.update_limits("admin", leverage=3)
    assert engine.limits()["max_open_positions"] == 1
    await engine.stop()


@pytest.mark.asyncio
async def test_daily_loss_limit_moves_to_reducing_and_back_next_day() -> None:
    """Losing more than daily_loss_limit: reducing (RiskEvent kind limit, its reason in plain
    digits: the limit 20.0 from YAML reads -20); entries refused; the next UTC day restores
    active."""
    engine, _, hub, clock, col = await _started(daily_loss_limit=20.0)
    await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="9")
    book(hub, clock, bid=97.4, ask=97.6, size=10.0)  # above the 97.19 stop, -25 unrealized
    engine.protection.check_daily_loss()
    assert engine.risk_state == RiskState.REDUCING
    assert col.of(RiskEvent)[-1].kind == "limit"
    reason = "daily loss -25.2018 reached the limit -20"
    assert (engine.state_reason, col.of(RiskEvent)[-1].reason) == (reason, reason)
    with pytest.raises(RiskRejected):
        await engine.place_manual_order(
            actor="a", exchange=EX, symbol="ETH-USDT", side="buy", amount="1"
        )
    clock.advance(86_400)
    engine.protection.check_daily_loss()
    assert engine.risk_state == RiskState.ACTIVE
    await engine.stop()


@pytest.mark.asyncio
async def test_a_new_day_does_not_clear_a_reconciliation_mismatch() -> None:
    """Reducing for the daily loss, then a reconciliation mismatch (the venue holds less than
    the position): the next UTC day lifts the loss limit only, so the engine stays reducing
    until an operator resumes; before, the day change went back to active and entries
    resumed with the books and the venue disagreeing."""
    engine, broker, hub, clock, _ = await _started(daily_loss_limit=20.0)
    await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="9")
    book(hub, clock, bid=97.4, ask=97.6, size=10.0)  # -25 unrealized
    engine.protection.check_daily_loss()
    assert engine.risk_state == RiskState.REDUCING
    broker.balances["BTC"] = d(1)  # the venue holds 1 of the 9 BTC
    for _ in range(2):  # a periodic run reports a mismatch seen twice
        mismatches = await engine.reconciler.run(periodic=True)
    assert mismatches
    assert "venue holds 1" in engine.state_reason
    clock.advance(86_400)
    engine.protection.check_daily_loss()
    assert engine.risk_state == RiskState.REDUCING
    assert "venue holds 1" in engine.state_reason
    with pytest.raises(RiskRejected):
        await engine.place_manual_order(
            actor="a", exchange=EX, symbol="ETH-USDT", side="buy", amount="1"
        )
    await engine.stop()


@pytest.mark.asyncio
async def test_stale_feed_pauses_signal_orders() -> None:
    """While the feed is stale a manual entry is refused with stale_feed; live again, it
    passes."""
    engine, _, hub, clock, col = await _started()
    status(hub, clock, "stale")
    with pytest.raises(RiskRejected) as err:
        await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="1")
    assert err.value.check == "stale_feed"
    assert col.of(RiskEvent)[-1].check == "stale_feed"
    status(hub, clock, "live")
    await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="1")
    await engine.stop()


@pytest.mark.asyncio
async def test_limit_order_fills_through_the_listener_and_cancel_is_audited() -> None:
    """A resting limit fills when a trade crosses it (engine sees it without polling);
    canceling an unknown id raises LookupError."""
    engine, _, hub, clock, col = await _started()
    o = await engine.place_manual_order(
        actor="a", exchange=EX, symbol=SYM, side="buy", amount="2", type="limit", price="99.5"
    )
    trade(hub, clock, price=99.5, amount=5.0, side="sell")
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) == d(2), timeout=5)
    assert engine.orders(open_only=True) == []
    assert engine.orders()[0]["state"] == "filled"
    with pytest.raises(LookupError):
        await engine.cancel_order("nope", "a")
    o2 = await engine.place_manual_order(
        actor="a", exchange=EX, symbol=SYM, side="buy", amount="1", type="limit", price="99"
    )
    canceled = await engine.cancel_order(o2["client_order_id"], "carol")
    assert canceled["state"] == "canceled"
    assert ("carol", "cancel_order") in [(a.actor, a.action) for a in col.of(AuditEntry)]
    assert o["client_order_id"] != o2["client_order_id"]
    await engine.stop()


@pytest.mark.asyncio
async def test_positions_and_stats_views() -> None:
    """positions() and stats() are JSON-ready (Decimals as strings) with risk state."""
    engine, _, _, _, _ = await _started()
    await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="1")
    [pos] = engine.positions()
    assert pos["amount"] == "1"
    assert pos["avg_price"] == "100.2"
    assert pos["symbol"] == SYM
    stats = engine.stats()
    assert stats["risk_state"] == "active"
    assert stats["reconciled"] is True
    assert json.dumps(stats)
    assert json.dumps(engine.positions())
    assert json.dumps(engine.orders())
    await engine.stop()


@pytest.mark.asyncio
async def test_kill_switch_survives_a_restart_until_resumed() -> None:
    """A halted engine restarted from the same journal comes back halted, not active."""
    from cryptomon.trading.journal import MemoryJournal

    journal = MemoryJournal()
    engine0, _, hub0, _, clock0 = paper_engine(journal=journal)
    journal.follow(hub0)
    book(hub0, clock0, bid=100.0, ask=100.2, size=10.0)
    await engine0.start()
    await engine0.kill_switch("ops", flatten=False)
    await engine0.stop()
    journal.close()
    engine, _, hub, _, clock = paper_engine(journal=journal)
    journal.follow(hub)
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    await engine.start()
    assert engine.reconciled
    assert engine.risk_state == RiskState.HALTED
    with pytest.raises(RiskRejected):
        await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="1")
    await engine.resume("ops")
    assert engine.risk_state == RiskState.ACTIVE
    await engine.stop()


@pytest.mark.asyncio
async def test_a_restart_keeps_the_days_loss_for_the_daily_loss_limit() -> None:
    """A long bought yesterday and closed at a loss today, then a restart: the day's loss
    still counts towards ``daily_loss_limit`` (the day's start is its first stored equity
    snapshot), so a further small loss moves to reducing. Before, the replayed fills started
    the day at the equity after today's first fill, the losing close: the loss was forgotten
    and another whole limit's worth could be lost the same day."""
    from cryptomon.clock import ManualClock
    from cryptomon.trading.journal import MemoryJournal

    midnight = 1_700_006_400.0  # 2023-11-15 00:00 UTC
    clock = ManualClock(start=midnight - 120)
    cfg = trading_config(daily_loss_limit=20.0)
    journal = MemoryJournal()
    engine0, _, hub0, _, _ = paper_engine(config=cfg, journal=journal, clock=clock)
    journal.follow(hub0)
    book(hub0, clock, bid=100.0, ask=100.2, size=10.0)
    await engine0.start()
    await engine0.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="9")
    clock.advance(180)  # the new UTC day; the poller's snapshot is the day's first
    book(hub0, clock, bid=100.0, ask=100.2, size=10.0)
    await engine0.poller.record_equity(clock.time())
    engine0.portfolio.snapshot(clock.time())
    book(hub0, clock, bid=98.6, ask=98.8, size=10.0)
    await engine0.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="sell", amount="9")
    lost = engine0.portfolio.daily_pnl(clock.time())
    assert d(-20) < lost < d(-10)
    assert engine0.risk_state == RiskState.ACTIVE
    await engine0.stop()
    journal.close()

    clock.advance(60)
    engine, _, hub, _, _ = paper_engine(config=cfg, journal=journal, clock=clock)
    journal.follow(hub)
    book(hub, clock, bid=98.6, ask=98.8, size=10.0)
    await engine.start()
    assert engine.reconciled
    assert engine.portfolio.daily_pnl(clock.time()) == lost
    await engine.place_manual_order(actor="a", exchange=EX, symbol=SYM, side="buy", amount="9")
    book(hub, clock, bid=98.0, ask=98.2, size=10.0)  # about -7 more: past the limit in all
    engine.protection.check_daily_loss()
    assert engine.risk_state == RiskState.REDUCING
    assert "daily loss" in engine.state_reason
    await engine.stop()


@pytest.mark.asyncio
async def test_normal_start_logs_the_risk_state_at_info_not_warning() -> None:
    """A clean start (reducing until reconciled, then active) logs no warning; halting does."""
    engine, _, _, _, _ = paper_engine()
    with capture_logs() as logs:
        await engine.start()
    changes = [e for e in logs if e["event"] == "trading.risk_state"]
    assert [(e["new"], e["log_level"]) for e in changes] == [("active", "info")]
    with capture_logs() as logs:
        await engine.kill_switch("test", flatten=False)
    levels = {e["log_level"] for e in logs if e["event"] == "trading.risk_state"}
    assert levels == {"warning"}
    await engine.stop()
