"""Instrument specs from the exchange REST answers cryptofeed fetches (its symbol lists).

Those answers are stored in a recording's ``EXCHANGE.0`` file, one ``URL -> ts: JSON`` line
per request. Each venue's format is class data: :data:`VENUE_FORMATS` maps a cryptofeed
exchange id to ``(URL fragment, parser)`` pairs; a parser turns one answer into specs.
Supported: BINANCE, BINANCE_FUTURES, OKX (spot, swaps, futures), HUOBI_SWAP (coin- and
USDT-margined), GATEIO, GATEIO_FUTURES, KRAKEN. Options and markets not open for trading
are left out (a later lookup reports them unknown). :func:`rest_loader` fetches the same
answers live (the URLs from :func:`instrument_urls` of the cryptofeed exchange class).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptomon.market.instruments import (
    InstrumentKind,
    InstrumentSpec,
    decimal_or_none,
    normalized_symbol,
    step_from_decimals,
)

Doc = dict[str, Any]
Parser = Callable[[str, Any], Iterator[InstrumentSpec]]
"""``(exchange, decoded answer) -> specs``."""


class RecordingError(ValueError):
    """A recording's REST answers cannot be read as instrument metadata."""


def _spec(
    exchange: str,
    base: str,
    quote: str,
    kind: InstrumentKind,
    *,
    expiry: float | None = None,
    **fields: Any,
) -> InstrumentSpec:
    """One market's spec, named the way cryptofeed names it (expiry in the name of a future)."""
    return InstrumentSpec(
        exchange=exchange,
        symbol=normalized_symbol(base, quote, kind, expiry=expiry),
        kind=kind,
        base=base,
        quote=quote,
        expiry=expiry,
        **fields,
    )


# ------------------------------------------------------------------------------ Binance


def _filters(entry: Doc) -> dict[str, Doc]:
    return {f["filterType"]: f for f in entry.get("filters", [])}


def _binance_limits(entry: Doc) -> Doc:
    filters = _filters(entry)
    lot = filters.get("LOT_SIZE", {})
    notional = filters.get("MIN_NOTIONAL") or filters.get("NOTIONAL") or {}
    return {
        "tick_size": decimal_or_none(filters.get("PRICE_FILTER", {}).get("tickSize")),
        "lot_size": decimal_or_none(lot.get("stepSize")),
        "min_qty": decimal_or_none(lot.get("minQty")),
        "min_notional": decimal_or_none(notional.get("minNotional", notional.get("notional"))),
    }


def binance_spot(exchange: str, answer: Doc) -> Iterator[InstrumentSpec]:
    """``/api/v3/exchangeInfo``: spot pairs; qty in base units."""
    for entry in answer["symbols"]:
        if entry.get("status", "TRADING") != "TRADING":
            continue
        base, quote = entry["baseAsset"], entry["quoteAsset"]
        yield _spec(exchange, base, quote, InstrumentKind.SPOT, **_binance_limits(entry))


_BINANCE_CONTRACTS = {
    "PERPETUAL": InstrumentKind.PERPETUAL,
    "CURRENT_QUARTER": InstrumentKind.FUTURE,
    "NEXT_QUARTER": InstrumentKind.FUTURE,
}


def binance_usdm(exchange: str, answer: Doc) -> Iterator[InstrumentSpec]:
    """``/fapi/v1/exchangeInfo``: USD-M contracts, linear, one base unit per contract."""
    for entry in answer["symbols"]:
        kind = _BINANCE_CONTRACTS.get(entry.get("contractType", ""))
        if kind is None or entry.get("status", "TRADING") != "TRADING":
            continue
        base, quote = entry["baseAsset"], entry["quoteAsset"]
        expiry = entry["deliveryDate"] / 1000 if kind is InstrumentKind.FUTURE else None
        yield _spec(
            exchange,
            base,
            quote,
            kind,
            expiry=expiry,
            settle=entry.get("marginAsset", quote),
            **_binance_limits(entry),
        )


# ---------------------------------------------------------------------------------- OKX

_OKX_KINDS = {
    "SPOT": InstrumentKind.SPOT,
    "SWAP": InstrumentKind.PERPETUAL,
    "FUTURES": InstrumentKind.FUTURE,
}


