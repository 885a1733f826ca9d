"""Hub: fan-out, filters, isolation, overflow policies, stats, ordering."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from cryptomon.events import Anomaly, Event, Ticker, Trade
from cryptomon.hub import Hub
from tests import stubs
from tests.util import wait_until


def trade(i: int = 0, *, exchange: str = "binance", symbol: str = "BTC-USDT") -> Trade:
    return stubs.trade(float(i), price=100.0 + i, exchange=exchange, symbol=symbol, trade_id=str(i))


def anomaly(i: int = 0) -> Anomaly:
    return stubs.anomaly(ts=float(i), ts_recv=float(i), value=float(i), confidence=90.0)


def test_inline_fan_out_reaches_every_subscriber_of_the_type() -> None:
    """Each inline subscriber of a type gets every event of that type, others get none."""
    hub = Hub()
    got: dict[str, list[Event]] = {"a": [], "b": [], "t": []}
    hub.subscribe(Trade, got["a"].append, name="a")
    hub.subscribe(Trade, got["b"].append, name="b")
    hub.subscribe(Ticker, got["t"].append, name="t")
    events = [trade(i) for i in range(5)]
    for e in events:
        hub.publish(e)
    assert got["a"] == events
    assert got["b"] == events
    assert got["t"] == []


def test_subscribing_to_several_types_and_the_base_class() -> None:
    """A subscriber may take a tuple of types, or the Event base class for everything."""
    hub = Hub()
    some: list[Event] = []
    everything: list[Event] = []
    hub.subscribe((Trade, Anomaly), some.append)
    hub.subscribe(Event, everything.append)
    t = Ticker(exchange="x", symbol="A-B", ts=0, ts_recv=0, bid=1, ask=2)
    for e in (trade(), anomaly(), t):
        hub.publish(e)
    assert [type(e) for e in some] == [Trade, Anomaly]
    assert [type(e) for e in everything] == [Trade, Anomaly, Ticker]


def test_exchange_and_symbol_filters() -> None:
    """Filters deliver only matching exchange/symbol events and count deliveries."""
    hub = Hub()
    got: list[Trade] = []
    sub = hub.subscribe(Trade, got.append, exchanges=["okx"], symbols=["ETH-USDT"])
    hub.publish(trade(1, exchange="binance", symbol="ETH-USDT"))
    hub.publish(trade(2, exchange="okx", symbol="BTC-USDT"))
    hub.publish(trade(3, exchange="okx", symbol="ETH-USDT"))
    assert [t.trade_id for t in got] == ["3"]
    assert sub.delivered == 1


def test_raising_handler_is_isolated_counted_and_logged_once_per_interval() -> None:
    """A handler that raises never stops the others; errors are counted, logs rate-limited."""
    hub = Hub()
    got: list[Trade] = []

    def boom(_: Trade) -> None:
        raise RuntimeError("bad subscriber")

    hub.subscribe(Trade, boom, name="boom")
    hub.subscribe(Trade, got.append, name="good")
    with capture_logs() as logs:
        for i in range(50):
            hub.publish(trade(i))
    assert len(got) == 50
    stats = hub.stats()["subscribers"]
    assert stats["boom"]["errors"] == 50
    assert stats["good"]["errors"] == 0
    errors = [e for e in logs if e["event"] == "hub.subscriber_error"]
    assert len(errors) == 1
    assert errors[0]["subscriber"] == "boom"


def test_unsubscribe_stops_delivery() -> None:
    """After close() a subscriber receives nothing more."""
    hub = Hub()
    got: list[Trade] = []
    sub = hub.subscribe(Trade, got.append)
    hub.publish(trade(1))
    sub.close()
    hub.publish(trade(2))
    assert len(got) == 1


def test_stats_per_topic_and_subscriber() -> None:
    """Stats count published per topic and delivered per subscriber since it subscribed."""
    hub = Hub()
    hub.publish(trade(0))  # before anyone listens
    first: list[Trade] = []
    hub.subscribe(Trade, first.append, name="first")
    hub.publish(trade(1))
    hub.publish(anomaly(1))
    stats = hub.stats()
    assert stats["topics"]["Trade"]["published"] == 2
    assert stats["topics"]["Anomaly"]["published"] == 1
    assert stats["subscribers"]["first"]["delivered"] == 1
    assert stats["subscribers"]["first"]["kind"] == "inline"


def test_nested_publish_from_a_handler() -> None:
    """A handler may publish (detectors publish anomalies while handling trades)."""
    hub = Hub()
    anomalies: list[Anomaly] = []
    hub.subscribe(Trade, lambda t: hub.publish(anomaly(int(t.price))))
    hub.subscribe(Anomaly, anomalies.append)
    hub.publish(trade(5))
    assert [a.value for a in anomalies] == [105.0]


def test_invalid_subscriptions_are_refused() -> None:
    """Unknown overflow policy and empty type lists are clear errors."""
    hub = Hub()

    async def handler(batch: list[Event]) -> None:
        return None

    with pytest.raises(ValueError, match="overflow policy"):
        hub.subscribe_queued(Trade, handler, name="x", policy="drop_newest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one event type"):
        hub.subscribe([], lambda e: None)


@pytest.mark.asyncio
async def test_queued_subscriber_receives_batches_in_order() -> None:
    """A queued subscriber gets every event, in publish order, in batches."""
    hub = Hub()
    batches: list[list[Trade]] = []

    async def handler(batch: list[Trade]) -> None:
        batches.append(batch)

    hub.subscribe_queued(Trade, handler, name="store", policy="never_drop", batch_size=7)
    await hub.start()
    for i in range(100):
        hub.publish(trade(i))
    await hub.join()
    flat = [t.trade_id for b in batches for t in b]
    assert flat == [str(i) for i in range(100)]
    assert max(len(b) for b in batches) <= 7
    assert hub.stats()["subscribers"]["store"]["delivered"] == 100
    await hub.stop()


@pytest.mark.asyncio
async def test_drop_oldest_bounds_the_queue_and_counts_drops() -> None:
    """drop_oldest keeps the newest maxsize events and counts what it dropped."""
    hub = Hub()
    got: list[Trade] = []
    gate = asyncio.Event()

    async def slow(batch: list[Trade]) -> None:
        await gate.wait()
        got.extend(batch)

    sub = hub.subscribe_queued(Trade, slow, name="ws", policy="drop_oldest", maxsize=10)
    await hub.start()
    hub.publish(trade(0))
    await wait_until(lambda: len(sub.queue) == 0, message="first event taken")
    for i in range(1, 101):
        hub.publish(trade(i))
    assert len(sub.queue) == 10
    assert sub.dropped == 90
    gate.set()
    await hub.join()
    assert [t.trade_id for t in got] == ["0"] + [str(i) for i in range(91, 101)]
    stats = hub.stats()["subscribers"]["ws"]
    assert stats["dropped"] == 90
    assert stats["max_depth"] == 10
    assert stats["policy"] == "drop_oldest"
    await hub.stop()


@pytest.mark.asyncio
async def test_never_drop_keeps_everything_and_warns_at_high_water() -> None:
    """never_drop grows past high_water without loss and warns once."""
    hub = Hub()
    got: list[Anomaly] = []
    gate = asyncio.Event()

    async def slow(batch: list[Anomaly]) -> None:
        await gate.wait()
        got.extend(batch)

    sub = hub.subscribe_queued(
        Anomaly, slow, name="durable", policy="never_drop", maxsize=5, high_water=20
    )
    await hub.start()
    with capture_logs() as logs:
        for i in range(200):
            hub.publish(anomaly(i))
    warnings = [e for e in logs if e["event"] == "hub.queue_high_water"]
    assert len(warnings) == 1
    assert sub.dropped == 0
    gate.set()
    await hub.join()
    assert [a.value for a in got] == [float(i) for i in range(200)]
    await hub.stop()


@pytest.mark.asyncio
async def test_raising_queued_handler_does_not_stop_its_task_or_others() -> None:
    """A queued handler that raises keeps receiving later batches; others are unaffected."""
    hub = Hub()
    good: list[Trade] = []
    calls = 0

    async def flaky(batch: list[Trade]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first batch fails")

    async def ok(batch: list[Trade]) -> None:
        good.extend(batch)

    bad = hub.subscribe_queued(Trade, flaky, name="flaky", policy="never_drop", batch_size=1)
    hub.subscribe_queued(Trade, ok, name="ok", policy="never_drop")
    await hub.start()
    for i in range(3):
        hub.publish(trade(i))
    await hub.join()
    assert calls == 3
    assert bad.errors == 1
    assert len(good) == 3
    await hub.stop()


@pytest.mark.asyncio
async def test_stop_drains_queued_subscribers() -> None:
    """hub.stop() hands every queued event to its handler before returning."""
    hub = Hub()
    got: list[Trade] = []

    async def handler(batch: list[Trade]) -> None:
        await asyncio.sleep(0)
        got.extend(batch)

    hub.subscribe_queued(Trade, handler, name="h", policy="never_drop", batch_size=3)
    await hub.start()
    for i in range(20):
        hub.publish(trade(i))
    await hub.stop(timeout=5)
    assert len(got) == 20


@pytest.mark.asyncio
async def test_queued_subscription_made_after_start_runs() -> None:
    """Subscribing after the hub started starts the drain task at once."""
    hub = Hub()
    await hub.start()
    got: list[Trade] = []

    async def handler(batch: list[Trade]) -> None:
        got.extend(batch)

    hub.subscribe_queued(Trade, handler, name="late", policy="drop_oldest", maxsize=100)
    hub.publish(trade(1))
    await wait_until(lambda: len(got) == 1, message="late subscriber delivery")
    await hub.stop()


def test_publish_built_builds_only_for_a_subscriber_and_counts_either_way() -> None:
    """An event nobody takes is counted, not built; with a subscriber it is built once and
    delivered like a published one."""
    hub = Hub()
    built: list[int] = []

    def build(i: int) -> Trade:
        built.append(i)
        return trade(i)

    hub.publish_built(Trade, build, 1)
    assert built == []
    assert hub.stats()["topics"]["Trade"]["published"] == 1
    got: list[Trade] = []
    hub.subscribe(Trade, got.append, name="t")
    hub.publish_built(Trade, build, 2)
    assert built == [2]
    assert [t.trade_id for t in got] == ["2"]
    assert hub.stats()["topics"]["Trade"]["published"] == 2
