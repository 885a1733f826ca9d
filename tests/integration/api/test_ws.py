"""WebSocket /ws: subscriptions with filters, control messages, bad input, caps, slow clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from cryptomon.events import Anomaly, Severity, Signal, Trade
from cryptomon.kinds import SignalGrade
from tests.integration.api.conftest import READ, Running, StartApi, api_config, bearer
from tests.util import wait_until

T0 = 1_700_000_000.0


def trade(exchange: str, symbol: str, price: float = 1.0, pad: str = "") -> Trade:
    return Trade(
        exchange=exchange,
        symbol=symbol,
        ts=T0,
        ts_recv=T0,
        price=price,
        amount=1.0,
        side="buy",
        trade_id=pad or None,
    )


async def connect(api: Running, **kw: Any) -> aiohttp.ClientWebSocketResponse:
    return await api.http.ws_connect(api.url + "/ws", headers=bearer(READ), **kw)


async def send(ws: aiohttp.ClientWebSocketResponse, msg: Any) -> dict[str, Any]:
    await ws.send_str(msg if isinstance(msg, str) else json.dumps(msg))
    return await ws.receive_json(timeout=5)


def subscribe(channel: str, **filters: Any) -> dict[str, Any]:
    return {"msg_type": "Subscribe", "data": {"channel": channel, **filters}}


@pytest.mark.asyncio
async def test_filters_deliver_only_matching_events(start_api: StartApi) -> None:
    """A client subscribed with symbol+exchange filters receives exactly the matching events."""
    api = await start_api()
    ws = await connect(api)
    ack = await send(ws, subscribe("trades", symbols=["btc/usdt"], exchanges=["Binance"]))
    assert ack == {
        "channel": "subscribed",
        "data": {"channel": "trades", "symbols": ["BTC-USDT"], "exchanges": ["binance"]},
    }
    published = [
        trade("binance", "BTC-USDT", 1),
        trade("okx", "BTC-USDT", 2),
        trade("binance", "ETH-USDT", 3),
        trade("binance", "BTC-USDT", 4),
    ]
    for ev in published:
        api.hub.publish(ev)
    api.hub.publish(
        Anomaly(
            exchange="binance",
            symbol="BTC-USDT",
            ts=T0,
            ts_recv=T0,
            kind="volume",
            severity=Severity.HIGH,
            value=1,
            threshold=1,
            confidence=1,
        )
    )  # other channel: not subscribed
    got = [await ws.receive_json(timeout=5) for _ in range(2)]
    assert [(m["channel"], m["data"]["price"]) for m in got] == [("trades", 1.0), ("trades", 4.0)]
    assert got[0]["data"]["type"] == "Trade"
    pong = await send(ws, {"msg_type": "Ping"})
    assert pong["channel"] == "pong"  # nothing else was queued before it
    await ws.close()


@pytest.mark.asyncio
async def test_unsubscribe_stops_delivery_and_hub_subscription(start_api: StartApi) -> None:
    """After Unsubscribe no events arrive and the channel's hub subscription is gone."""
    api = await start_api()
    ws = await connect(api)
    await send(ws, subscribe("anomalies"))
    assert "api.ws.anomalies" in api.hub.stats()["subscribers"]
    reply = await send(ws, {"msg_type": "Unsubscribe", "data": {"channel": "anomalies"}})
    assert reply == {"channel": "unsubscribed", "data": {"channel": "anomalies"}}
    assert "api.ws.anomalies" not in api.hub.stats()["subscribers"]
    await ws.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("{not json", "not valid JSON"),
        ({"msg_type": "Subscribe"}, "data"),
        ({"msg_type": "Dance", "data": {"channel": "trades"}}, "msg_type"),
        (subscribe("weather"), "data.channel"),
        (subscribe("trades", symbols=["b@d"]), "data.symbols: a symbol like BTC/USDT"),
        ({"msg_type": "Subscribe", "data": {"channel": "trades", "colour": 1}}, "data.colour"),
        ([1, 2], "message"),
        # [] answered "subscribed" and matched no event
        (subscribe("trades", symbols=[]), "data.symbols: an empty list matches nothing"),
        (subscribe("trades", exchanges=[]), "data.exchanges: an empty list matches nothing"),
        # a repeated key: the parser kept the last ("subscribed" to the second channel; a
        # Subscribe that ended in "Ping" was answered pong), as REST bodies no longer do
        (
            '{"msg_type": "Subscribe", "msg_type": "Ping"}',
            "msg_type: given more than once; send each field once",
        ),
        (
            '{"msg_type": "Subscribe", "data": {"channel": "trades", "channel": "orders"}}',
            "data.channel: given more than once",
        ),
    ],
)
async def test_invalid_messages_get_an_error_not_a_disconnect(
    start_api: StartApi, message: Any, expected: str
) -> None:
    """Each malformed message gets an error naming what was wrong; the socket stays usable."""
    api = await start_api()
    ws = await connect(api)
    reply = await send(ws, message)
    assert reply["channel"] == "error"
    assert expected in reply["data"]["message"]
    assert (await send(ws, {"msg_type": "Ping"}))["channel"] == "pong"
    await ws.send_bytes(b"\x00\x01")
    assert "binary" in (await ws.receive_json(timeout=5))["data"]["message"]
    await ws.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("filters", "field", "bound"),
    [
        ({"symbols": ["BTC-" + "U" * 10_000]}, "data.symbols", "at most 40 characters"),
        ({"symbols": ["BTC-USDT", "x" * 10_000]}, "data.symbols", "at most 40 characters"),
        ({"exchanges": ["b" * 10_000]}, "data.exchanges", "at most 64 characters"),
    ],
    ids=["symbol", "second-symbol", "exchange"],
)
@pytest.mark.asyncio
async def test_a_subscribe_with_a_huge_symbol_or_exchange_is_an_error(
    start_api: StartApi, filters: dict[str, Any], field: str, bound: str
) -> None:
    """A 10,000-character symbol or exchange was subscribed to (and echoed back in the
    'subscribed' reply): an error naming the field and the bound of the REST fields, not
    repeating the value; the socket stays usable."""
    api = await start_api()
    ws = await connect(api)
    reply = await send(ws, subscribe("trades", **filters))
    assert reply["channel"] == "error", str(reply)[:200]
    assert reply["data"]["field"] == field
    assert bound in reply["data"]["message"]
    assert len(reply["data"]["message"]) < 200
    assert (await send(ws, {"msg_type": "Ping"}))["channel"] == "pong"
    await ws.close()


