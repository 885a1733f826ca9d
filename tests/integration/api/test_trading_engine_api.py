"""/api/v1/trading/* against the real TradingEngine on the paper broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from yarl import URL

from cryptomon.events import AuditEntry, Candle, Signal
from cryptomon.hub import Hub
from cryptomon.trading.signals import SignalGenerator
from tests.integration.api.conftest import ADMIN, READ, TRADE, Running, StartApi, bearer
from tests.unit.trading.helpers import EX, SYM, book, paper_engine, trading_config


@pytest_asyncio.fixture
async def engine_api(start_api: StartApi) -> AsyncIterator[tuple[Running, Any, list[Any]]]:
    """A started paper-trading engine with a book, behind a running API server."""
    engine, _broker, hub, market, clock = paper_engine(
        config=trading_config(
            max_position_size=1000.0,
            kill_switch_flatten=False,
            indicators={"scoring": "votes"},
        )
    )
    audits: list[AuditEntry] = []
    hub.subscribe(AuditEntry, audits.append)
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    await engine.start()
    api = await start_api(hub=hub, market=market, trading=engine)
    yield api, engine, audits
    await engine.stop()


BUY = {"exchange": EX, "symbol": "btc/usdt", "side": "buy", "amount": "2"}


@pytest.mark.asyncio
async def test_manual_order_fills_and_shows_in_positions(engine_api: Any) -> None:
    """A manual market order fills on the paper broker; the position and the audit appear."""
    api, _engine, audits = engine_api
    status, order = await api.post("/api/v1/trading/orders", BUY, token=TRADE)
    assert status == 200, order
    assert order["state"] == "filled"
    assert order["symbol"] == SYM
    _, body = await api.get("/api/v1/trading/positions", token=READ)
    (pos,) = body["positions"]
    assert pos["amount"] == "2"
    _, orders = await api.get("/api/v1/trading/orders?symbol=BTC-USDT")
    assert orders["orders"][0]["client_order_id"] == order["client_order_id"]
    assert ("trader", "place_order") in [(a.actor, a.action) for a in audits]
    url = f"{api.url}/api/v1/trading/orders/{order['client_order_id']}"
    async with api.http.delete(url, headers=bearer(TRADE)) as r:
        assert r.status == 409  # already filled


@pytest.mark.asyncio
async def test_risk_rejection_is_409(engine_api: Any) -> None:
    """An order above max_position_size is refused by the engine's risk checks: 409."""
    api, _engine, _ = engine_api
    status, body = await api.post("/api/v1/trading/orders", {**BUY, "amount": "50"}, token=TRADE)
    assert status == 409
    assert body["error"]["code"] == "risk_rejected"
    assert body["error"]["details"]["check"]


@pytest.mark.asyncio
async def test_stop_on_the_wrong_side_names_the_field(engine_api: Any) -> None:
    """The engine's 422 for a stop-loss above a buy's price names body.stop_loss in details,
    as a schema error does (details was null: a client could not tell which field)."""
    api, _engine, _ = engine_api
    status, body = await api.post(
        "/api/v1/trading/orders", {**BUY, "stop_loss": "150"}, token=TRADE
    )
    assert status == 422, body
    (field,) = body["error"]["details"]["fields"]
    assert field["field"] == "body.stop_loss"
    assert field["value"] == "150"
    assert "must be below" in field["message"]
    assert "body.stop_loss" in body["error"]["message"]


@pytest.mark.asyncio
async def test_resting_limit_order_cancel(engine_api: Any) -> None:
    """A resting limit order is cancelled through DELETE."""
    api, _engine, _ = engine_api
    status, order = await api.post(
        "/api/v1/trading/orders", {**BUY, "type": "limit", "price": "99"}, token=TRADE
    )
    assert (status, order["state"]) == (200, "submitted")
    url = f"{api.url}/api/v1/trading/orders/{order['client_order_id']}"
    async with api.http.delete(url, headers=bearer(TRADE)) as r:
        assert r.status == 200
        assert (await r.json())["state"] in ("canceled", "cancel_pending")


