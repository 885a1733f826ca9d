"""/api/v1/signals and /api/v1/signals/stats over the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cryptomon.events import Fill, OrderIntent, OrderState, OrderUpdate, Signal
from cryptomon.kinds import SignalGrade
from cryptomon.store.db import Database
from cryptomon.store.queries import Queries
from cryptomon.store.repos import insert_fills, insert_signals, upsert_orders
from tests.integration.api.conftest import StartApi

T0 = 1_700_000_000.0
GRADES = [SignalGrade.STRONG, SignalGrade.MEDIUM, SignalGrade.WEAK, SignalGrade.IGNORE]
SOURCES = ["indicators", "rule:momentum", "webhook:tv"]


def signal(i: int, **kw: Any) -> Signal:
    base: dict[str, Any] = {
        "exchange": "binance" if i % 2 == 0 else "okx",
        "symbol": "BTC-USDT" if i % 3 else "ETH-USDT",
        "ts": T0 + i,
        "ts_recv": T0 + i,
        "side": "buy" if i % 5 else "sell",
        "strength": 0.9 - 0.02 * i,
        "source": SOURCES[i % 3],
        "reason": f"signal {i}",
        "grade": GRADES[i % 4],
        "id": f"s{i:05d}",
    }
    base.update(kw)
    return Signal(**base)


@pytest.fixture
def store(db: Database) -> tuple[Database, Queries]:
    """A migrated store on SQLite or PostgreSQL."""
    return db, Queries(db=db)


async def _write(db: Database, signals: list[Signal], orders: list[Any], fills: list[Fill]) -> None:
    async with db.sessionmaker() as session, session.begin():
        await insert_signals(session, signals)
        if orders:
            await upsert_orders(session, orders)
        if fills:
            await insert_fills(session, fills)


@pytest.mark.asyncio
async def test_pages_cover_every_signal_once_newest_first(
    start_api: StartApi, store: tuple[Database, Queries]
) -> None:
    """Following next_cursor yields every signal once, newest first, each with its grade."""
    db, queries = store
    await _write(db, [signal(i) for i in range(23)], [], [])
    api = await start_api(queries=queries)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        status, body = await api.get(
            "/api/v1/signals?limit=10" + (f"&cursor={cursor}" if cursor else "")
        )
        assert status == 200, body
        seen += [s["id"] for s in body["items"]]
        assert all(s["grade"] in ("strong", "medium", "weak", "ignore") for s in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"s{i:05d}" for i in reversed(range(23))]


@pytest.mark.asyncio
async def test_filters_combine(start_api: StartApi, store: tuple[Database, Queries]) -> None:
    """exchange, symbol (either spelling), source, side, grade and since/until all filter."""
    db, queries = store
    sigs = [signal(i) for i in range(40)]
    await _write(db, sigs, [], [])
    api = await start_api(queries=queries)
    query = "exchange=BINANCE&symbol=eth/usdt&source=indicators&side=buy&grade=strong&limit=100"
    _, body = await api.get(f"/api/v1/signals?{query}")
    want = [
        s.id
        for s in reversed(sigs)
        if s.exchange == "binance"
        and s.symbol == "ETH-USDT"
        and s.source == "indicators"
        and s.side == "buy"
        and s.grade == "strong"
    ]
    assert want
    assert [s["id"] for s in body["items"]] == want
    _, body = await api.get(f"/api/v1/signals?since={T0 + 10}&until={T0 + 14}")
    assert [s["id"] for s in body["items"]] == [f"s{i:05d}" for i in (14, 13, 12, 11, 10)]
    # filters and the cursor together: the second page continues the filtered list
    _, first = await api.get("/api/v1/signals?grade=weak&limit=3")
    _, second = await api.get(f"/api/v1/signals?grade=weak&limit=3&cursor={first['next_cursor']}")
    weak = [s.id for s in reversed(sigs) if s.grade == "weak"]
    assert [s["id"] for s in first["items"] + second["items"]] == weak[:6]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("grade=great", "query.grade"),
        ("side=hold", "query.side"),
        ("cursor=nonsense", "query.cursor"),
        ("since=20&until=10", "query.until"),
        ("colour=red", "query.colour"),
    ],
)
async def test_bad_queries_are_422_naming_the_field(
    start_api: StartApi, store: tuple[Database, Queries], query: str, field: str
) -> None:
    """A bad filter value, a malformed cursor, an inverted range or an unknown parameter: 422."""
    _db, queries = store
    api = await start_api(queries=queries)
    status, body = await api.get(f"/api/v1/signals?{query}")
    assert status == 422
    assert field in [f["field"] for f in body["error"]["details"]["fields"]]


def _order(cid: str, sid: str | None, side: str, ts: float, origin: str, **kw: Any) -> list[Any]:
    common = {"exchange": "binance", "ts": ts, "ts_recv": ts, "client_order_id": cid}
    symbol = kw.pop("symbol", "BTC-USDT")
    intent = OrderIntent(
        **common,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        type="market",
        amount=Decimal(1),
        origin=origin,  # type: ignore[arg-type]
        signal_id=sid,
        reduce_only=origin != "signal",
    )
    update = OrderUpdate(
        **common,
        symbol=symbol,
        state=OrderState.FILLED,
        side=side,  # type: ignore[arg-type]
        type="market",
        amount=Decimal(1),
        filled=Decimal(1),
        avg_price=kw["price"],
    )
    return [intent, update]


def _fill(cid: str, side: str, ts: float, price: str, fee: str, symbol: str = "BTC-USDT") -> Fill:
    return Fill(
        exchange="binance",
        symbol=symbol,
        ts=ts,
        ts_recv=ts,
        trade_id=f"t-{cid}",
        client_order_id=cid,
        side=side,  # type: ignore[arg-type]
        amount=Decimal(1),
        price=Decimal(price),
        fee=Decimal(fee),
        fee_currency="USDT",
    )


@pytest.mark.asyncio
async def test_stats_count_by_source_and_grade_and_score_traded_signals(
    start_api: StartApi, store: tuple[Database, Queries]
) -> None:
    """Counts by source and grade; share traded; a win (stop above entry, after fees), a loss
    (take-profit below) and a still-open position give PnL and win rate by source."""
    db, queries = store
    sigs = [signal(i) for i in range(12)]
    win = signal(100, source="indicators", exchange="binance", side="buy", id="win")
    loss = signal(101, source="webhook:tv", exchange="binance", side="buy", id="loss")
    still = signal(102, source="indicators", symbol="ETH-USDT", side="buy", id="open")
    orders = [
        *_order("e1", "win", "buy", T0 + 200, "signal", price=Decimal(100)),
        *_order("x1", None, "sell", T0 + 210, "stop_loss", price=Decimal(110)),
        *_order("e2", "loss", "buy", T0 + 220, "signal", price=Decimal(100)),
        *_order("x2", None, "sell", T0 + 230, "take_profit", price=Decimal(90)),
        *_order("e3", "open", "buy", T0 + 240, "signal", price=Decimal(50), symbol="ETH-USDT"),
    ]
    fills = [
        _fill("e1", "buy", T0 + 200, "100", "0.1"),
        _fill("x1", "sell", T0 + 210, "110", "0.1"),
        _fill("e2", "buy", T0 + 220, "100", "0"),
        _fill("x2", "sell", T0 + 230, "90", "0"),
        _fill("e3", "buy", T0 + 240, "50", "0.05", symbol="ETH-USDT"),
    ]
    await _write(db, [*sigs, win, loss, still], orders, fills)
    api = await start_api(queries=queries)
    status, stats = await api.get("/api/v1/signals/stats")
    assert status == 200, stats
    assert stats["total"] == 15
    assert stats["by_source"] == {"indicators": 6, "rule:momentum": 4, "webhook:tv": 5}
    assert sum(stats["by_grade"].values()) == 15
    assert stats["traded"] == 3
    assert stats["share_traded"] == pytest.approx(3 / 15)
    ind = stats["by_source_traded"]["indicators"]
    assert (ind["traded"], ind["decided"], ind["wins"], ind["win_rate"]) == (2, 1, 1, 1.0)
    assert Decimal(ind["realized_pnl"]) == Decimal("9.8")  # 10 - two fees; the open one waits
    tv = stats["by_source_traded"]["webhook:tv"]
    assert (tv["traded"], tv["decided"], tv["wins"], tv["win_rate"]) == (1, 1, 0, 0.0)
    assert Decimal(tv["realized_pnl"]) == Decimal(-10)
    _, narrow = await api.get(f"/api/v1/signals/stats?until={T0 + 11}")
    assert (narrow["total"], narrow["traded"]) == (12, 0)