@pytest.mark.asyncio
async def test_ws_needs_a_token_and_accepts_query_token(start_api: StartApi) -> None:
    """No token: 401 before the upgrade; ?token= works for browsers."""
    api = await start_api()
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await api.http.ws_connect(api.url + "/ws")
    assert exc.value.status == 401
    ws = await api.http.ws_connect(api.url + f"/ws?token={READ}")
    assert (await send(ws, {"msg_type": "Ping"}))["channel"] == "pong"
    await ws.close()


@pytest.mark.asyncio
async def test_client_cap(start_api: StartApi) -> None:
    """Connections beyond ws_max_clients are refused with 503; a freed slot is reusable."""
    api = await start_api(config=api_config(ws_max_clients=2))
    first, second = await connect(api), await connect(api)
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await connect(api)
    assert exc.value.status == 503
    await first.close()
    await wait_until(lambda: api.server.ws.stats()["clients"] == 1)
    third = await connect(api)
    assert (await send(third, {"msg_type": "Ping"}))["channel"] == "pong"
    await second.close()
    await third.close()
    assert api.server.ws.rejected == 1


@pytest.mark.asyncio
async def test_slow_client_drops_are_counted_and_daemon_unaffected(start_api: StartApi) -> None:
    """A client that does not read loses its oldest events (counted, notice sent) while the
    hub, a fast client and the REST API go on; a client stuck too long is disconnected."""
    api = await start_api(config=api_config(ws_queue_size=50, ws_send_timeout_s=0.3))
    slow = await connect(api, max_msg_size=0)
    fast = await connect(api)
    await send(slow, subscribe("trades", symbols=["BTC-USDT"]))
    await send(fast, subscribe("trades", symbols=["ETH-USDT"]))
    pad = "x" * 2000
    for i in range(2000):
        api.hub.publish(trade("binance", "BTC-USDT", float(i), pad))
    api.hub.publish(trade("binance", "ETH-USDT", 7.0))
    await wait_until(lambda: api.server.ws.stats()["dropped"] >= 2000 - 50 - 1)
    assert api.hub.stats()["subscribers"]["api.ws.trades"]["dropped"] == 0
    # the fast client and the REST API are served meanwhile
    assert (await fast.receive_json(timeout=5))["data"]["price"] == 7.0
    assert (await api.get("/api/v1/status"))[0] == 200
    # the slow client reads now: a drop notice precedes the newest events
    first = await slow.receive_json(timeout=5)
    assert first["channel"] == "notice"
    assert first["data"]["code"] == "dropped"
    assert first["data"]["dropped"] >= 1900

    # keep flooding without reading until the stuck client is cut off
    async def flood() -> bool:
        for i in range(200):
            api.hub.publish(trade("binance", "BTC-USDT", float(i), pad))
        await asyncio.sleep(0)
        return api.server.ws.disconnected_slow == 1

    await wait_until(flood, timeout=30, interval=0.01, message="slow client disconnected")
    await wait_until(lambda: api.server.ws.stats()["clients"] == 1)
    assert api.hub.stats()["subscribers"]["api.ws.trades"]["errors"] == 0
    async with api.http.get(api.url + "/metrics", headers=bearer(READ)) as r:
        text = await r.text()
    assert "cryptomon_ws_dropped_total" in text
    assert "cryptomon_ws_disconnected_slow_total 1.0" in text
    api.hub.publish(trade("binance", "ETH-USDT", 8.0))
    assert (await fast.receive_json(timeout=5))["data"]["price"] == 8.0
    await fast.close()
    await slow.close()