@pytest.mark.asyncio
async def test_kill_switch_and_resume(engine_api: Any) -> None:
    """Engage halts the engine (orders refused), release resumes it; stats follow."""
    api, _engine, audits = engine_api
    status, body = await api.post("/api/v1/trading/kill-switch", {"action": "engage"}, token=TRADE)
    assert (status, body["state"]) == (200, "halted")
    _, stats = await api.get("/api/v1/trading/stats")
    assert stats["risk_state"] == "halted"
    status, body = await api.post("/api/v1/trading/orders", BUY, token=TRADE)
    assert status == 409
    status, body = await api.post("/api/v1/trading/kill-switch", {"action": "release"}, token=ADMIN)
    assert (status, body["state"]) == (200, "active")
    assert ("trader", "kill_switch") in [(a.actor, a.action) for a in audits]


@pytest.mark.asyncio
async def test_limits_update_validated_by_the_engine(engine_api: Any) -> None:
    """Limits change through the engine's own validation; its errors name the field."""
    api, engine, _ = engine_api
    status, body = await api.post("/api/v1/trading/config", {"max_open_positions": 7}, token=ADMIN)
    assert status == 200
    assert body["config"]["max_open_positions"] == 7
    assert engine.limits()["max_open_positions"] == 7
    status, body = await api.post(
        "/api/v1/trading/config", {"max_symbol_exposure": 999_999.0}, token=ADMIN
    )
    assert status == 422, body
    assert engine.limits()["max_symbol_exposure"] != 999_999.0


@pytest.mark.asyncio
async def test_null_clears_an_optional_setting_and_is_refused_for_the_others(
    engine_api: Any,
) -> None:
    """null in POST /trading/config was dropped silently (200, nothing changed): it now turns
    trailing_stop_percentage off again, audited; a setting that always has a value refuses
    null with a 422 naming the field."""
    api, engine, audits = engine_api
    status, body = await api.post("/api/v1/trading/config", {"trailing_stop_percentage": 2.5})
    assert status == 200, body
    assert engine.limits()["trailing_stop_percentage"] == 2.5
    status, body = await api.post("/api/v1/trading/config", {"trailing_stop_percentage": None})
    assert status == 200, body
    assert body["config"]["trailing_stop_percentage"] is None
    assert engine.limits()["trailing_stop_percentage"] is None
    last = audits[-1]
    assert (last.actor, last.action) == ("admin", "update_limits")
    assert json.loads(last.payload) == {"changes": {"trailing_stop_percentage": None}}

    before = len(audits)
    status, body = await api.post(
        "/api/v1/trading/config", {"max_position_size": None, "max_open_positions": 5}
    )
    assert status == 422, body
    (field,) = body["error"]["details"]["fields"]
    assert field["field"] == "body.max_position_size"
    assert "null" in field["message"]
    assert engine.limits()["max_position_size"] == 1000.0
    assert engine.limits()["max_open_positions"] != 5  # nothing of a refused body applies
    assert len(audits) == before


@pytest.mark.asyncio
async def test_idempotency_key_on_the_real_engine(engine_api: Any) -> None:
    """A retried POST with the same Idempotency-Key does not place a second order."""
    api, engine, _ = engine_api
    headers = {"Idempotency-Key": "retry-1"}
    _, first = await api.post("/api/v1/trading/orders", BUY, token=TRADE, headers=headers)
    _, again = await api.post("/api/v1/trading/orders", BUY, token=TRADE, headers=headers)
    assert first["client_order_id"] == again["client_order_id"]
    assert len(engine.orders()) == 1
    _, pos = await api.get("/api/v1/trading/positions")
    assert pos["positions"][0]["amount"] == "2"


