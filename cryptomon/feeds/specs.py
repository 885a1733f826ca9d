"""Where each configured exchange's instrument specs come from, decided once at build time
(``app.py`` wires the result into the :class:`~cryptomon.market.registry.InstrumentRegistry`):

- the simulator serves its own specs (:func:`cryptomon.sim.instruments.simulator_specs`); its
  USD-M venue (plugin ``simulator_futures``) answers ``/fapi/v1/exchangeInfo`` like Binance's;
- a replay reads ``instruments.EXCHANGE.json`` beside the recording (saved by ``record``), else
  the REST answers in the recording's ``EXCHANGE.0`` file;
- a live cryptofeed exchange whose instrument format is known is asked over REST
  (:func:`~cryptomon.market.venues.rest_loader`, the same URLs cryptofeed reads).

A venue without a known format has no loader: its markets stream without units (unknown specs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from cryptomon.config import ExchangeConfig
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.market.registry import Loader
from cryptomon.market.specs_file import load_specs, specs_file
from cryptomon.market.venues import (
    VENUE_FORMATS,
    instrument_urls,
    rest_loader,
    specs_from_recording,
)

log = structlog.get_logger()

HTTP_TIMEOUT_S = 20.0


async def get_json(url: str) -> Any:
    """GET ``url`` and decode its JSON (one short-lived session: a refresh is rare)."""
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as answer:
        answer.raise_for_status()
        return await answer.json(content_type=None)


def simulator_loader(exchange: str, url: str) -> Loader:
    """The simulator's specs for the symbols its ``exchangeInfo`` lists now (a delisted one
    drops out, as on a real venue)."""
    from cryptomon.market.venues import binance_spot
    from cryptomon.sim.instruments import simulator_specs

    info_url = url.rstrip("/") + "/api/v3/exchangeInfo"

    async def load() -> list[InstrumentSpec]:
        listed = [spec.symbol for spec in binance_spot(exchange, await get_json(info_url))]
        return simulator_specs(listed, exchange=exchange)

    return load


@dataclass(slots=True)
class SpecSources:
    """Specs known without I/O (``static``) and venue loaders by exchange name."""

    static: list[InstrumentSpec] = field(default_factory=list)
    loaders: dict[str, Loader] = field(default_factory=dict)


def recording_specs(config: ExchangeConfig) -> list[InstrumentSpec]:
    """A replay's specs: the saved specs file beside the recording, else its ``EXCHANGE.0``."""
    venue = config.name.upper()
    for name in config.files:
        path = Path(name)
        saved = specs_file(path.parent, venue)
        if saved.is_file():
            return load_specs(saved)
    for name in config.files:
        path = Path(name)
        if path.name == f"{venue}.0" and venue != "SIMULATOR":
            return specs_from_recording(path, config.name)
    return []


def spec_sources(configs: Iterable[ExchangeConfig], *, feed_classes: Any = None) -> SpecSources:
    """The static specs and venue loaders of every enabled exchange config; ``feed_classes``
    maps a venue id to its cryptofeed class (default: cryptofeed's ``EXCHANGE_MAP``)."""
    from cryptomon.sim.instruments import simulator_specs

    if feed_classes is None:
        from cryptofeed.exchanges import EXCHANGE_MAP

        feed_classes = EXCHANGE_MAP
    out = SpecSources()
    for config in configs:
        if not config.enabled:
            continue
        venue = config.name.upper()
        if config.source == "replay":
            try:
                out.static.extend(recording_specs(config))
            except ValueError as exc:  # a recording without readable specs: unknown units
                log.warning("instruments_unreadable", exchange=config.name, error=str(exc))
        elif config.plugin == "simulator_futures" and config.url:
            urls = [config.url.rstrip("/") + "/fapi/v1/exchangeInfo"]
            out.loaders[config.name] = rest_loader("BINANCE_FUTURES", config.name, urls, get_json)
        elif config.name == "simulator" and config.url:
            out.loaders[config.name] = simulator_loader(config.name, config.url)
        elif config.name == "simulator":
            out.static.extend(simulator_specs(config.symbols, exchange=config.name))
        elif venue in VENUE_FORMATS and venue in feed_classes:
            urls = instrument_urls(feed_classes[venue])
            out.loaders[config.name] = rest_loader(venue, config.name, urls, get_json)
    return out


async def save_recording_specs(configs: Sequence[ExchangeConfig], out: Path) -> list[Path]:
    """Fetch every recorded exchange's specs from its venue and save them beside the recording
    (``instruments.EXCHANGE.json``, read back by a replay); an exchange without a known format
    or that does not answer is skipped (logged). Returns the files written."""
    from cryptomon.market.specs_file import save_specs

    sources = spec_sources(configs)
    written = []
    for config in configs:
        load = sources.loaders.get(config.name)
        if load is None:
            continue
        try:
            specs = await load()
        except Exception as exc:  # the recording stands without specs
            log.warning("instruments_not_saved", exchange=config.name, error=str(exc)[:300])
            continue
        path = specs_file(out, config.name)
        await asyncio.to_thread(save_specs, path, specs)
        written.append(path)
    return written


def exchange_names(configs: Sequence[ExchangeConfig]) -> list[str]:
    """The enabled exchanges whose specs the refresher loads."""
    return [config.name for config in configs if config.enabled]
