"""Which spec applies to a market: :class:`InstrumentRegistry` resolves ``(exchange, symbol)``
from memory, then the database cache, then the venue (an injected loader), and remembers the
markets it could not resolve so sizing can be refused on them.

``get`` is the hot-path lookup (a dict read, no I/O); ``resolve`` and ``load`` do the I/O at
start and on refresh. Exchanges are matched case-insensitively (``binance`` = ``BINANCE``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol

import structlog

from cryptomon.market.instruments import InstrumentSpec

log = structlog.get_logger()

Loader = Callable[[], Awaitable[Iterable[InstrumentSpec]]]
"""Fetches every spec an exchange lists (ccxt ``load_markets``, the simulator, a recording)."""


class InstrumentCache(Protocol):
    """Where specs survive a restart (``cryptomon.store.instruments.InstrumentRepository``)."""

    async def save(self, specs: Sequence[InstrumentSpec]) -> int: ...

    async def load(self, exchange: str) -> list[InstrumentSpec]: ...


class InstrumentRegistry:
    """Resolves and holds the specs of every market; see the module docstring."""

    def __init__(
        self,
        *,
        cache: InstrumentCache | None = None,
        loaders: Mapping[str, Loader] | None = None,
    ) -> None:
        self._cache = cache
        self._loaders = {name.lower(): load for name, load in (loaders or {}).items()}
        self._specs: dict[tuple[str, str], InstrumentSpec] = {}
        self._cache_read: set[str] = set()
        self._venue_read: set[str] = set()
        self._unknown: set[tuple[str, str]] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    # ----------------------------------------------------------------------- lookups

    def get(self, exchange: str, symbol: str) -> InstrumentSpec | None:
        """The spec already held for the market, or None (no I/O)."""
        return self._specs.get((exchange.lower(), symbol))

    async def resolve(self, exchange: str, symbol: str) -> InstrumentSpec | None:
        """The market's spec from memory, the cache or the venue; None (and reported in
        :meth:`unknown`, logged once) when none of them knows it."""
        key = (exchange.lower(), symbol)
        async with self._lock(key[0]):
            if key not in self._specs and key[0] not in self._cache_read:
                await self._read_cache(key[0])
            if key not in self._specs and key[0] not in self._venue_read:
                await self._read_venue(key[0])
        spec = self._specs.get(key)
        if spec is None and key not in self._unknown:
            self._unknown.add(key)
            log.warning("instrument_unknown", exchange=exchange, symbol=symbol)
        return spec

    def note_unknown(self, exchange: str, symbol: str) -> None:
        """Record (and log once) that data arrived for a market without a spec."""
        key = (exchange.lower(), symbol)
        if key not in self._unknown and key not in self._specs:
            self._unknown.add(key)
            log.warning("instrument_unknown", exchange=exchange, symbol=symbol)

    def unknown(self) -> set[tuple[str, str]]:
        """The ``(exchange, symbol)`` pairs asked for and found nowhere."""
        return set(self._unknown)

    def specs(self, exchange: str) -> list[InstrumentSpec]:
        """Every spec held for ``exchange``."""
        name = exchange.lower()
        return [spec for (ex, _), spec in self._specs.items() if ex == name]

    # ----------------------------------------------------------------------- loading

    def add(self, specs: Iterable[InstrumentSpec]) -> int:
        """Hold ``specs`` (a source without I/O: the simulator, a recording); returns the count."""
        count = 0
        for spec in specs:
            key = (spec.exchange.lower(), spec.symbol)
            self._specs[key] = spec
            self._unknown.discard(key)
            count += 1
        return count

    async def load(self, exchange: str) -> int:
        """Read ``exchange``'s specs from the cache, and from the venue when the cache has
        none; returns how many are held."""
        name = exchange.lower()
        async with self._lock(name):
            await self._read_cache(name)
            if not self.specs(name):
                await self._read_venue(name)
        return len(self.specs(name))

    async def refresh(self, exchange: str) -> set[str]:
        """Fetch ``exchange``'s specs from the venue again (and cache them); returns the
        symbols held before that the venue no longer lists."""
        name = exchange.lower()
        before = {spec.symbol for spec in self.specs(name)}
        async with self._lock(name):
            listed = await self._read_venue(name)
        return before - listed if listed else set()

    # ----------------------------------------------------------------------- internals

    def _lock(self, exchange: str) -> asyncio.Lock:
        return self._locks.setdefault(exchange, asyncio.Lock())

    async def _read_cache(self, exchange: str) -> None:
        self._cache_read.add(exchange)
        if self._cache is not None:
            self.add(await self._cache.load(exchange))

    async def _read_venue(self, exchange: str) -> set[str]:
        """Ask the venue (once per exchange until :meth:`refresh`); the symbols it listed."""
        loader = self._loaders.get(exchange)
        if loader is None:
            return set()
        try:
            specs = [spec for spec in await loader() if spec.exchange.lower() == exchange]
        except Exception as exc:  # any venue failure leaves the market unknown
            log.warning("instrument_venue_failed", exchange=exchange, error=str(exc))
            return set()
        self._venue_read.add(exchange)
        self.add(specs)
        if self._cache is not None and specs:
            await self._cache.save(specs)
        return {spec.symbol for spec in specs}
