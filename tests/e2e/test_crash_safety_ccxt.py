"""Crash safety of live trading: the daemon (a real subprocess, ``python -m cryptomon run``, live
mode through ccxt) is killed with SIGKILL at each point of an order's life against the
simulator running in this process, then restarted on the same database. Afterwards: no client
order id reached the venue twice, no order is left open at the venue that the daemon does not
know (no orphans), and the daemon's position equals the venue's fills.

Kill points, reached by fault switches of the simulator (never by sleeping):
- ``intent_written``: the intent is in the database and the request is held before the venue
  processes it; after the kill the held request is abandoned (it never arrived).
- ``after_send``: same, but after the kill the venue processes the request (accepted while
  the daemon is dead).
- ``after_acceptance``: the venue accepted and filled the order; its response is held.
- ``mid_fill``: a limit order partially filled (the fill persisted), the rest fills at the
  venue while the daemon is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel, SymbolSpec
from cryptomon.sim.trading import Fault, TradingEndpoints
from cryptomon.sim.venue import install
from tests.util import wait_until

KEY, SECRET, TOKEN = "crash-key", "crash-secret", "crash-token-0123456789"
API_POLL_S = 0.05  # polling the daemon's API faster would hit its request rate limit
SYMBOL, EXSYM, EXCHANGE = "ABC-USDT", "ABCUSDT", "simulator"
SPEC = SymbolSpec(
    SYMBOL,
    price=100.0,
    tick=0.01,
    lot=0.001,
    sigma=0.00005,
    trades_per_s=2.0,
    trade_size=0.05,
    level_size=0.5,
)


@dataclass
class Daemon:
    """One ``python -m cryptomon run`` subprocess and its JSON log events."""

    config: Path
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    port: int | None = None
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.events = []
        self.port = None
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cryptomon",
            "run",
            "--config",
            str(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
        )
        self._reader = asyncio.create_task(self._read(self.proc))
        await wait_until(lambda: self.seen("daemon.running"), timeout=60, message="daemon running")
        listening = self.seen("api.listening")
        assert listening is not None
        self.port = int(listening["port"])

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.events.append({"event": "raw", "text": line.decode(errors="replace")})

    def seen(self, event: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == event), None)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert await self.proc.wait() == -signal.SIGKILL
        if self._reader is not None:
            await self._reader

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            aiohttp.ClientSession(headers=headers) as s,
            s.request(method, f"http://127.0.0.1:{self.port}{path}", json=body) as r,
        ):
            return r.status, await r.json(content_type=None)


@dataclass
class Rig:
    sim: SimExchange
    venue: TradingEndpoints
    daemon: Daemon
    db: Path

    def db_rows(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as c:
            try:
                return c.execute(sql).fetchall()
            except sqlite3.OperationalError:  # schema not there yet / locked for a moment
                return []

    def best(self) -> tuple[float, float]:
        bids, asks = self.sim.market.book(SYMBOL)
        return bids[0][0], asks[0][0]

    def venue_position(self) -> Decimal:
        return sum(
            (f.qty if f.side == "BUY" else -f.qty for f in self.venue.engine.fills), Decimal(0)
        )


def write_config(path: Path, db: Path, url: str) -> None:
    path.write_text(
        f"""
exchanges:
  - name: {EXCHANGE}
    url: {url}
    symbols: [{SYMBOL}]
    subscriptions: [trades, orderbook, ticker]
anomaly_detection: {{enabled: false}}
trading:
  mode: live
  exchange: {EXCHANGE}
  symbols: [{SYMBOL}]
  poll_interval_s: 0.2
  mark_interval_s: 0.5
  order_timeout_s: 30.0
  unknown_lookups: 3
  indicators: {{enabled: false}}
  live: {{exchange: binance, url: "{url}", timeout_ms: 30000, recv_window_ms: 3000}}
database: {{url: "sqlite+aiosqlite:///{db}"}}
storage: {{batch_max_age_s: 0.1}}
api:
  host: 127.0.0.1
  port: 0
  tokens: [{{name: crash-test, token: {TOKEN}, scopes: [read, trade]}}]
