"""InstrumentRefresher: loads at start, refreshes on the clock, reports delisted symbols."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cryptomon.clock import ManualClock
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.market.refresh import InstrumentRefresher
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.venues import specs_from_recording
from tests.util import wait_until


@pytest.mark.asyncio
async def test_refresh_on_the_clock_reports_delisted_symbols(shared_data: Path) -> None:
    """Specs load at start; after interval_s a venue that dropped a symbol is reported."""
    listed = specs_from_recording(shared_data / "HUOBI_SWAP.0")
    calls: list[int] = []

    async def venue() -> list[InstrumentSpec]:
        calls.append(1)
        return listed

    delisted: list[tuple[str, set[str]]] = []
    clock = ManualClock()
    registry = InstrumentRegistry(loaders={"huobi_swap": venue})
    refresher = InstrumentRefresher(
        registry=registry,
        exchanges=["huobi_swap"],
        clock=clock,
        interval_s=3600,
        on_delisted=lambda exchange, symbols: delisted.append((exchange, symbols)),
    )
    await refresher.start()
    try:
        assert registry.get("huobi_swap", "SOS-USDT-PERP") is not None
        assert len(calls) == 1
        await wait_until(lambda: clock.sleepers == 1, message="the refresher to sleep")
        listed = [s for s in listed if s.symbol != "SOS-USDT-PERP"]
        with capture_logs() as logs:
            clock.advance(3600)
            await wait_until(lambda: refresher.refreshes == 1, message="one refresh")
        assert delisted == [("huobi_swap", {"SOS-USDT-PERP"})]
        assert logs[0]["event"] == "instruments_delisted"
        assert len(calls) == 2
    finally:
        await refresher.stop()


def test_interval_must_be_positive() -> None:
    """A zero refresh interval is refused with the field named."""
    with pytest.raises(ValueError, match="interval_s: got 0; expected a positive number"):
        InstrumentRefresher(
            registry=InstrumentRegistry(), exchanges=[], clock=ManualClock(), interval_s=0
        )


@pytest.mark.asyncio
async def test_a_venue_down_at_start_is_retried_and_reports_the_late_load(
    shared_data: Path,
) -> None:
    """No specs at start (venue down): the daemon starts anyway; RETRY_S later the venue
    answers, the specs are held and ``on_loaded`` tells the feeds to look units up again."""
    from cryptomon.market.refresh import RETRY_S

    listed = specs_from_recording(shared_data / "HUOBI_SWAP.0")
    up = [False]

    async def venue() -> list[InstrumentSpec]:
        if not up[0]:
            raise ConnectionError("venue down")
        return listed

    loaded: list[str] = []
    clock = ManualClock()
    registry = InstrumentRegistry(loaders={"huobi_swap": venue})
    refresher = InstrumentRefresher(
        registry=registry,
        exchanges=["huobi_swap"],
        clock=clock,
        interval_s=3600,
        on_loaded=loaded.append,
    )
    await refresher.start()
    try:
        assert registry.specs("huobi_swap") == []
        await wait_until(lambda: clock.sleepers == 1, message="the refresher to sleep")
        up[0] = True
        clock.advance(RETRY_S)
        await wait_until(lambda: loaded == ["huobi_swap"], message="the late load")
        assert registry.get("huobi_swap", "SOS-USDT-PERP") is not None
    finally:
        await refresher.stop()