def okx(exchange: str, answer: Doc) -> Iterator[InstrumentSpec]:
    """``/api/v5/public/instruments``: ``ctVal`` x ``ctMult`` per contract, in ``ctValCcy``
    (the base coin when ``ctType`` is linear, the quote when inverse)."""
    for entry in answer["data"]:
        kind = _OKX_KINDS.get(entry["instType"])
        if kind is None or entry.get("state", "live") != "live":
            continue
        limits: Doc = {
            "tick_size": decimal_or_none(entry["tickSz"]),
            "lot_size": decimal_or_none(entry["lotSz"]),
            "min_qty": decimal_or_none(entry["minSz"]),
        }
        if kind is InstrumentKind.SPOT:
            base, quote = entry["baseCcy"], entry["quoteCcy"]
            yield _spec(exchange, base, quote, kind, **limits)
            continue
        base, quote = entry["uly"].split("-")
        inverse = entry["ctType"] == "inverse"
        if entry["ctValCcy"] != (quote if inverse else base):
            continue  # a quanto contract: its value is in a third currency
        size = decimal_or_none(entry["ctVal"])
        mult = decimal_or_none(entry["ctMult"])
        if size is None or mult is None:
            continue
        expiry = int(entry["expTime"]) / 1000 if entry["expTime"] else None
        yield _spec(
            exchange,
            base,
            quote,
            kind,
            **limits,
            settle=entry["settleCcy"],
            contract_size=size * mult,
            inverse=inverse,
            expiry=expiry,
        )


# ------------------------------------------------------------------------------- Huobi


def _huobi_swaps(exchange: str, answer: Doc, *, inverse: bool) -> Iterator[InstrumentSpec]:
    for entry in answer["data"]:
        if entry.get("contract_type", "swap") != "swap":
            continue
        base, quote = entry["contract_code"].split("-")
        yield _spec(
            exchange,
            base,
            quote,
            InstrumentKind.PERPETUAL,
            settle=base if inverse else quote,
            contract_size=decimal_or_none(entry["contract_size"]) or Decimal(0),
            inverse=inverse,
            tick_size=decimal_or_none(entry["price_tick"]),
            lot_size=Decimal(1),
            min_qty=Decimal(1),
        )


def huobi_coin_swaps(exchange: str, answer: Doc) -> Iterator[InstrumentSpec]:
    """``/swap-api/v1/swap_contract_info``: coin-margined, ``contract_size`` USD each."""
    return _huobi_swaps(exchange, answer, inverse=True)


def huobi_usdt_swaps(exchange: str, answer: Doc) -> Iterator[InstrumentSpec]:
    """``/linear-swap-api/v1/swap_contract_info``: USDT-margined, ``contract_size`` coins."""
    return _huobi_swaps(exchange, answer, inverse=False)


# -------------------------------------------------------------------------------- Gate


def gate_spot(exchange: str, answer: list[Doc]) -> Iterator[InstrumentSpec]:
    """``/api/v4/spot/currency_pairs``: precisions as numbers of decimals."""
    for entry in answer:
        if entry.get("trade_status", "tradable") != "tradable":
            continue
        base, quote = entry["base"], entry["quote"]
        lot = step_from_decimals(entry.get("amount_precision"))
        yield _spec(
            exchange,
            base,
            quote,
            InstrumentKind.SPOT,
            tick_size=step_from_decimals(entry.get("precision")),
            lot_size=lot,
            min_qty=decimal_or_none(entry.get("min_base_amount")) or lot,
            min_notional=decimal_or_none(entry.get("min_quote_amount")),
        )


def gate_usdt_futures(exchange: str, answer: list[Doc]) -> Iterator[InstrumentSpec]:
    """``/api/v4/futures/usdt/contracts``: ``quanto_multiplier`` coins per contract."""
    for entry in answer:
        if entry.get("in_delisting") or entry.get("type", "direct") != "direct":
            continue
        base, quote = entry["name"].split("_")
        yield _spec(
            exchange,
            base,
            quote,
            InstrumentKind.PERPETUAL,
            settle=quote,
            contract_size=decimal_or_none(entry["quanto_multiplier"]) or Decimal(0),
            tick_size=decimal_or_none(entry["order_price_round"]),
            lot_size=Decimal(1),
            min_qty=decimal_or_none(entry.get("order_size_min")),
        )


# ------------------------------------------------------------------------------ Kraken

_KRAKEN_CODES = (("XBT", "BTC"), ("XDG", "DOGE"))  # as cryptofeed renames them


def kraken(exchange: str, answer: Doc) -> Iterator[InstrumentSpec]:
    """``/0/public/AssetPairs``: decimals for price and volume, ``ordermin`` in base."""
    for name, entry in answer["result"].items():
        if "wsname" not in entry or ".d" in name:
            continue  # dark pool pairs have no public feed
        wsname = entry["wsname"]
        for venue_code, code in _KRAKEN_CODES:
            wsname = wsname.replace(venue_code, code)
        base, quote = wsname.split("/")
        yield _spec(
            exchange,
            base,
            quote,
            InstrumentKind.SPOT,
            tick_size=step_from_decimals(entry.get("pair_decimals")),
            lot_size=step_from_decimals(entry.get("lot_decimals")),
            min_qty=decimal_or_none(entry.get("ordermin")),
            min_notional=decimal_or_none(entry.get("costmin")),
        )