logging: {{level: INFO, format: json}}
shutdown_timeout_s: 10
data_dir: "{path.parent}"
"""
    )


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    sim = SimExchange(MarketModel([SPEC], seed=21), interval=0.1)
    venue = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(10_000)})
    await sim.start()
    db, cfg = tmp_path / "cm.db", tmp_path / "config.yaml"
    write_config(cfg, db, sim.rest_url)
    env = {
        **os.environ,
        "CRYPTOMON_TRADING__LIVE__API_KEY": KEY,
        "CRYPTOMON_TRADING__LIVE__SECRET": SECRET,
    }
    daemon = Daemon(cfg, env)
    r = Rig(sim, venue, daemon, db)
    try:
        await daemon.start()
        await wait_until(
            lambda: market_ready(r), timeout=30, interval=API_POLL_S, message="market data flowing"
        )
        yield r
    finally:
        await daemon.stop()
        venue.faults.clear()
        await sim.stop()


async def market_ready(rig: Rig) -> bool:
    status, body = await rig.daemon.api("GET", "/api/v1/market/stats")
    return status == 200 and any(
        m["symbol"] == SYMBOL and m["mid"] and not m["stale"] for m in body["markets"]
    )


def order_rows(rig: Rig) -> list[tuple[Any, ...]]:
    return rig.db_rows("SELECT client_order_id, state FROM orders")


async def restart_and_settle(rig: Rig) -> None:
    await rig.daemon.start()
    await wait_until(
        lambda: rig.daemon.seen("trading.reconciled"),
        timeout=30,
        message="reconciliation after restart",
    )

    async def settled() -> bool:
        status, body = await rig.daemon.api("GET", "/api/v1/trading/orders?open_only=true")
        return status == 200 and body["orders"] == []

    await wait_until(
        settled, timeout=30, interval=API_POLL_S, message="no open orders after restart"
    )


async def daemon_position(rig: Rig) -> Decimal:
    status, body = await rig.daemon.api("GET", "/api/v1/trading/positions")
    assert status == 200
    return sum(
        (
            Decimal(p["amount"])
            for p in body["positions"]
            if (p["exchange"], p["symbol"]) == (EXCHANGE, SYMBOL)
        ),
        Decimal(0),
    )


def assert_no_duplicates_or_orphans(rig: Rig, orders_sent: int) -> None:
    engine = rig.venue.engine
    ids = engine.client_order_ids()
    assert engine.duplicate_client_order_ids == 0
    assert len(ids) == len(set(ids))
    assert rig.venue.order_posts == orders_sent
    assert engine.open_orders() == []


def place(rig: Rig, body: dict[str, Any]) -> asyncio.Task[Any]:
    """POST a manual order in the background (the daemon may die before answering)."""

    async def post() -> Any:
        with contextlib.suppress(aiohttp.ClientError):
            return await rig.daemon.api("POST", "/api/v1/trading/orders", body)
        return None

    return asyncio.create_task(post())


MARKET_BUY = {"exchange": EXCHANGE, "symbol": SYMBOL, "side": "buy", "amount": "2"}


@pytest.mark.asyncio
@pytest.mark.slow
@pytest.mark.parametrize("point", ["intent_written", "after_send", "after_acceptance"])
async def test_sigkill_around_a_market_order_leaves_no_duplicate_and_no_orphan(
    rig: Rig, point: str
) -> None:
    """Killed before the venue saw the order, after it was sent, or after it was accepted:
    after the restart the order is settled once, positions equal the venue's fills."""
    fault = rig.venue.faults.add(Fault(kind="hold", after_accept=point == "after_acceptance"))
    task = place(rig, MARKET_BUY)
    await wait_until(fault.reached.is_set, timeout=20, message="placement reached the venue")
    await wait_until(lambda: len(order_rows(rig)) == 1, message="intent written to the db")
    if point == "after_acceptance":
        assert rig.venue.engine.client_order_ids() == [order_rows(rig)[0][0]]
    else:
        assert rig.venue.engine.orders == {}
    await rig.daemon.kill()
    task.cancel()
    if point == "intent_written":
        fault.abandon()  # the request dies with the process: the venue never sees it
    else:
        fault.release()  # the venue processes it (or answers it) while the daemon is dead
    cid = order_rows(rig)[0][0]
    if point == "after_send":
        await wait_until(lambda: bool(rig.venue.engine.orders), message="late acceptance")

    await restart_and_settle(rig)

    assert_no_duplicates_or_orphans(rig, orders_sent=1)
    expected = Decimal(0) if point == "intent_written" else Decimal(2)
    assert rig.venue_position() == expected

    async def position_matches() -> bool:
        return await daemon_position(rig) == expected

    await wait_until(
        position_matches, timeout=10, interval=API_POLL_S, message="daemon position = venue's"
    )
    final = "filled" if expected else "rejected"
    await wait_until(
        lambda: dict(order_rows(rig))[cid] == final, message=f"order persisted as {final}"
    )
    assert rig.venue.engine.client_order_ids() == ([] if not expected else [cid])


@pytest.mark.asyncio
@pytest.mark.slow
async def test_sigkill_mid_fill_recovers_every_fill_made_while_down(rig: Rig) -> None:
    """A limit order partly filled when the daemon dies and completed at the venue while it
    is down: after the restart the daemon has every fill and the venue's position."""
    rig.venue.engine.paused = True  # resting orders wait until we say so
    _, ask = rig.best()
    # 3 ticks above the ask: crosses the first few levels (~2.5 units) even if the book moves
    # a tick before the order arrives; 9 units is more than they hold, so the rest rests.
    body = {**MARKET_BUY, "type": "limit", "price": f"{ask + 0.03:.2f}", "amount": "9"}
    task = place(rig, body)
    await wait_until(lambda: bool(rig.venue.engine.orders), timeout=20, message="order placed")
    order = next(iter(rig.venue.engine.orders.values()))
    assert order.status == "PARTIALLY_FILLED"
    first = order.executed_qty
    await wait_until(
        lambda: (
            rig.db_rows(
                f"SELECT COUNT(*) FROM fills WHERE client_order_id = '{order.client_order_id}'"
            )
            == [(len(rig.venue.engine.fills),)]
        ),
        message="partial fill persisted",
    )
    await rig.daemon.kill()
    task.cancel()
    rig.venue.engine.paused = False
    rig.sim.market.market(SYMBOL).jump(-1.0)  # the market falls through the bid
    await wait_until(lambda: order.status == "FILLED", timeout=45, message="filled while down")
    assert order.executed_qty > first

    await restart_and_settle(rig)

    assert_no_duplicates_or_orphans(rig, orders_sent=1)
    assert rig.venue_position() == Decimal(9)
    assert await daemon_position(rig) == Decimal(9)
    venue_trades = {f"{EXSYM}:{f.trade_id}" for f in rig.venue.engine.fills}
    await wait_until(
        lambda: {r[0] for r in rig.db_rows("SELECT trade_id FROM fills")} == venue_trades,
        message="every venue fill persisted once",
    )
    assert rig.db_rows("SELECT COUNT(*) FROM fills") == [(len(venue_trades),)]
