"""POST /api/v1/signals/webhook/{name} against the real engine on the paper broker."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from cryptomon.api.services import WEBHOOKS
from cryptomon.events import AuditEntry, OrderIntent, Signal
from cryptomon.trading.signals import SignalGenerator, webhooks
from cryptomon.trading.signals.webhooks import SignalWebhooks
from tests.integration.api.conftest import Running, StartApi, api_config
from tests.unit.trading.helpers import EX, SYM, Collector, book, paper_engine, trading_config
from tests.util import wait_until

SECRET = "tv-secret-0123456789abcdef"
HOOK = "/api/v1/signals/webhook/tv"
PINNED_SECRET = "pinned-secret-0123456789abcdef"
# What a TradingView alert's message box holds (placeholders already substituted).
TV_ALERT = (
    '{"secret": "' + SECRET + '", "symbol": "BTCUSDT", "side": "BUY", "price": "100.1", '
    '"stop_loss": 95, "take_profit": 110, "alert_id": "tv-1700000000-BTCUSDT", '
    '"comment": "RSI cross"}'
)


@pytest_asyncio.fixture
async def hook_api(start_api: StartApi) -> AsyncIterator[tuple[Running, Any, Collector]]:
    """A paper engine with a book and one webhook 'tv' (BTC-USDT, 3 per minute) behind the API."""
    api, engine, col = await start_hook_api(start_api, auth_fail_limit=3)
    yield api, engine, col
    await engine.stop()


async def start_hook_api(start_api: StartApi, **api_over: Any) -> tuple[Running, Any, Collector]:
    """:func:`hook_api` with ``api_over`` as the API's config; the caller stops the engine."""
    cfg = trading_config(
        exchange=EX,
        webhooks=[
            {"name": "tv", "secret": SECRET, "symbols": ["BTC/USDT"], "max_per_minute": 3},
            {"name": "pinned", "secret": PINNED_SECRET, "exchange": EX},
        ],
    )
    engine, _broker, hub, market, clock = paper_engine(config=cfg)
    generator = SignalGenerator(
        config=cfg, hub=hub, clock=clock, market=market, runtime=engine.runtime
    )
    hooks = SignalWebhooks(generator=generator, clock=clock)
    col = Collector(hub, Signal, OrderIntent, AuditEntry)
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    await engine.start()
    api = await start_api(
        hub=hub, market=market, trading=engine, webhooks=hooks, config=api_config(**api_over)
    )
    return api, engine, col


async def _send(
    api: Running, body: str | dict[str, Any], *, path: str = HOOK, **headers: str
) -> tuple[int, Any]:
    data = body if isinstance(body, str) else json.dumps(body)
    ctype = "text/plain" if isinstance(body, str) else "application/json"
    async with api.http.post(
        api.url + path, data=data.encode(), headers={"Content-Type": ctype, **headers}
    ) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.asyncio
async def test_tradingview_alert_sent_three_times_places_one_order(hook_api: Any) -> None:
    """A TradingView alert (text/plain JSON) sent three times: one graded signal, one order
    with the sender's stop-loss and take-profit; the retries answer 'duplicate'; the call is
    audited without the secret, and no log line carries it."""
    api, engine, col = hook_api
    with capture_logs() as logs:
        answers = [await _send(api, TV_ALERT) for _ in range(3)]
        await wait_until(lambda: engine.portfolio.amount(EX, SYM) > 0, timeout=5)
    assert [s for s, _ in answers] == [200, 200, 200]
    assert [b["status"] for _, b in answers] == ["accepted", "duplicate", "duplicate"]
    assert len({b["signal_id"] for _, b in answers}) == 1
    (sig,) = col.of(Signal)
    assert (sig.symbol, sig.side, sig.source, sig.grade) == (SYM, "buy", "webhook:tv", "strong")
    assert sig.reason == "RSI cross"
    (intent,) = [i for i in col.of(OrderIntent) if i.origin == "signal"]
    assert intent.signal_id == sig.id
    assert (intent.stop_loss, intent.take_profit) == (Decimal(95), Decimal(110))
    audits = [a for a in col.of(AuditEntry) if a.action == "signal.webhook"]
    assert len(audits) == 1
    assert "tv-1700000000-BTCUSDT" in audits[0].payload
    assert all(SECRET not in a.payload for a in col.of(AuditEntry))
    assert all(SECRET not in repr(line) for line in logs)


