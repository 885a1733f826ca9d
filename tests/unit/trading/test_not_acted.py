"""The signals the engine makes no order of are counted by reason (``SignalTrader.not_acted``,
keyed as ``entries.NOT_ACTED``) and shown in the trading stats and /metrics."""

from __future__ import annotations

import pytest

from cryptomon.api.metrics_sources import trading_metrics
from cryptomon.events import Signal
from cryptomon.kinds import SignalGrade
from cryptomon.trading.entries import NOT_ACTED
from tests.unit.trading.helpers import EX, SYM, book, paper_engine, trading_config
from tests.unit.trading.test_sizing_specs import INVERSE, build

T_SIGNAL = 1_700_000_000.0  # the ManualClock's start: a signal made now


def signal(n: int, side: str = "buy", strength: float = 0.9, **kw: object) -> Signal:
    fields: dict[str, object] = {
        "exchange": EX,
        "symbol": SYM,
        "ts": T_SIGNAL,
        "ts_recv": T_SIGNAL,
        "side": side,
        "strength": strength,
        "source": "test",
        "reason": "test",
        "id": f"sig-{n}",
    }
    fields.update(kw)
    return Signal(**fields)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_each_reason_for_no_order_is_counted() -> None:
    """Weak, graded ignore, another market, too old, a sell while flat, no mid price, an
    order still working, the side held, below one lot and auto trading off: each signal
    counted once under its key; the signals that made an order are not counted."""
    engine, _broker, hub, _market, clock = paper_engine(
        config=trading_config(exchange=EX, symbols=[SYM, "ETH-USDT"])
    )
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    await engine.start()
    handle = engine.handle_signal
    assert await handle(signal(1, strength=0.5)) is None
    assert await handle(signal(2, grade=SignalGrade.IGNORE)) is None
    assert await handle(signal(3, symbol="SOL-USDT")) is None
    assert await handle(signal(4, exchange="kraken")) is None
    assert await handle(signal(5, ts=T_SIGNAL - 3600)) is None
    assert await handle(signal(6, side="sell")) is None
    assert await handle(signal(7, symbol="ETH-USDT")) is None  # no book: no mid
    working = await engine.place_manual_order(
        actor="test", exchange=EX, symbol=SYM, side="buy", amount="0.1", type="limit", price="99"
    )
    assert working is not None
    assert await handle(signal(8)) is None
    await engine.cancel_order(working["client_order_id"], actor="test")
    assert await handle(signal(9)) is not None  # acted on: not counted
    assert await handle(signal(10)) is None
    engine.update_limits("test", max_position_size=0.001)
    assert await handle(signal(11, side="sell")) is not None  # a close is not sized
    assert await handle(signal(12)) is None
    engine.update_limits("test", auto_trading_enabled=False)
    assert await handle(signal(13)) is None
    expected = {
        "weak": 2,
        "not_traded": 2,
        "too_old": 1,
        "no_short": 1,
        "no_price": 1,
        "order_working": 1,
        "side_held": 1,
        "below_lot": 1,
        "auto_off": 1,
    }
    assert dict(engine.entries.not_acted) == expected
    assert set(expected) <= set(NOT_ACTED)
    # below_lot is also a refused RiskEvent: not among the signals neither ordered nor refused
    assert engine.entries.not_acted_unrefused() == {
        k: n for k, n in expected.items() if k != "below_lot"
    }
    stats = engine.stats()
    assert stats["signals_not_acted"] == dict(engine.entries.not_acted.most_common())
    assert next(iter(stats["signals_not_acted"].values())) == 2
    families = {f.name: f for f in trading_metrics(stats, [], "active")}
    samples = {
        s.labels["reason"]: s.value for s in families["cryptomon_trading_signals_not_acted"].samples
    }
    assert samples == {k: float(n) for k, n in expected.items()}
    await engine.stop()


@pytest.mark.asyncio
async def test_an_unknown_spec_counts_each_signal_but_refuses_once() -> None:
    """A tracked market without a spec: both signals count as unknown_spec, the first one
    is also a refusal (its RiskEvent), so one is neither ordered nor refused."""
    engine, _broker, _hub = build([INVERSE])
    await engine.start()
    assert await engine.handle_signal(signal(1)) is None
    assert await engine.handle_signal(signal(2)) is None
    assert engine.entries.not_acted == {"unknown_spec": 2}
    assert engine.entries.not_acted_unrefused() == {"unknown_spec": 1}
    await engine.stop()


@pytest.mark.asyncio
async def test_a_dropped_signal_is_counted_as_handle_would() -> None:
    """``count_dropped`` (a fast backtest's signals the engine never sees) gives the reason
    ``handle`` would: weak (an ungraded signal graded by trading.grades), the side held, a
    sell while flat; a signal the engine would act on is a bug."""
    engine, _broker, _hub, _market, _clock = paper_engine(config=trading_config())
    tally = engine.entries.count_dropped
    tally(EX, SYM, "buy", 0.5, None)
    tally(EX, SYM, "buy", 0.9, SignalGrade.IGNORE)
    tally(EX, SYM, "sell", 0.9, None)
    with pytest.raises(AssertionError, match="is acted on"):
        tally(EX, SYM, "buy", 0.9, None)
    assert engine.entries.not_acted == {"weak": 2, "no_short": 1}


@pytest.mark.asyncio
async def test_dropped_signals_counted_at_once_are_counted_as_one_by_one() -> None:
    """``count_dropped_all`` (a batch of one market's dropped signals) counts each as
    ``count_dropped`` does, in order: one acted on is a bug, raised after those before it."""
    drops: list[tuple[str, float, SignalGrade | None]] = [
        ("buy", 0.5, None),
        ("sell", 0.9, None),
        ("buy", 0.9, SignalGrade.IGNORE),
        ("sell", 0.7, SignalGrade.STRONG),
    ]
    one, *_ = paper_engine(config=trading_config())
    for drop in drops:
        one.entries.count_dropped(EX, SYM, *drop)
    batch, *_ = paper_engine(config=trading_config())
    batch.entries.count_dropped_all(EX, SYM, drops)
    assert batch.entries.not_acted == one.entries.not_acted == {"weak": 2, "no_short": 2}
    with pytest.raises(AssertionError, match="is acted on"):
        batch.entries.count_dropped_all(EX, SYM, [("sell", 0.9, None), ("buy", 0.9, None)])
    assert batch.entries.not_acted == {"weak": 2, "no_short": 3}