@pytest.mark.asyncio
async def test_an_idempotency_key_that_is_not_utf8_is_400_naming_the_header(
    engine_api: Any,
) -> None:
    """An Idempotency-Key with bytes that are not UTF-8 answered 422 "invalid body: 'utf-8'
    codec can't encode characters..." (the engine's hashing error); it is a 400 naming the
    header, and no order."""
    api, engine, _ = engine_api
    body = json.dumps(BUY).encode()
    head = (
        "POST /api/v1/trading/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TRADE}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    ).encode()
    url = URL(api.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(head + b"Idempotency-Key: k\xff\xfe1\r\n\r\n" + body)
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer
    error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert error["message"] == "Idempotency-Key must be UTF-8 text of 1 to 128 characters"
    assert engine.orders() == []


# An uptrend, then a sharp dip under the lower Bollinger band: the indicator strategy's buy
# of strength 0.75 (see tests/unit/trading/test_signals.py).
UPTREND = 100 + np.arange(60, dtype=np.float64) * 0.3
DIP = np.concatenate([UPTREND, UPTREND[-1] - np.arange(1, 6, dtype=np.float64) * 1.5])


def _closed_candles(hub: Hub, symbol: str, closes: np.ndarray) -> None:
    for n, close in enumerate(closes):
        start = 1_700_000_000.0 + 60 * n
        hub.publish(
            Candle(
                exchange=EX,
                symbol=symbol,
                ts=start + 60,
                ts_recv=start + 60,
                interval="1m",
                start=start,
                end=start + 60,
                open=close,
                high=close,
                low=close,
                close=float(close),
                volume=1.0,
            )
        )


@pytest.mark.asyncio
async def test_min_signal_strength_change_reaches_the_signal_generator(engine_api: Any) -> None:
    """POST /trading/config min_signal_strength applies at once to the signal generator sharing
    the engine's runtime and to the engine: its medium 0.75 indicator signal (stored whatever
    the gate) is not traded at 0.8 and traded at 0.7."""
    api, engine, audits = engine_api
    own_hub = Hub()  # the engine handles the signal below itself, not from the hub
    generator = SignalGenerator(
        config=engine.config, hub=own_hub, clock=engine.clock, runtime=engine.runtime
    )
    signals: list[Signal] = []
    own_hub.subscribe(Signal, signals.append)
    status, body = await api.post("/api/v1/trading/config", {"min_signal_strength": 0.8})
    assert status == 200, body
    assert body["config"]["min_signal_strength"] == 0.8
    assert generator.config.min_signal_strength == 0.8  # one runtime object
    assert ("admin", "update_limits") in [(a.actor, a.action) for a in audits]
    _closed_candles(own_hub, SYM, DIP)
    (medium,) = [s for s in signals if s.grade == "medium"]
    assert medium.strength == 0.75
    assert await engine.handle_signal(medium) is None  # 0.75 < 0.8

    status, _ = await api.post("/api/v1/trading/config", {"min_signal_strength": 0.7})
    assert status == 200
    order = await engine.handle_signal(medium)
    assert order is not None
    assert order.intent.signal_id == medium.id
    await generator.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("text", ["Infinity", "-Infinity", "NaN", "1e999"])
async def test_non_finite_limits_are_refused_naming_the_field(engine_api: Any, text: str) -> None:
    """A money limit of Infinity / NaN (JSON literals Python's parser takes) or 1e999 (parsed
    as infinity) is a 422 naming the field; the limit stays as it was."""
    api, engine, _ = engine_api
    url = f"{api.url}/api/v1/trading/config"
    body = '{"max_position_size": ' + text + "}"
    headers = {**bearer(ADMIN), "Content-Type": "application/json"}
    async with api.http.post(url, data=body, headers=headers) as r:
        status, answer = r.status, await r.json()
    assert status == 422, answer
    (field,) = answer["error"]["details"]["fields"]
    assert field["field"] == "body.max_position_size"
    assert engine.limits()["max_position_size"] == 1000.0


@pytest.mark.asyncio
async def test_a_take_profit_percentage_no_order_could_hold_is_422(engine_api: Any) -> None:
    """take_profit_percentage 1e300 was accepted: every later entry's take-profit price was
    past what an order row holds and PostgreSQL refused each one; it is a 422 naming the
    field, the limit as it was."""
    api, engine, _ = engine_api
    status, body = await api.post(
        "/api/v1/trading/config", {"take_profit_percentage": 1e300}, token=ADMIN
    )
    assert status == 422, body
    (field,) = body["error"]["details"]["fields"]
    assert field["field"] == "body.take_profit_percentage"
    assert engine.limits()["take_profit_percentage"] == 6.0
    status, body = await api.post(
        "/api/v1/trading/config", {"take_profit_percentage": 10_000}, token=ADMIN
    )
    assert status == 200, body


@pytest.mark.asyncio
async def test_cancelling_an_unknown_order_echoes_a_bounded_id(engine_api: Any) -> None:
    """DELETE of an unknown 5,000-character client order id: 404 whose message and details
    carry its first 64 characters and an ellipsis, not the whole id."""
    api, _engine, _ = engine_api
    coid = "c" * 64 + "x" * 4936
    url = f"{api.url}/api/v1/trading/orders/{coid}"
    async with api.http.delete(url, headers=bearer(TRADE)) as r:
        assert r.status == 404
        body = await r.json()
    text = json.dumps(body)
    assert "x" * 10 not in text
    assert "c" * 64 + "..." in body["error"]["message"]
    assert body["error"]["details"]["client_order_id"] == "c" * 64 + "..."
    assert len(text) < 600
    async with api.http.delete(api.url + "/api/v1/trading/orders/nope", headers=bearer(TRADE)) as r:
        assert r.status == 404
        assert (await r.json())["error"]["details"]["client_order_id"] == "nope"  # short: whole


@pytest.mark.asyncio
async def test_marks_are_the_exact_mid_of_the_quoted_prices(
    start_api: StartApi, database: Any
) -> None:
    """A position marked by a top of bid 59976.48 / ask 59976.50 shows the mark 59976.49:
    the mid of the two prices as quoted, exact in Decimal (the float average is
    59976.490000000005, which the mark, the unrealized PnL and the equity showed), from the
    fill's mark (the executor's) and from a later top's (the protection watch's)."""
    from decimal import Decimal

    from cryptomon.store.journal import StoreJournal

    engine, _broker, hub, market, clock = paper_engine(
        config=trading_config(kill_switch_flatten=False),
        journal=StoreJournal(db=database),
    )
    book(hub, clock, bid=59976.48, ask=59976.50, size=10.0, step=0.01)
    await engine.start()
    api = await start_api(hub=hub, market=market, trading=engine)
    try:
        assert (59976.48 + 59976.50) / 2 == 59976.490000000005  # the float average's noise
        status, order = await api.post(
            "/api/v1/trading/orders", {**BUY, "amount": "0.01"}, token=TRADE
        )
        assert (status, order["state"]) == (200, "filled"), order
        for bid, ask in ((59976.48, 59976.50), (59976.47, 59976.50)):
            book(hub, clock, bid=bid, ask=ask, size=10.0, step=0.01)
            mark = (Decimal(repr(bid)) + Decimal(repr(ask))) / 2
            assert engine.context.mid(EX, SYM) == mark
            pos = engine.context.portfolio.positions[(EX, SYM)]
            assert pos.mark == mark
            unrealized = pos.amount * mark - pos.cost
            _, body = await api.get("/api/v1/trading/positions", token=READ)
            (row,) = body["positions"]
            assert row["mark_price"] == str(mark)
            assert row["unrealized_pnl"] == str(unrealized)
            _, stats = await api.get("/api/v1/trading/stats", token=READ)
            assert stats["stats"]["unrealized_pnl"] == str(unrealized)
    finally:
        await engine.stop()
