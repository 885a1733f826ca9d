"""InstrumentRegistry: memory, then the database cache, then the venue; unknown markets
reported once; the cache is the real instruments table on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.venues import specs_from_recording
from cryptomon.sim.instruments import simulator_specs
from cryptomon.store.db import Database
from cryptomon.store.instruments import InstrumentRepository


@pytest.fixture
def repo(db: Database) -> InstrumentRepository:
    return InstrumentRepository(db.sessionmaker)


class Venue:
    """A venue loader over a recording's REST answers that counts its calls."""

    def __init__(self, path: Path, *, failures: int = 0) -> None:
        self.specs = specs_from_recording(path)
        self.calls = 0
        self.failures = failures
        self.listed: set[str] | None = None

    async def __call__(self) -> list[InstrumentSpec]:
        self.calls += 1
        if self.calls <= self.failures:
            raise TimeoutError("venue did not answer in 10 s")
        return [s for s in self.specs if self.listed is None or s.symbol in self.listed]


@pytest.mark.asyncio
async def test_cache_answers_before_the_venue(
    repo: InstrumentRepository, shared_data: Path
) -> None:
    """A market in the database cache resolves without asking the venue."""
    venue = Venue(shared_data / "OKX.0")
    await repo.save([s for s in venue.specs if s.symbol == "UNI-USD-PERP"])
    registry = InstrumentRegistry(cache=repo, loaders={"okx": venue})
    spec = await registry.resolve("okx", "UNI-USD-PERP")
    assert spec is not None
    assert spec.inverse
    assert venue.calls == 0
    assert registry.get("OKX", "UNI-USD-PERP") == spec


@pytest.mark.asyncio
async def test_venue_answers_a_cache_miss_and_fills_the_cache(
    repo: InstrumentRepository, shared_data: Path
) -> None:
    """A cache miss asks the venue once; what it lists is cached for the next start."""
    venue = Venue(shared_data / "HUOBI_SWAP.0")
    registry = InstrumentRegistry(cache=repo, loaders={"HUOBI_SWAP": venue})
    first, second = await asyncio.gather(
        registry.resolve("huobi_swap", "ATOM-USD-PERP"),
        registry.resolve("huobi_swap", "SOS-USDT-PERP"),
    )
    assert first is not None
    assert first.inverse
    assert second is not None
    assert not second.inverse
    assert venue.calls == 1
    restarted = InstrumentRegistry(cache=repo)  # offline: no venue
    assert await restarted.resolve("huobi_swap", "SOS-USDT-PERP") == second
    assert len(await repo.load("huobi_swap")) == len(venue.specs)


@pytest.mark.asyncio
async def test_unknown_market_is_reported_and_logged_once(
    repo: InstrumentRepository, shared_data: Path
) -> None:
    """A market neither the cache nor the venue knows resolves to None, is listed in
    unknown() and logged once; the venue is not asked again for it."""
    venue = Venue(shared_data / "GATEIO_FUTURES.0")
    registry = InstrumentRegistry(cache=repo, loaders={"gateio_futures": venue})
    with capture_logs() as logs:
        assert await registry.resolve("gateio_futures", "NOPE-USDT-PERP") is None
        assert await registry.resolve("gateio_futures", "NOPE-USDT-PERP") is None
    assert registry.unknown() == {("gateio_futures", "NOPE-USDT-PERP")}
    assert [e["event"] for e in logs] == ["instrument_unknown"]
    assert logs[0]["symbol"] == "NOPE-USDT-PERP"
    assert venue.calls == 1
    assert await registry.resolve("binance", "BTC-USDT") is None  # no loader, no cache row
    assert ("binance", "BTC-USDT") in registry.unknown()


@pytest.mark.asyncio
async def test_venue_failure_leaves_unknown_and_is_retried(
    repo: InstrumentRepository, shared_data: Path
) -> None:
    """A venue that fails is logged; the market stays unknown until a later resolve works."""
    venue = Venue(shared_data / "OKX.0", failures=1)
    registry = InstrumentRegistry(cache=repo, loaders={"okx": venue})
    with capture_logs() as logs:
        assert await registry.resolve("okx", "BTC-USD-22K27") is None
    assert logs[0]["event"] == "instrument_venue_failed"
    assert "did not answer" in logs[0]["error"]
    spec = await registry.resolve("okx", "BTC-USD-22K27")
    assert spec is not None
    assert spec.kind is InstrumentKind.FUTURE
    assert registry.unknown() == set()


@pytest.mark.asyncio
async def test_refresh_names_markets_the_venue_no_longer_lists(
    repo: InstrumentRepository, shared_data: Path
) -> None:
    """refresh() re-reads the venue and returns held symbols it stopped listing."""
    venue = Venue(shared_data / "BINANCE_FUTURES.0")
    registry = InstrumentRegistry(cache=repo, loaders={"binance_futures": venue})
    assert await registry.load("binance_futures") == len(venue.specs)
    venue.listed = {s.symbol for s in venue.specs} - {"SUSHI-USDT-PERP"}
    assert await registry.refresh("binance_futures") == {"SUSHI-USDT-PERP"}
    assert registry.get("binance_futures", "SUSHI-USDT-PERP") is not None  # kept: delisted


@pytest.mark.asyncio
async def test_simulator_specs_are_added_without_io() -> None:
    """The simulator's spot and perpetual specs are held through add() and read with get()."""
    registry = InstrumentRegistry()
    assert registry.add(simulator_specs()) == 8
    perp = registry.get("simulator", "BTC-USDT-PERP")
    assert perp is not None
    assert (perp.kind, perp.settle, perp.contract_size) == (
        InstrumentKind.PERPETUAL,
        "USDT",
        Decimal(1),
    )
    assert registry.get("simulator", "BTC-USDT") is not None
    assert await registry.resolve("simulator", "ETH-USDT") is not None
    assert registry.specs("SIMULATOR")[0].exchange == "simulator"