@pytest.mark.asyncio
async def test_wrong_secret_is_401_and_counts_toward_the_throttle(hook_api: Any) -> None:
    """A wrong secret (body or ?token=) is 401 and no signal; after api.auth_fail_limit (3)
    failures that address gets 429 for wrong secrets, while the right one still passes (as a
    valid bearer token is never refused by the throttle)."""
    api, _engine, col = hook_api
    body = {"secret": "wrong-secret-0123456789", "symbol": "BTC-USDT", "side": "buy"}
    status, answer = await _send(api, body)
    assert status == 401
    assert "invalid secret" in answer["error"]["message"]
    status, _ = await _send(api, {"symbol": "BTC-USDT", "side": "buy"}, path=HOOK + "?token=no")
    assert status == 401
    status, _ = await _send(api, {"symbol": "BTC-USDT", "side": "buy"})  # no secret at all
    assert status == 401
    assert col.of(Signal) == []
    status, answer = await _send(api, body)
    assert status == 429
    status, answer = await _send(api, {**body, "secret": SECRET})
    assert status == 200, answer
    assert len(col.of(Signal)) == 1


@pytest.mark.asyncio
async def test_unknown_webhook_is_401_like_a_wrong_secret(hook_api: Any) -> None:
    """A webhook name that is not configured answers 401 (names cannot be probed)."""
    api, _engine, _col = hook_api
    body = {"secret": SECRET, "symbol": "BTC-USDT", "side": "buy"}
    status, _ = await _send(api, body, path="/api/v1/signals/webhook/other")
    assert status == 401


@pytest.mark.asyncio
async def test_token_query_and_hmac_signature_authenticate(hook_api: Any) -> None:
    """?token= and an X-Signature HMAC-SHA256 of the raw body are accepted as the secret."""
    api, _engine, col = hook_api
    status, answer = await _send(
        api, {"symbol": "BTC-USDT", "side": "sell", "grade": "weak"}, path=f"{HOOK}?token={SECRET}"
    )
    assert (status, answer["grade"], answer["strength"]) == (200, "weak", 0.5)
    raw = json.dumps({"symbol": "BTC/USDT", "side": "buy", "strength": 0.7})
    status, answer = await _send(api, raw, **_signed(api, raw))
    assert status == 200, answer
    assert answer["grade"] == "medium"
    stamp = str(int(_clock(api).time()))
    bad = hmac.new(b"other", f"{stamp}.{raw}".encode(), hashlib.sha256).hexdigest()
    status, _ = await _send(api, raw, **{"X-Signature": bad, "X-Signature-Timestamp": stamp})
    assert status == 401
    assert [s.side for s in col.of(Signal)] == ["sell", "buy"]


def _clock(api: Running) -> Any:
    return api.server.app[WEBHOOKS].clock


