"""A halted engine restarted while an entry's outcome was unknown: the ccxt broker on the
simulator, the journal on a real SQLite file. The kill switch halted trading while a market
entry's placement was held at the venue (``unknown`` after the timeout); the process stopped
before the lookup found it, and the venue then filled it. The restarted engine is halted from
its first step: the reconciliation's lookup finds the fill, reports it and closes it once the
reconciliation is done; the account ends flat and still halted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import DatabaseConfig, StorageConfig, TradingConfig
from cryptomon.events import OrderState
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.trading import Fault
from cryptomon.sim.venue import install
from cryptomon.store.db import Database
from cryptomon.store.journal import StoreJournal
from cryptomon.store.writer import StoreWriter
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.risk import RiskState
from tests.usdm import manual_buy, sim_top
from tests.util import wait_until

KEY, SECRET = "halted-key", "halted-secret"
SYMBOL = "BTC-USDT"


class Daemon:
    """The live engine journaled on ``url`` (its risk events stored by a writer)."""

    def __init__(
        self,
        url: str,
        sim: SimExchange,
        *,
        batch_max_age_s: float = 0.01,
        order_timeout_s: float = 2.0,
        recv_window_ms: int = 3000,
    ) -> None:
        self.hub = Hub()
        self.clock = LiveClock()
        self.db = Database(DatabaseConfig(url=url))
        self.writer = StoreWriter(
            hub=self.hub,
            db=self.db,
            config=StorageConfig(batch_max_age_s=batch_max_age_s),
            clock=self.clock,
        )
        cfg = TradingConfig.model_validate(
            {
                "mode": "live",
                "exchange": "simulator",
                "poll_interval_s": 0.05,
                "order_timeout_s": order_timeout_s,
                "unknown_lookups": 3,
                "live": {
                    "exchange": "binance",
                    "api_key": KEY,
                    "secret": SECRET,
                    "url": sim.rest_url,
                    "recv_window_ms": recv_window_ms,
                    # no ccxt request pacing (Binance's openOrders weight waits ~0.8 s per
                    # start) against the loopback simulator; the venue's 429 gate stays
                    "enable_rate_limit": False,
                },
            }
        )
        self.journal = StoreJournal(db=self.db)
        self.engine = TradingEngine(
            config=cfg,
            hub=self.hub,
            clock=self.clock,
            broker=CcxtBroker.from_config(cfg, clock=self.clock),
            market=MarketState(hub=self.hub),
            journal=self.journal,
        )
        self.sim = sim

    async def start(self) -> None:
        await self.hub.start()
        await self.db.start()
        await self.writer.start()
        sim_top(self.hub, self.sim, SYMBOL)
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()
        await self.writer.stop()
        await self.db.stop()
        await self.hub.stop(1.0)


@pytest.mark.asyncio
async def test_a_fill_found_at_the_restart_of_a_halted_engine_is_closed(tmp_path: Path) -> None:
    sim = SimExchange(MarketModel([SYMBOL], seed=5), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(7_500)})
    await sim.start(run=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    # the held placement times out (unknown) after 1 s, well inside its 3 s recv window: the
    # venue still accepts it when it is released after the stop
    first = Daemon(url, sim, order_timeout_s=1.0)
    await first.start()
    try:
        assert first.engine.risk_state == RiskState.ACTIVE
        fault = endpoints.faults.add(Fault(kind="hold", after_accept=False))
        task = asyncio.ensure_future(first.engine.executor.submit(manual_buy("late", SYMBOL)))
        await wait_until(fault.reached.is_set, message="placement held at the venue")
        out = await first.engine.kill_switch("t", flatten=True)
        entry = await task
        assert entry.state is OrderState.UNKNOWN
        assert out["flatten"] == []
        await wait_until(
            lambda: _halted(first.journal), timeout=10, message="halt and intent stored"
        )
    finally:
        await first.stop()  # before any lookup found the order
    fault.release()  # the venue takes and fills it while no engine runs
    await wait_until(lambda: endpoints.engine.position("BTC") > 0, message="filled at the venue")

    second = Daemon(url, sim)
    await second.start()
    try:
        engine = second.engine
        assert engine.risk_state == RiskState.HALTED
        record = engine.book.get(entry.client_order_id)
        assert record is not None
        await wait_until(lambda: record.state is OrderState.FILLED, message="fill found")
        key = ("simulator", SYMBOL)
        await wait_until(lambda: engine.portfolio.amount(*key) == 0, message="closed")
        await wait_until(lambda: endpoints.engine.position("BTC") == 0, message="flat at venue")
        assert engine.risk_state == RiskState.HALTED
        assert endpoints.order_posts == 2  # the entry once, its close
    finally:
        await second.stop()
        await sim.stop()


async def _halted(journal: StoreJournal) -> bool:
    return await journal.last_risk_state() == "halted"


@pytest.mark.asyncio
async def test_a_flatten_cut_short_by_a_restart_is_carried_out(tmp_path: Path) -> None:
    """The process dies in the middle of a kill switch's flatten: the position's exit intent
    is written, the exit never reached the venue. The restarted engine (halted) finds the
    exit absent at the venue and, as the position is still open, closes it: the flatten the
    operator asked for ends flat. Before, the exit was closed as rejected and the position
    stayed open with trading halted and nothing closing it."""
    sim = SimExchange(MarketModel([SYMBOL], seed=5), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(7_500)})
    await sim.start(run=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    # the exit is concluded absent once its recv window (+1 s of clock skew) has passed
    # since its intent: 1 s here rather than 3 s
    first = Daemon(url, sim, recv_window_ms=1000)
    await first.start()
    key = ("simulator", SYMBOL)
    try:
        entry = await first.engine.executor.submit(manual_buy("held", SYMBOL))
        assert entry.state is OrderState.FILLED
        ctx = first.engine.context
        ctx.set_risk_state(RiskState.HALTED, "kill switch by t (flatten)", kind="kill_switch")
        # what the flatten writes before it sends: the exit's intent, committed
        exit_intent = first.engine.executor.exit_intent(
            key, Decimal("0.01"), "kill_switch", ref="kill:t:cut", leg="simulator:BTC-USDT"
        )
        await first.journal.record_intent(exit_intent)
        await wait_until(lambda: _halted(first.journal), timeout=10, message="halt stored")
    finally:
        await first.stop()  # before the exit is sent
    assert endpoints.engine.position("BTC") == Decimal("0.01")

    second = Daemon(url, sim, recv_window_ms=1000)
    await second.start()
    try:
        engine = second.engine
        assert engine.risk_state == RiskState.HALTED
        record = engine.book.get(exit_intent.client_order_id)
        assert record is not None
        await wait_until(
            lambda: record.state is OrderState.REJECTED, timeout=15, message="exit absent"
        )
        await wait_until(lambda: engine.portfolio.amount(*key) == 0, message="flattened")
        assert endpoints.engine.position("BTC") == 0
        assert engine.risk_state == RiskState.HALTED
    finally:
        await second.stop()
        await sim.stop()


@pytest.mark.asyncio
async def test_a_flatten_asked_before_a_crash_is_carried_out_at_the_restart(
    db_url: str,
) -> None:
    """The kill switch is pressed with flatten while an entry's placement holds the executor
    (the flatten waits for its answer first); the process dies before the flatten has written
    any exit. The halt is stored, and with it that a flatten was asked: the restarted engine,
    halted, closes the position. Before, the stored risk event carried only the state: the
    restart halted and left the position open, although the operator had asked to be flat.
    Run on SQLite and on PostgreSQL."""
    sim = SimExchange(MarketModel([SYMBOL], seed=5), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(7_500)})
    await sim.start(run=False)
    url = db_url  # SQLite and PostgreSQL
    first = Daemon(url, sim)
    await first.start()
    key = ("simulator", SYMBOL)
    try:
        entry = await first.engine.executor.submit(manual_buy("crash", SYMBOL))
        assert entry.state is OrderState.FILLED
        # an entry's placement on its way: the flatten waits for it (placements_done)
        await first.engine.executor._lock.acquire()
        press = asyncio.ensure_future(first.engine.kill_switch("t", flatten=True))
        await wait_until(lambda: _halted(first.journal), timeout=10, message="halt stored")
        assert not press.done()
        press.cancel()  # the process dies here: no exit written, none sent
        with contextlib.suppress(asyncio.CancelledError):
            await press
        first.engine.executor._lock.release()
    finally:
        await first.stop()
    assert endpoints.engine.position("BTC") == Decimal("0.01")
    posts = endpoints.order_posts

    second = Daemon(url, sim)
    await second.start()
    try:
        engine = second.engine
        assert engine.risk_state == RiskState.HALTED
        await wait_until(lambda: engine.portfolio.amount(*key) == 0, message="flattened")
        await wait_until(lambda: endpoints.engine.position("BTC") == 0, message="flat at venue")
        assert engine.risk_state == RiskState.HALTED
        assert endpoints.order_posts == posts + 1  # one exit
    finally:
        await second.stop()
        await sim.stop()


@pytest.mark.asyncio
async def test_a_halt_without_flatten_keeps_its_position_at_the_restart(tmp_path: Path) -> None:
    """The kill switch pressed without flatten: the restart halts and leaves the position."""
    sim = SimExchange(MarketModel([SYMBOL], seed=5), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(7_500)})
    await sim.start(run=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    first = Daemon(url, sim)
    await first.start()
    key = ("simulator", SYMBOL)
    try:
        entry = await first.engine.executor.submit(manual_buy("keep", SYMBOL))
        assert entry.state is OrderState.FILLED
        await first.engine.kill_switch("t", flatten=False)
        await wait_until(lambda: _halted(first.journal), timeout=10, message="halt stored")
    finally:
        await first.stop()
    posts = endpoints.order_posts

    second = Daemon(url, sim)
    await second.start()
    try:
        engine = second.engine
        assert engine.risk_state == RiskState.HALTED
        assert engine.reconciled
        assert engine.portfolio.amount(*key) == Decimal("0.01")
        assert endpoints.order_posts == posts
    finally:
        await second.stop()
        await sim.stop()


@pytest.mark.asyncio
async def test_a_kill_switch_is_stored_before_the_writer_batch_a_crash_loses(
    tmp_path: Path,
) -> None:
    """The store writer batches risk events (up to batch_max_age_s, 1 s by default); the
    process dies right after the kill switch with flatten, before that batch was written (the
    flatten waiting for an entry's placement). The switch stored its halt at once, with the
    flatten asked: the restart halts and closes the position. Before, the halt went only
    through the writer's batch: the crash lost it, and the restart traded on, not flat."""
    sim = SimExchange(MarketModel([SYMBOL], seed=5), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(7_500)})
    await sim.start(run=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    first = Daemon(url, sim, batch_max_age_s=3600)
    await first.start()
    key = ("simulator", SYMBOL)
    try:
        entry = await first.engine.executor.submit(manual_buy("lost", SYMBOL))
        assert entry.state is OrderState.FILLED
        await first.writer.flush()  # the entry and its fill are stored
        await first.engine.executor._lock.acquire()  # an entry's placement on its way
        press = asyncio.ensure_future(first.engine.kill_switch("t", flatten=True))
        await wait_until(lambda: _halted(first.journal), timeout=5, message="halt stored")
        press.cancel()  # the process dies: the writer's batch is lost, no exit written
        with contextlib.suppress(asyncio.CancelledError):
            await press
        first.engine.executor._lock.release()
        for queue in first.writer._subs:  # a crash: what the writer holds is never written
            queue.close()
        first.writer._subs = []
        first.writer._durable.clear()
    finally:
        await first.engine.stop()
        await first.writer.stop()
        await first.db.stop()
        await first.hub.stop(1.0)
    assert endpoints.engine.position("BTC") == Decimal("0.01")

    second = Daemon(url, sim)
    await second.start()
    try:
        engine = second.engine
        assert engine.risk_state == RiskState.HALTED
        await wait_until(lambda: engine.portfolio.amount(*key) == 0, message="flattened")
        await wait_until(lambda: endpoints.engine.position("BTC") == 0, message="flat at venue")
    finally:
        await second.stop()
        await sim.stop()
