"""What a feed needs from the market layer, built once by ``app.py`` and passed to every feed
source by keyword: the instrument registry (delisting at start), the shared units (amounts,
notionals, USD rates) and the quality settings each feed builds its own guard from."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptomon.config.market import MarketDataConfig
from cryptomon.market.peers import VenueBoard
from cryptomon.market.quality import QualityGuard
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.units import MarketUnits, UsdRates


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketInputs:
    """The registry, the units over it, and the ``market_data`` config section."""

    registry: InstrumentRegistry
    config: MarketDataConfig = field(default_factory=MarketDataConfig)
    units: MarketUnits = field(init=False)
    board: VenueBoard = field(init=False)  # shared by every feed's guard

    def __post_init__(self) -> None:
        rates = UsdRates(
            usd_quotes=self.config.usd_quotes, max_age_s=self.config.usd_rate_max_age_s
        )
        object.__setattr__(self, "units", MarketUnits(registry=self.registry, rates=rates))
        object.__setattr__(self, "board", VenueBoard())

    def guard(self, exchange: str) -> QualityGuard:
        """A fresh quality guard for one exchange feed, on the shared venue board."""
        return QualityGuard(exchange, config=self.config, board=self.board)

    def cached_symbols(self, exchange: str) -> set[str]:
        """The symbols whose spec is held for ``exchange`` (cache or earlier venue reads)."""
        return {spec.symbol for spec in self.registry.specs(exchange)}
