"""The detector registry: which detectors the engine runs, and on which input.

Adding a detector is one module (the detector class and its ``*_nb`` kernel module) and one
``registry.register(...)`` line in :func:`default_registry`; the engine builds its detector
set, dispatch, anomaly kinds and warm-up from the registry. Tests (or an embedding program)
build their own registry: nothing here is global.

A detector is any object with the :class:`Detector` shape: it maps its finding codes to
:class:`~cryptomon.kinds.AnomalyKind` (``kinds``), names the kinds whose confidence is a
z-score ratio (``z_kinds``), sizes its state for a new market (``configure``), runs its kernel
over a micro-batch of columns of its :class:`Source` (``process``) and writes the reason lines
of its findings (``reasons``). It should declare its warm-up (``warmup``, see
:class:`DeclaresWarmup`): the engine reports nothing of a market before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.arbitrage import ArbitrageDetector
from cryptomon.detect.base import SymbolInfo, Warmup
from cryptomon.detect.book import BookDetector
from cryptomon.detect.detectors_nb import Finding
from cryptomon.detect.divergence import DivergenceDetector
from cryptomon.detect.funding import FundingDetector
from cryptomon.detect.price import PriceDetector
from cryptomon.detect.volume import LiquidationDetector, VolumeDetector
from cryptomon.detect.whale import WhaleDetector
from cryptomon.kinds import AnomalyKind


class Source(StrEnum):
    """The input a detector reads; the engine builds one column batch per source."""

    TRADES = "trades"  # TradeCols of Trade events
    BOOKS = "books"  # BookCols (spread, imbalance) of BookTop events
    QUOTES = "quotes"  # QuoteCols (bid, ask and their sizes) of BookTop events
    MIDS = "mids"  # BookCols (mid) of markets whose symbol trades on several exchanges:
    # from BookTop, or from Ticker where the market has no book
    LIQUIDATIONS = "liquidations"  # TradeCols of Liquidation events
    FUNDING = "funding"  # FundingCols of one Funding event, run as it arrives


class Detector(Protocol):
    """What the engine needs of a detector."""

    @property
    def kinds(self) -> Mapping[int, AnomalyKind]:
        """Finding code -> the kind it reports."""
        ...

    @property
    def z_kinds(self) -> frozenset[AnomalyKind]:
        """Kinds whose confidence is z / z-threshold (the others: value / threshold)."""
        ...

    def configure(self, info: SymbolInfo) -> None:
        """Size and reset the state of a new market (``info.sid``) from ``info.cfg``."""
        ...

    def process(self, cols: Any, fires: np.ndarray, m: int) -> int:
        """Run over one batch of columns, append findings to ``fires`` from index ``m``;
        the new number of findings."""
        ...

    def reasons(self, kind: AnomalyKind, finding: Finding, quote: str) -> list[str]:
        """Short human lines describing one finding (beside the z-score and price change)."""
        ...


@runtime_checkable
class DeclaresWarmup(Protocol):
    """A detector that declares its own warm-up (every built-in one does; a detector that
    declares none reports from its first event)."""

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """Samples and seconds of one market's input before this detector may report on it."""
        ...


@runtime_checkable
class PriceContext(Protocol):
    """A detector that knows each market's price change over the lookback: the engine adds
    it to every anomaly as context."""

    def change_pct(self, sid: int) -> float: ...


@dataclass(frozen=True, slots=True)
class Registration:
    """One detector of the registry: its name, its input and how to build it."""

    name: str
    source: Source
    factory: Callable[[], Detector]


class DetectorRegistry:
    """Detectors in registration order (the order they run in on the same batch)."""

    def __init__(self) -> None:
        self._entries: dict[str, Registration] = {}

    def register(self, name: str, source: Source, factory: Callable[[], Detector]) -> None:
        """Add a detector; ``factory()`` builds a fresh one for each engine."""
        if name in self._entries:
            raise ValueError(f"detector {name!r} is already registered")
        if not isinstance(source, Source):
            expected = ", ".join(s.value for s in Source)
            raise ValueError(f"detector {name!r}: source {source!r}, expected one of {expected}")
        self._entries[name] = Registration(name, source, factory)

    def __iter__(self) -> Iterator[Registration]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)


def default_registry() -> DetectorRegistry:
    """Every built-in detector, in the order the engine runs them on one batch."""
    registry = DetectorRegistry()
    registry.register("price", Source.TRADES, PriceDetector)
    registry.register("volume", Source.TRADES, VolumeDetector)
    registry.register("whale", Source.TRADES, WhaleDetector)
    registry.register("book", Source.BOOKS, BookDetector)
    registry.register("divergence", Source.MIDS, DivergenceDetector)
    registry.register("arbitrage", Source.QUOTES, ArbitrageDetector)
    registry.register("liquidations", Source.LIQUIDATIONS, LiquidationDetector)
    registry.register("funding", Source.FUNDING, FundingDetector)
    return registry
