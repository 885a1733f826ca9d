"""Keeping instrument specs current: :class:`InstrumentRefresher` loads every exchange's
specs at start (cache first, then the venue) and re-reads the venues every ``interval_s``,
reporting the symbols a venue stopped listing (the delisting input of the quality layer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog

from cryptomon.clock import Clock
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()

RETRY_S = 30.0  # an exchange whose specs could not be loaded at start is asked again this often
START_TIMEOUT_S = 10.0  # the longest the daemon's start waits for one venue's instrument list

OnDelisted = Callable[[str, set[str]], None]
"""``(exchange, symbols)``: called when a refresh finds held symbols no longer listed."""


class InstrumentRefresher:
    """Loads at ``start()``, refreshes periodically in a task, stops cleanly."""

    name = "instruments"

    def __init__(
        self,
        *,
        registry: InstrumentRegistry,
        exchanges: Sequence[str],
        clock: Clock,
        interval_s: float,
        on_delisted: OnDelisted | None = None,
        on_loaded: Callable[[str], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s: got {interval_s}; expected a positive number")
        self._registry = registry
        self._exchanges = list(exchanges)
        self._clock = clock
        self._interval = interval_s
        self._on_delisted = on_delisted
        self._on_loaded = on_loaded  # specs arrived late for an exchange: units looked up again
        self._task: asyncio.Task[None] | None = None
        self._missing: set[str] = set()  # exchanges whose first load found nothing: retried
        self.refreshes = 0

    async def start(self) -> None:
        """Load every exchange's specs, then refresh them in the background."""
        for exchange in self._exchanges:
            try:  # a slow venue must not hold the daemon's start: retried in the background
                count = await asyncio.wait_for(self._registry.load(exchange), START_TIMEOUT_S)
            except TimeoutError:
                log.warning("instruments_load_slow", exchange=exchange, timeout_s=START_TIMEOUT_S)
                count = 0
            log.info("instruments_loaded", exchange=exchange, count=count)
            if count == 0:
                self._missing.add(exchange)
        self._task = asyncio.create_task(self._run(), name="instrument-refresh")

    async def stop(self) -> None:
        """Cancel the refresh task and wait for it."""
        await cancel_and_wait(self._task)
        self._task = None

    async def refresh_once(self) -> None:
        """Re-read every exchange's venue now."""
        for exchange in self._exchanges:
            gone = await self._registry.refresh(exchange)
            if gone:
                log.warning("instruments_delisted", exchange=exchange, symbols=sorted(gone))
                if self._on_delisted is not None:
                    self._on_delisted(exchange, gone)
        self.refreshes += 1

    async def _run(self) -> None:
        waited = 0.0
        while True:
            step = min(self._interval, RETRY_S) if self._missing else self._interval
            await self._clock.sleep(step)
            waited += step
            for exchange in sorted(self._missing):
                if await self._registry.load(exchange):
                    self._missing.discard(exchange)
                    log.info("instruments_loaded", exchange=exchange, retried=True)
                    if self._on_loaded is not None:
                        self._on_loaded(exchange)
            if waited >= self._interval:
                waited = 0.0
                await self.refresh_once()
