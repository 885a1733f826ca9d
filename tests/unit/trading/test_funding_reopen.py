"""Funding of a round trip that closed before the engine asked for it: a perpetual closed and
opened again between two funding syncs. The payment belongs to the first trip (its time is
before the new position opened); it is booked there exactly once, in the realized PnL, the
trip's PnL and the cash, never on the new position, and a later sync does not book it again."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.unit.trading.test_futures_paper import EX, PERP, build, pay_funding, quote

D = Decimal


async def order(engine, side: str, *, reduce_only: bool = False) -> None:  # type: ignore[no-untyped-def]
    await engine.place_manual_order(
        actor="t",
        exchange=EX,
        symbol=PERP,
        side=side,
        amount="0.1",
        stop_loss="19400" if side == "buy" and not reduce_only else None,
        reduce_only=reduce_only,
    )


@pytest.mark.asyncio
async def test_funding_of_a_trip_closed_and_reopened_between_syncs_lands_once() -> None:
    """Long 0.1 pays 0.2 of funding, is closed and a new long opened before the next sync:
    the sync books the 0.2 on the closed trip (and the account's realized PnL and cash: the
    engine's cash equals the paper venue's balance), not on the new position."""
    engine, broker, hub, clock = build()
    quote(hub, clock, 20000)
    await engine.start()
    await order(engine, "buy")
    pos = engine.portfolio.positions[(EX, PERP)]
    pay_funding(hub, clock, 0.0001, 20000.0)  # -0.2 at the funding time
    clock.advance(5)
    await order(engine, "sell", reduce_only=True)
    assert pos.amount == 0
    closed = engine.portfolio.trades[-1]
    clock.advance(5)
    await order(engine, "buy")
    assert pos.amount == D("0.1")
    realized = pos.realized_pnl
    assert await engine.funding.sync() == 1
    assert pos.realized_pnl == realized - D("0.2")
    assert engine.portfolio.trades[-1].pnl == closed.pnl - D("0.2")
    assert len(engine.portfolio.trades) == 1
    assert pos.contract is not None
    assert pos.contract.funding == 0  # the new trip paid nothing
    assert engine.portfolio.cash == (await broker.fetch_balances())["USDT"]
    assert await engine.funding.sync() == 0  # once
    assert engine.portfolio.cash == (await broker.fetch_balances())["USDT"]
    await engine.stop()


@pytest.mark.asyncio
async def test_funding_of_a_long_flipped_short_between_syncs_lands_on_the_long() -> None:
    """One sell of 0.2 flips the 0.1 long that paid 0.2 of funding into a 0.1 short before
    the next sync: the payment is the long's (its trip and the realized PnL), not the
    short's, and the cash equals the paper venue's balance."""
    engine, broker, hub, clock = build()
    quote(hub, clock, 20000)
    await engine.start()
    await order(engine, "buy")
    pos = engine.portfolio.positions[(EX, PERP)]
    pay_funding(hub, clock, 0.0001, 20000.0)
    clock.advance(5)
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.2", stop_loss="20600"
    )
    assert pos.amount == D("-0.1")
    long_trip = engine.portfolio.trades[-1]
    assert long_trip.side == "long"
    assert await engine.funding.sync() == 1
    assert engine.portfolio.trades[-1].pnl == long_trip.pnl - D("0.2")
    assert pos.contract is not None
    assert pos.contract.funding == 0
    assert engine.portfolio.cash == (await broker.fetch_balances())["USDT"]
    await engine.stop()


def _spot_fill(trade_id: str, side: str, ts: float):  # type: ignore[no-untyped-def]
    from cryptomon.events import Fill

    return Fill(
        exchange=EX,
        symbol="ETH-USDT",
        ts=ts,
        ts_recv=ts,
        trade_id=trade_id,
        client_order_id="late",
        side=side,  # type: ignore[arg-type]
        amount=D("1"),
        price=D("1000"),
        fee=D(0),
        fee_currency="USDT",
        liquidity="taker",
    )


@pytest.mark.asyncio
async def test_a_late_fill_with_an_older_time_does_not_hide_a_trip_closed_since_the_sync() -> None:
    """The perpetual's trip (paid 0.2 of funding) closes and a new one opens between two
    syncs; then a fill the venue made long before, learnt only now (its time older than the
    last sync), closes a trip on another market: appended after the perpetual's trip, with an
    older close. The next sync still finds the closed perpetual trip and books its payment on
    it. Before, the search for trips closed since the last sync stopped at the late trip (it
    assumed close order) and the payment was dropped."""
    engine, _broker, hub, clock = build()
    quote(hub, clock, 20000)
    await engine.start()
    await engine.funding.sync()
    old = clock.time() - 600  # before the sync: a venue trade time learnt late
    await order(engine, "buy")
    pos = engine.portfolio.positions[(EX, PERP)]
    pay_funding(hub, clock, 0.0001, 20000.0)  # -0.2 at the funding time
    clock.advance(5)
    await order(engine, "sell", reduce_only=True)
    perp_trip = engine.portfolio.trades[-1]
    clock.advance(5)
    await order(engine, "buy")
    engine.executor.apply_fill(None, _spot_fill("late-1", "buy", old))
    engine.executor.apply_fill(None, _spot_fill("late-2", "sell", old + 1))
    late = engine.portfolio.trades[-1]
    assert late.symbol == "ETH-USDT"
    assert late.closed == old + 1
    assert await engine.funding.sync() == 1
    assert engine.portfolio.trades[-2].pnl == perp_trip.pnl - D("0.2")
    assert pos.contract is not None
    assert pos.contract.funding == 0
    await engine.stop()