VENUE_FORMATS: dict[str, tuple[tuple[str, Parser], ...]] = {
    "BINANCE": (("/api/v3/exchangeInfo", binance_spot),),
    "BINANCE_FUTURES": (("/fapi/v1/exchangeInfo", binance_usdm),),
    "OKX": (("/api/v5/public/instruments", okx),),
    "HUOBI_SWAP": (
        ("/linear-swap-api/v1/swap_contract_info", huobi_usdt_swaps),
        ("/swap-api/v1/swap_contract_info", huobi_coin_swaps),
    ),
    "GATEIO": (("/api/v4/spot/currency_pairs", gate_spot),),
    "GATEIO_FUTURES": (("/api/v4/futures/usdt/contracts", gate_usdt_futures),),
    "KRAKEN": (("/0/public/AssetPairs", kraken),),
}
"""cryptofeed exchange id -> (URL fragment, parser); the first matching fragment wins."""


def parser_for(venue: str, url: str) -> Parser | None:
    """The parser of ``venue``'s answer to ``url`` (None: an answer without specs)."""
    formats = VENUE_FORMATS.get(venue.upper())
    if formats is None:
        raise RecordingError(
            f"no instrument format for exchange {venue!r}; expected one of "
            + ", ".join(sorted(VENUE_FORMATS))
        )
    return next((parse for fragment, parse in formats if fragment in url), None)


def read_rest_answers(path: Path) -> Iterator[tuple[str, Any]]:
    """The ``(url, decoded JSON)`` answers of a recording's ``EXCHANGE.0`` file."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.startswith("http") or " -> " not in line:
                continue
            url, _, rest = line.partition(" -> ")
            _, _, payload = rest.partition(": ")
            try:
                yield url, json.loads(payload)
            except json.JSONDecodeError as exc:
                raise RecordingError(
                    f"{path}:{number}: the answer to {url} is not JSON ({exc.msg}); "
                    "expected 'URL -> TIMESTAMP: JSON'"
                ) from exc


def specs_from_answers(
    venue: str, answers: Iterator[tuple[str, Any]] | list[tuple[str, Any]], exchange: str
) -> list[InstrumentSpec]:
    """Specs from ``venue``'s REST answers, stamped with ``exchange``; the last one of a
    repeated market wins."""
    found: dict[str, InstrumentSpec] = {}
    for url, answer in answers:
        parse = parser_for(venue, url)
        if parse is None:
            continue
        try:
            for spec in parse(exchange, answer):
                found[spec.symbol] = spec
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordingError(
                f"{venue} answer to {url} is not the documented instrument format "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    return list(found.values())


def specs_from_recording(path: Path, exchange: str | None = None) -> list[InstrumentSpec]:
    """Specs from a recording's ``EXCHANGE.0`` file (the venue is the file name's first
    part); ``exchange`` defaults to the venue id in lower case."""
    venue = path.name.split(".", 1)[0]
    if not path.is_file():
        raise RecordingError(f"{path}: no such file; expected a recording's {venue}.0 file")
    return specs_from_answers(venue, read_rest_answers(path), exchange or venue.lower())


def instrument_urls(feed_class: Any) -> list[str]:
    """The symbol-list URLs a cryptofeed exchange class reads (its ``rest_endpoints``'
    ``instruments`` routes), e.g. both HUOBI_SWAP contract lists."""
    urls: list[str] = []
    for endpoint in getattr(feed_class, "rest_endpoints", None) or []:
        route = endpoint.route("instruments")
        urls.extend(route if isinstance(route, list) else [route])
    return urls


def rest_loader(
    venue: str, exchange: str, urls: list[str], get_json: Callable[[str], Awaitable[Any]]
) -> Callable[[], Awaitable[list[InstrumentSpec]]]:
    """A venue loader for the registry: fetch ``urls`` with ``get_json`` (the caller's HTTP
    client, rate limits included) and parse the answers as ``venue``'s format."""
    parser_for(venue, "")  # an unknown venue fails here, at wiring time

    async def load() -> list[InstrumentSpec]:
        answers = [(url, await get_json(url)) for url in urls]
        return specs_from_answers(venue, answers, exchange)

    return load