def _signed(
    api: Running, raw: str, *, at: float | None = None, key: str = SECRET
) -> dict[str, str]:
    """The headers of a signed call: X-Signature-Timestamp (now, or ``at``) and the
    ``sha256=``-prefixed HMAC of '<timestamp>.<body>'."""
    stamp = str(int(_clock(api).time() if at is None else at))
    mac = hmac.new(SECRET.encode(), f"{stamp}.{raw}".encode(), hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={mac}", "X-Signature-Timestamp": stamp}


@pytest.mark.asyncio
async def test_a_signed_call_without_alert_id_cannot_be_replayed(hook_api: Any) -> None:
    """A signed call without alert_id, sent again byte for byte (a captured request): 409
    signature_replayed and no second signal; once the window has passed the same bytes are
    401 signature_expired. Neither counts as a failed authentication; /metrics counts both."""
    api, _engine, col = hook_api
    raw = json.dumps({"symbol": "BTC-USDT", "side": "buy"})
    headers = _signed(api, raw)
    status, answer = await _send(api, raw, **headers)
    assert status == 200, answer
    status, answer = await _send(api, raw, **headers)
    assert status == 409, answer
    assert answer["error"]["code"] == "signature_replayed"
    assert "X-Signature-Timestamp" in answer["error"]["message"]
    clock = _clock(api)
    clock.set(clock.time() + 301)
    status, answer = await _send(api, raw, **headers)
    assert status == 401, answer
    assert answer["error"]["code"] == "signature_expired"
    assert "signature_window_s" in answer["error"]["message"]
    assert len(col.of(Signal)) == 1
    assert api.server.app_context.auth.auth_failures == 0
    status, answer = await _send(api, raw, **_signed(api, raw))  # signed anew: a new call
    assert status == 200, answer
    assert len(col.of(Signal)) == 2
    metrics = await api.metrics()
    assert metrics["cryptomon_webhook_accepted_total"] == 2
    refused = metrics["cryptomon_webhook_refused_total"]
    assert refused == {
        (("reason", "replayed"),): 1,
        (("reason", "expired"),): 1,
        (("reason", "unstamped"),): 0,
    }


@pytest.mark.asyncio
async def test_a_signature_without_timestamp_or_out_of_window_is_refused(hook_api: Any) -> None:
    """The old form (HMAC of the body alone) is 401 naming the missing X-Signature-Timestamp
    header and the signing string; a timestamp 301 s behind or ahead is 401 signature_expired;
    one that is not Unix seconds is 401 signature_timestamp_invalid; a timestamp changed
    after signing is a wrong signature (401, counted). No signal; /metrics counts the refusals
    by reason."""
    api, _engine, col = hook_api
    raw = json.dumps({"symbol": "BTC-USDT", "side": "buy"})
    legacy = hmac.new(SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()
    status, answer = await _send(api, raw, **{"X-Signature": legacy})
    assert status == 401, answer
    assert answer["error"]["code"] == "signature_timestamp_missing"
    assert "X-Signature-Timestamp" in answer["error"]["message"]
    assert "'<X-Signature-Timestamp>.<body>'" in answer["error"]["message"]
    now = _clock(api).time()
    for at in (now - 301, now + 301):
        status, answer = await _send(api, raw, **_signed(api, raw, at=at))
        assert (status, answer["error"]["code"]) == (401, "signature_expired"), answer
    changed = {**_signed(api, raw), "X-Signature-Timestamp": str(int(now) - 1)}
    status, answer = await _send(api, raw, **changed)
    assert (status, answer["error"]["code"]) == (401, "unauthorized"), answer
    assert api.server.app_context.auth.auth_failures == 1  # a wrong signature: counted
    milliseconds = str(int(now * 1000))
    mac = hmac.new(SECRET.encode(), f"{milliseconds}.{raw}".encode(), hashlib.sha256).hexdigest()
    headers = {"X-Signature": mac, "X-Signature-Timestamp": milliseconds}
    status, answer = await _send(api, raw, **headers)
    assert (status, answer["error"]["code"]) == (401, "signature_timestamp_invalid"), answer
    assert col.of(Signal) == []
    refused = (await api.metrics())["cryptomon_webhook_refused_total"]
    assert refused == {
        (("reason", "replayed"),): 0,
        (("reason", "expired"),): 2,
        (("reason", "unstamped"),): 2,
    }


BAD_BODIES = [
    ({"secret": SECRET, "symbol": "BTC-USDT"}, "body.side"),
    ({"secret": SECRET, "symbol": "BTC-USDT", "side": "hold"}, "body.side"),
    ({"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "stop": 90}, "body.stop"),
    ({"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "strength": 2}, "body.strength"),
    ({"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "grade": "great"}, "body.grade"),
    ({"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "price": "abc"}, "body.price"),
    # true was taken as 1.0 (a strength of 1: a strong signal, an order), "1_0" as 10
    ({"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "strength": True}, "body.strength"),
    ({"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "price": True}, "body.price"),
    ({"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "stop_loss": False}, "body.stop_loss"),
    (
        {"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "take_profit": "1_0"},
        "body.take_profit",
    ),
    ({"secret": SECRET, "symbol": "ETH-USDT", "side": "buy"}, "body.symbol"),
    ({"secret": SECRET, "symbol": "BTC", "side": "buy"}, "body.symbol"),
    # prices past what an order row holds (NUMERIC(36, 18): below 1e18): a take-profit of
    # 1e30 was accepted, then its entry refused by PostgreSQL ("numeric field overflow")
    (
        {"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "take_profit": 1e30},
        "body.take_profit",
    ),
    (
        {"secret": SECRET, "symbol": "BTC-USDT", "side": "sell", "stop_loss": "1e18"},
        "body.stop_loss",
    ),
    ({"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "price": 1e300}, "body.price"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES, ids=[f for _, f in BAD_BODIES])
@pytest.mark.asyncio
async def test_bad_bodies_are_422_naming_the_field(
    hook_api: Any, body: dict[str, Any], field: str
) -> None:
    """A missing or invalid field, an unknown field or a symbol the webhook may not signal:
    422 whose details name the field."""
    api, _engine, col = hook_api
    status, answer = await _send(api, body)
    assert status == 422, answer
    assert field in [f["field"] for f in answer["error"]["details"]["fields"]]
    assert col.of(Signal) == []


@pytest.mark.asyncio
async def test_not_json_is_400_and_other_media_types_415(hook_api: Any) -> None:
    """A text/plain body that is not JSON is 400; a form body is 415."""
    api, _engine, _col = hook_api
    status, answer = await _send(api, "BTCUSDT buy")
    assert status == 400
    assert "not valid JSON" in answer["error"]["message"]
    async with api.http.post(api.url + HOOK, data={"side": "buy"}) as r:
        assert r.status == 415


@pytest.mark.asyncio
async def test_rate_limit_per_webhook(hook_api: Any) -> None:
    """max_per_minute 3: the fourth new alert within a minute is 429 with Retry-After."""
    api, _engine, col = hook_api
    for n in range(3):
        body = {"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "alert_id": f"a{n}"}
        status, _ = await _send(api, body)
        assert status == 200
    async with api.http.post(
        api.url + HOOK,
        json={"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "alert_id": "a3"},
    ) as r:
        assert r.status == 429
        assert int(r.headers["Retry-After"]) >= 1
    assert len(col.of(Signal)) == 3


@pytest.mark.asyncio
async def test_a_signed_call_refused_for_the_rate_may_be_sent_again(hook_api: Any) -> None:
    """A signed call answered 429 (max_per_minute) was never accepted: sent again byte for
    byte after its Retry-After, within the signature window, it is accepted (not 409
    signature_replayed, which says it was accepted before), and only once."""
    api, _engine, col = hook_api
    for n in range(3):
        raw = json.dumps({"symbol": "BTC-USDT", "side": "buy", "alert_id": f"r{n}"})
        status, answer = await _send(api, raw, **_signed(api, raw))
        assert status == 200, answer
    raw = json.dumps({"symbol": "BTC-USDT", "side": "buy", "alert_id": "r3"})
    headers = _signed(api, raw)
    status, answer = await _send(api, raw, **headers)
    assert status == 429, answer
    _clock(api).advance(61)  # past Retry-After, well inside signature_window_s (300 s)
    status, answer = await _send(api, raw, **headers)
    assert status == 200, answer
    assert answer["status"] == "accepted"
    status, answer = await _send(api, raw, **headers)
    assert status == 409, answer
    assert answer["error"]["code"] == "signature_replayed"
    assert len(col.of(Signal)) == 4


@pytest.mark.asyncio
async def test_webhook_is_in_openapi_without_bearer_security(hook_api: Any) -> None:
    """The document lists the webhook with JSON and text/plain bodies, no bearer token, 401."""
    api, _engine, _col = hook_api
    async with api.http.get(api.url + "/api/v1/openapi.json") as r:
        doc = await r.json()
    op = doc["paths"]["/api/v1/signals/webhook/{name}"]["post"]
    assert op["security"] == []
    assert set(op["requestBody"]["content"]) == {"application/json", "text/plain"}
    assert "401" in op["responses"]
    assert "/api/v1/signals" in doc["paths"]
    assert "/api/v1/signals/stats" in doc["paths"]


@pytest.mark.asyncio
async def test_a_signature_that_is_not_utf8_is_a_wrong_secret(hook_api: Any) -> None:
    """An X-Signature header with bytes that are not UTF-8 is a wrong secret (401, counted by
    the throttle), never a 500 with a traceback in the log."""
    api, _engine, col = hook_api
    port = api.server.port
    assert port is not None
    raw = json.dumps({"symbol": "BTC-USDT", "side": "buy"}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST {HOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n".encode()
            + b"X-Signature: \xff\xfe\r\n\r\n"
            + raw
        )
        await writer.drain()
        with capture_logs() as logs:
            status = int((await reader.readline()).split()[1])
    finally:
        writer.close()
        await writer.wait_closed()
    assert status == 401
    assert not [line for line in logs if line["log_level"] == "error"]
    assert api.server.app_context.auth.auth_failures == 1
    assert col.of(Signal) == []


@pytest.mark.asyncio
async def test_a_webhook_with_an_exchange_signals_only_that_exchange(hook_api: Any) -> None:
    """A webhook configured with an exchange refuses a body naming another one (422 naming
    body.exchange, no signal): its secret does not open the other venues; the same exchange,
    or none, passes."""
    api, _engine, col = hook_api
    path = "/api/v1/signals/webhook/pinned"
    body = {"secret": PINNED_SECRET, "symbol": "BTC-USDT", "side": "buy", "exchange": "kraken"}
    status, answer = await _send(api, body, path=path)
    assert status == 422, answer
    assert answer["error"]["details"]["fields"][0]["field"] == "body.exchange"
    assert col.of(Signal) == []
    status, answer = await _send(api, {**body, "exchange": EX.upper()}, path=path)
    assert status == 200, answer
    status, answer = await _send(api, {**body, "exchange": None}, path=path)
    assert status == 200, answer
    assert [s.exchange for s in col.of(Signal)] == [EX, EX]


@pytest.mark.asyncio
async def test_the_memory_of_signatures_is_bounded_and_fails_closed(
    hook_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signatures are remembered until their window ends, at most _MAX_SIGNATURES (2 here)
    per webhook: a third signed call within the window is 429 (never a signature forgotten
    while it could still be replayed); once the first two are past their window, their
    room is reused."""
    monkeypatch.setattr(webhooks, "_MAX_SIGNATURES", 2)
    api, _engine, col = hook_api
    for strength in (0.6, 0.7):
        raw = json.dumps({"symbol": "BTC-USDT", "side": "buy", "strength": strength})
        status, answer = await _send(api, raw, **_signed(api, raw))
        assert status == 200, answer
    raw = json.dumps({"symbol": "BTC-USDT", "side": "sell"})
    status, answer = await _send(api, raw, **_signed(api, raw))
    assert status == 429, answer
    assert "signature_window_s" in answer["error"]["message"]
    clock = _clock(api)
    clock.set(clock.time() + 301)
    status, answer = await _send(api, raw, **_signed(api, raw))
    assert status == 200, answer
    assert [s.side for s in col.of(Signal)] == ["buy", "buy", "sell"]


@pytest.mark.asyncio
async def test_a_body_exchange_other_than_the_traded_one_is_422(hook_api: Any) -> None:
    """trading.exchange set, a webhook not pinned to one: a body naming another exchange was
    answered 'accepted' and its signal dropped by the engine (never traded); it is a 422
    naming body.exchange and the traded exchange, with no signal."""
    api, _engine, col = hook_api
    body = {"secret": SECRET, "symbol": "BTC-USDT", "side": "buy", "exchange": "kraken"}
    status, answer = await _send(api, body)
    assert status == 422, answer
    (field,) = answer["error"]["details"]["fields"]
    assert field["field"] == "body.exchange"
    assert "kraken" in field["message"]
    assert EX in field["message"]
    assert col.of(Signal) == []
    status, answer = await _send(api, {**body, "exchange": EX})
    assert (status, answer["status"]) == (200, "accepted")


@pytest.mark.asyncio
async def test_a_symbol_outside_trading_symbols_is_422(start_api: StartApi) -> None:
    """A webhook without symbols of its own signals the traded ones (trading.symbols): another
    symbol was 'accepted' and never traded; it is a 422 naming body.symbol."""
    cfg = trading_config(exchange=EX, symbols=[SYM], webhooks=[{"name": "tv", "secret": SECRET}])
    engine, _broker, hub, market, clock = paper_engine(config=cfg)
    generator = SignalGenerator(
        config=cfg, hub=hub, clock=clock, market=market, runtime=engine.runtime
    )
    col = Collector(hub, Signal)
    await engine.start()
    try:
        api = await start_api(
            hub=hub,
            market=market,
            trading=engine,
            webhooks=SignalWebhooks(generator=generator, clock=clock),
        )
        body = {"secret": SECRET, "symbol": "ETH/USDT", "side": "buy"}
        status, answer = await _send(api, body)
        assert status == 422, answer
        (field,) = answer["error"]["details"]["fields"]
        assert field["field"] == "body.symbol"
        assert "ETH-USDT" in field["message"]
        assert SYM in field["message"]
        assert col.of(Signal) == []
        status, answer = await _send(api, {**body, "symbol": "BTCUSDT"})
        assert (status, answer["status"]) == (200, "accepted")
    finally:
        await engine.stop()


# A level that rounds to nothing at the market's tick (the paper broker's 0.01 here): a long's
# stop of 1e-30 became a stop of 0, one that can never trigger, and its entry was sized on it.
VANISHING_LEVELS = [
    ({"side": "buy", "stop_loss": 1e-30}, "body.stop_loss"),
    ({"side": "buy", "stop_loss": "0.001"}, "body.stop_loss"),  # floors to 0 at 0.01
    ({"side": "sell", "take_profit": 1e-30}, "body.take_profit"),
    ({"side": "buy", "price": "1e-30"}, "body.price"),
]


@pytest.mark.parametrize(("body", "field"), VANISHING_LEVELS, ids=[f for _, f in VANISHING_LEVELS])
@pytest.mark.asyncio
async def test_a_level_that_rounds_to_zero_at_the_tick_is_422(
    hook_api: Any, body: dict[str, Any], field: str
) -> None:
    """422 naming the field and what is expected (a price above 0 at the tick); no signal,
    no order. A level of one tick is accepted."""
    api, _engine, col = hook_api
    status, answer = await _send(api, {"secret": SECRET, "symbol": "BTC-USDT", **body})
    assert status == 422, answer
    (problem,) = answer["error"]["details"]["fields"]
    assert problem["field"] == field
    assert "above 0" in problem["message"]
    assert "0.01" in problem["message"]  # the tick
    assert col.of(Signal) == []
    assert col.of(OrderIntent) == []
    one_tick = {k: ("0.01" if k != "side" else v) for k, v in body.items()}
    status, answer = await _send(api, {"secret": SECRET, "symbol": "BTC-USDT", **one_tick})
    assert (status, answer["status"]) == (200, "accepted"), answer


@pytest.mark.asyncio
async def test_a_level_below_what_an_order_row_holds_is_422_without_a_tick(
    start_api: StartApi,
) -> None:
    """No instrument spec and no paper tick known to the webhook (a live broker): a level
    below 1e-18 is 0 in an order row (NUMERIC(36, 18)); it is refused all the same."""
    cfg = trading_config(exchange=EX, symbols=[SYM], webhooks=[{"name": "tv", "secret": SECRET}])
    engine, _broker, hub, market, clock = paper_engine(config=cfg)
    generator = SignalGenerator(
        config=cfg.model_copy(update={"mode": "live"}),
        hub=hub,
        clock=clock,
        market=market,
        runtime=engine.runtime,
    )
    col = Collector(hub, Signal)
    await engine.start()
    try:
        api = await start_api(
            hub=hub,
            market=market,
            trading=engine,
            webhooks=SignalWebhooks(generator=generator, clock=clock),
        )
        body = {"secret": SECRET, "symbol": SYM, "side": "buy", "stop_loss": 1e-30}
        status, answer = await _send(api, body)
        assert status == 422, answer
        (problem,) = answer["error"]["details"]["fields"]
        assert problem["field"] == "body.stop_loss"
        assert "above 0" in problem["message"]
        assert col.of(Signal) == []
    finally:
        await engine.stop()