@pytest.mark.asyncio
async def test_signals_channel_pushes_graded_signals(start_api: StartApi) -> None:
    """The signals channel (token needed) pushes each Signal with its grade and strength."""
    api = await start_api()
    ws = await connect(api)
    assert (await send(ws, subscribe("signals", symbols=["BTC/USDT"])))["channel"] == "subscribed"
    api.hub.publish(
        Signal(
            exchange="binance",
            symbol="BTC-USDT",
            ts=T0,
            ts_recv=T0,
            side="buy",
            strength=0.82,
            source="indicators",
            grade=SignalGrade.STRONG,
        )
    )
    got = await ws.receive_json(timeout=5)
    assert got["channel"] == "signals"
    assert (got["data"]["type"], got["data"]["grade"], got["data"]["strength"]) == (
        "Signal",
        "strong",
        0.82,
    )
    await ws.close()


@pytest.mark.asyncio
async def test_anonymous_clients_cannot_lock_token_holders_out(start_api: StartApi) -> None:
    """With public_read, anonymous clients that fill ws_max_clients are refused beyond it, but a
    token holder still connects: the oldest anonymous client is closed (1013, try again later)
    to make room, so nobody without a token can keep the dashboard's live feed out."""
    api = await start_api(config=api_config(ws_max_clients=2, public_read=True))
    url = api.url + "/ws"
    oldest, newer = await api.http.ws_connect(url), await api.http.ws_connect(url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await api.http.ws_connect(url)
    assert exc.value.status == 503
    holder = await connect(api)
    assert (await send(holder, {"msg_type": "Ping"}))["channel"] == "pong"
    closing = await oldest.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert closing.data == aiohttp.WSCloseCode.TRY_AGAIN_LATER
    assert (await send(newer, {"msg_type": "Ping"}))["channel"] == "pong"
    assert api.server.ws.stats()["clients"] == 2
    assert api.server.ws.stats()["evicted"] == 1
    # token holders fill the rest: nobody left to evict, the next token holder is refused
    second_holder = await connect(api)
    assert (await send(second_holder, {"msg_type": "Ping"}))["channel"] == "pong"
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await connect(api)
    assert exc.value.status == 503
    for ws in (oldest, newer, holder, second_holder):
        await ws.close()


@pytest.mark.asyncio
async def test_one_address_cannot_take_every_anonymous_slot(start_api: StartApi) -> None:
    """With public_read, ws_max_clients 4 and ws_max_anonymous_per_ip 2: the third anonymous
    client from 127.0.0.1 is refused (429 naming the key) and the slots it would have taken
    serve an anonymous reader from 127.0.0.2; a token holder from 127.0.0.1 still connects."""
    api = await start_api(
        config=api_config(ws_max_clients=4, ws_max_anonymous_per_ip=2, public_read=True)
    )
    url = api.url + "/ws"
    mine = [await api.http.ws_connect(url) for _ in range(2)]
    for _ in range(2):
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await api.http.ws_connect(url)
        assert exc.value.status == 429
    async with api.http.get(url) as r:  # the refusal's body, as a plain GET gets it
        answer = await r.json()
    assert answer["error"]["code"] == "too_many_clients_from_address"
    assert "api.ws_max_anonymous_per_ip" in answer["error"]["message"]
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other) as session:
        ws = await session.ws_connect(url)
        assert (await send(ws, {"msg_type": "Ping"}))["channel"] == "pong"
        holder = await connect(api)
        assert (await send(holder, {"msg_type": "Ping"}))["channel"] == "pong"
        assert api.server.ws.stats()["clients"] == 4
        for client in (*mine, ws, holder):
            await client.close()
