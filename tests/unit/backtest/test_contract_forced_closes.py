"""A backtest of contract markets (the pipeline a recording replay builds, on its ManualClock)
replays the paper venue's forced closes: a perpetual long liquidated when the price falls
through its estimate, a dated future settled at its expiry. Each is in the ledger, with its
exit reason, as soon as the pipeline has settled the event that caused it, and two runs give
the same fills."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from typing import Any

from cryptomon.backtest.pipeline import Pipeline
from cryptomon.config import Settings
from cryptomon.events import Fill, OrderIntent, Trade
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.instruments import InstrumentKind
from cryptomon.market.registry import InstrumentRegistry
from tests.unit.trading.helpers import book
from tests.unit.trading.test_futures_paper import EX, PERP, SPEC

D = Decimal
START = 1_700_000_000.0
FUT = "BTC-USDT-23N15"
FUTURE = replace(SPEC, symbol=FUT, kind=InstrumentKind.FUTURE, expiry=START + 600)


def settings() -> Settings:
    return Settings.model_validate(
        {
            "trading": {
                "auto_trading_enabled": False,
                "allow_short": True,
                "leverage": 5.0,
                "max_leverage": 5.0,
                "max_position_size": 60_000.0,
                "max_symbol_exposure": 60_000.0,
                "max_total_exposure": 60_000.0,
                "price_band_percentage": 50.0,
                "paper": {"quote_currency": "USDT", "starting_balance": 20_000.0},
                "signal_rules": [],
                "indicators": {"enabled": False},
            },
            "anomaly_detection": {"enabled": False},
            "logging": {"level": "WARNING"},
        }
    )


def trade(pipe: Pipeline, symbol: str, price: float) -> None:
    now = pipe.clock.time()
    pipe.hub.publish(
        Trade(exchange=EX, symbol=symbol, ts=now, ts_recv=now, price=price, amount=1.0, side="sell")
    )


async def run() -> tuple[list[tuple[Any, ...]], list[tuple[str, str]]]:
    registry = InstrumentRegistry()
    registry.add([SPEC, FUTURE])
    pipe = Pipeline(settings(), start=START, inputs=MarketInputs(registry=registry))
    fills: list[Fill] = []
    pipe.hub.subscribe(Fill, fills.append, name="test.fills")
    await pipe.start()
    for symbol in (PERP, FUT):
        book(pipe.hub, pipe.clock, bid=19999.5, ask=20000.5, size=10.0, exchange=EX, symbol=symbol)
    await pipe.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.5"
    )
    await pipe.engine.place_manual_order(
        actor="t", exchange=EX, symbol=FUT, side="sell", amount="0.2"
    )
    await pipe.settle()
    exits: list[tuple[str, str]] = []
    for step, price in enumerate((19500.0, 17000.0, 15000.0, 15500.0)):
        pipe.clock.set(START + 60 * (step + 1))
        trade(pipe, PERP, price)
        trade(pipe, FUT, price + 100)
        await pipe.settle()
        closed = pipe.ledger.closed
        if price == 15000.0:  # the estimate 16100.4025 crossed: closed by the settle
            assert [(t.symbol, t.exit_reason) for t in closed] == [(PERP, "liquidation")]
    pipe.clock.set(START + 700)  # past the future's expiry: the next event settles it
    trade(pipe, PERP, 15600.0)
    await pipe.settle()
    exits = [(t.symbol, t.exit_reason) for t in pipe.ledger.closed]
    await pipe.stop()
    return [(f.symbol, f.side, f.amount, f.price, f.fee, f.ts) for f in fills], exits


def test_liquidation_and_expiry_replay_deterministically() -> None:
    first, exits = asyncio.run(run())
    second, again = asyncio.run(run())
    assert first == second
    assert exits == again == [(PERP, "liquidation"), (FUT, "settlement")]
    liquidation = (PERP, "sell", D("0.5"), D("20000.5") * D("0.805"))
    assert liquidation in [f[:4] for f in first]
    settled = [f for f in first if f[0] == FUT and f[1] == "buy"]
    assert settled == [(FUT, "buy", D("0.2"), D(15600), D(0), START + 600)]


async def stale_exit() -> tuple[Decimal, list[str]]:
    """A long's stop fires, the venue closes the long itself first and a short opens before
    the fired exit runs: the exit is the long's, not the short's."""
    registry = InstrumentRegistry()
    registry.add([SPEC])
    pipe = Pipeline(settings(), start=START, inputs=MarketInputs(registry=registry))
    intents: list[str] = []
    await pipe.start()
    book(pipe.hub, pipe.clock, bid=19999.5, ask=20000.5, size=10.0, exchange=EX, symbol=PERP)
    await pipe.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.5", stop_loss="19000"
    )
    await pipe.settle()
    guard = pipe.engine.protection
    long_stop = guard.protections[(EX, PERP)]
    # the venue's close of the long (as an adopted liquidation would leave it), then a short
    await pipe.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.5", reduce_only=True
    )
    await pipe.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.3", stop_loss="21000"
    )
    await pipe.settle()
    pipe.hub.subscribe(OrderIntent, lambda i: intents.append(i.origin), name="test.intents")
    long_stop.exiting = True
    await guard._exit(long_stop, "stop_loss")  # the task the long's trigger spawned
    await pipe.settle()
    held = pipe.engine.portfolio.amount(EX, PERP)
    await pipe.stop()
    return held, intents


def test_a_stop_exit_fired_before_the_venue_closed_its_position_leaves_the_next_one() -> None:
    """The short of 0.3 stays open and no order is sent; the long's stop exit bought the
    short back (a backtest liquidated a long whose stop had fired on the same book, opened
    a short on the next signal and closed it at once with the long's stop_loss exit)."""
    held, intents = asyncio.run(stale_exit())
    assert (held, intents) == (D("-0.3"), [])
