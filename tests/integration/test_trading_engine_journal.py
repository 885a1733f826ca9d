"""StoreJournal on the real database (SQLite and PostgreSQL): intents written before sending,
open orders and fills read back for the restart, orders missing their fills re-checked."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.events import Fill, OrderIntent, OrderState, OrderUpdate
from cryptomon.store.db import Database
from cryptomon.store.journal import StoreJournal
from cryptomon.store.queries import Queries
from cryptomon.store.repos import insert_fills, upsert_orders
from tests import stubs

D = Decimal


def _intent(coid: str, amount: str = "0.5") -> OrderIntent:
    return OrderIntent(
        exchange="binance",
        symbol="BTC-USDT",
        ts=1_700_000_000.0,
        ts_recv=1_700_000_000.0,
        client_order_id=coid,
        side="buy",
        type="limit",
        amount=D(amount),
        price=D("60000.01"),
        stop_loss=D("58200"),
        take_profit=D("63600"),
        origin="signal",
        signal_id="sig",
        anomaly_id="an",
    )


def _update(coid: str, state: OrderState, filled: str) -> OrderUpdate:
    return OrderUpdate(
        exchange="binance",
        symbol="BTC-USDT",
        ts=1_700_000_001.0,
        ts_recv=1_700_000_001.0,
        client_order_id=coid,
        state=state,
        side="buy",
        type="limit",
        amount=D("0.5"),
        filled=D(filled),
    )


def _fill(coid: str, trade_id: str, amount: str) -> Fill:
    return stubs.fill(
        trade_id,
        coid,
        amount=D(amount),
        price=D("60000.01"),
        fee=D("0.000123456789"),
        fee_currency="USDT",
        liquidity="maker",
        exchange_order_id="x1",
    )


@pytest.mark.asyncio
async def test_intent_round_trip_as_an_open_order(db: Database) -> None:
    """record_intent commits the intent; open_orders returns it unchanged in state new."""
    journal = StoreJournal(db=db)
    intent = _intent("cms-a")
    await journal.record_intent(intent)
    await journal.record_intent(intent)  # idempotent
    [stored] = await journal.open_orders()
    assert stored.state == OrderState.NEW
    assert stored.intent == intent


@pytest.mark.asyncio
async def test_terminal_orders_are_skipped_unless_their_fills_are_missing(db: Database) -> None:
    """A filled order with all fills stored is done; one whose fills were lost comes back
    flagged for reconciliation; fills read back exactly."""
    journal = StoreJournal(db=db)
    for coid in ("complete", "missing", "open"):
        await journal.record_intent(_intent(coid))
    async with db.sessionmaker() as session, session.begin():
        await upsert_orders(
            session,
            [
                _update("complete", OrderState.FILLED, "0.5"),
                _update("missing", OrderState.FILLED, "0.5"),
                _update("open", OrderState.PARTIALLY_FILLED, "0.2"),
            ],
        )
        await insert_fills(
            session,
            [
                _fill("complete", "t1", "0.3"),
                _fill("complete", "t2", "0.2"),
                _fill("missing", "t3", "0.1"),
                _fill("open", "t4", "0.2"),
            ],
        )
    got = {
        s.intent.client_order_id: (s.state, s.missing_fills) for s in await journal.open_orders()
    }
    assert got == {
        "missing": (OrderState.FILLED, True),
        "open": (OrderState.PARTIALLY_FILLED, False),
    }
    fills = await journal.fills()
    assert [f.trade_id for f in fills] == ["t1", "t2", "t3", "t4"]
    assert fills[0] == _fill("complete", "t1", "0.3")


@pytest.mark.asyncio
async def test_stored_intents_are_read_back_whatever_their_state(db: Database) -> None:
    """stored_intents returns the asked intents as written, a filled one too (a restored
    position's entry: its own stop-loss and take-profit), and leaves out an id never
    written."""
    journal = StoreJournal(db=db)
    for coid in ("entry", "other"):
        await journal.record_intent(_intent(coid))
    async with db.sessionmaker() as session, session.begin():
        await upsert_orders(session, [_update("entry", OrderState.FILLED, "0.5")])
    got = await journal.stored_intents(["entry", "never"])
    assert got == {"entry": _intent("entry")}
    assert (got["entry"].stop_loss, got["entry"].take_profit) == (D("58200"), D("63600"))
    assert await journal.stored_intents([]) == {}


@pytest.mark.asyncio
async def test_equity_snapshot_is_written(db: Database) -> None:
    """record_equity stores a row the API can read back."""
    journal = StoreJournal(db=db)
    await journal.record_equity(
        ts=1_700_000_000.0,
        equity=D("10057.88"),
        cash=D("10057.88"),
        unrealized_pnl=D(0),
        realized_pnl=D("59.94"),
        exposure=D(0),
    )
    [row] = await Queries(db=db).equity_snapshots()
    assert row["equity"] == D("10057.88")
    assert row["realized_pnl"] == D("59.94")


@pytest.mark.asyncio
async def test_last_risk_state_is_the_newest_risk_event(db: Database) -> None:
    """last_risk_state reads the state of the newest stored RiskEvent (None when none)."""
    from cryptomon.events import RiskEvent
    from cryptomon.store.repos import insert_risk_events

    journal = StoreJournal(db=db)
    assert await journal.last_risk_state() is None
    events = [
        RiskEvent(
            exchange="",
            symbol="",
            ts=1_700_000_000.0 + n,
            ts_recv=0.0,
            kind=kind,
            state=state,
            reason=kind,
        )  # type: ignore[arg-type]
        for n, (kind, state) in enumerate([("state_change", "active"), ("kill_switch", "halted")])
    ]
    async with db.sessionmaker() as session, session.begin():
        await insert_risk_events(session, events)
    assert await journal.last_risk_state() == "halted"


@pytest.mark.asyncio
async def test_funding_payments_round_trip_once_each(db: Database) -> None:
    """Funding payments come back in time order with their amounts, rates and conversion
    prices exact; recording the same payment again keeps one row."""
    from cryptomon.trading.brokers.base import FundingPayment
    from cryptomon.trading.journal import StoredFunding

    journal = StoreJournal(db=db)

    def pay(pid: str, ts: float, amount: str) -> StoredFunding:
        payment = FundingPayment(
            payment_id=pid,
            exchange="binance_futures",
            symbol="BTC-USDT-PERP",
            ts=ts,
            amount=D(amount),
            currency="USDT",
            rate=D("0.0001"),
        )
        return StoredFunding(payment, D("20000.123456789"))

    await journal.record_funding(pay("f2", 1_700_028_800.0, "0.3"))
    await journal.record_funding(pay("f1", 1_700_000_000.0, "-0.123456789012345678"))
    await journal.record_funding(pay("f1", 1_700_000_000.0, "-0.123456789012345678"))
    stored = await journal.funding_payments()
    assert [s.payment.payment_id for s in stored] == ["f1", "f2"]
    assert stored[0].payment.amount == D("-0.123456789012345678")
    assert stored[0].payment.rate == D("0.0001")
    assert stored[0].price == D("20000.123456789")
    assert stored[0].payment.ts == 1_700_000_000.0


@pytest.mark.asyncio
async def test_first_equity_since_reads_the_days_first_snapshot(db: Database) -> None:
    """first_equity_since: the equity of the oldest snapshot at or after the time (the day's
    start after a restart), None when there is none; exact Decimals."""
    journal = StoreJournal(db=db)
    day = 1_700_006_400.0
    assert await journal.first_equity_since(day) is None
    for ts, equity in ((day - 60, "10000.5"), (day + 30, "9990.123456789"), (day + 90, "9950")):
        await journal.record_equity(ts=ts, equity=D(equity), cash=D(equity))
    assert await journal.first_equity_since(day) == D("9990.123456789")
    assert await journal.first_equity_since(day - 3600) == D("10000.5")
    assert await journal.first_equity_since(day + 3600) is None


@pytest.mark.asyncio
async def test_halt_flatten_is_asked_by_a_switch_of_the_current_halt(db: Database) -> None:
    """halt_flatten: a kill switch event with the flatten check since the last event that was
    not halted (a flatten of an earlier halt, resumed since, does not count)."""
    from cryptomon.events import RiskEvent
    from cryptomon.store.repos import insert_risk_events

    journal = StoreJournal(db=db)
    assert await journal.halt_flatten() is False
    n = 0

    async def store(kind: str, state: str, check: str = "") -> None:
        nonlocal n
        n += 1
        event = RiskEvent(
            exchange="",
            symbol="",
            ts=1_700_000_000.0 + n,
            ts_recv=0.0,
            kind=kind,  # type: ignore[arg-type]
            state=state,
            reason=kind,
            check=check,
        )
        async with db.sessionmaker() as session, session.begin():
            await insert_risk_events(session, [event])

    await store("kill_switch", "halted", "flatten")
    assert await journal.halt_flatten() is True  # no earlier event at all
    await store("state_change", "active")  # resumed
    assert await journal.halt_flatten() is False
    await store("kill_switch", "halted")  # halted without flatten
    await store("rejected", "halted", "halted")
    assert await journal.halt_flatten() is False
    await store("kill_switch", "halted", "flatten")  # pressed again, with flatten
    await store("rejected", "halted", "halted")
    assert await journal.halt_flatten() is True
