"""Specs from ccxt's market structure: ccxt's own parsers fed the venues' recorded REST
answers agree with the specs read from those answers directly."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt

from cryptomon.market.ccxt_specs import (
    DECIMAL_PLACES,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    spec_from_ccxt,
    specs_from_ccxt,
)
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.venues import read_rest_answers, specs_from_recording

COMPARED = ("kind", "base", "quote", "contract_size", "inverse", "tick_size", "lot_size")


def okx_markets(path: Path) -> dict[str, dict[str, Any]]:
    client = ccxt.okx()
    answers = [answer["data"] for url, answer in read_rest_answers(path) if "OPTION" not in url]
    client.set_markets([market for data in answers for market in client.parse_markets(data)])
    return dict(client.markets)


def binance_markets(client: Any, path: Path) -> dict[str, dict[str, Any]]:
    client.options.update(crossMarginPairsData=[], isolatedMarginPairsData=[])
    (_, answer), *_ = read_rest_answers(path)
    client.set_markets(client.parse_markets(answer["symbols"]))
    return dict(client.markets)


def gate_futures_markets(path: Path) -> dict[str, dict[str, Any]]:
    client = ccxt.gate()
    (_, answer), *_ = read_rest_answers(path)
    client.set_markets([client.parse_contract_market(entry, "usdt") for entry in answer])
    return dict(client.markets)


def assert_agree(ccxt_specs: list[InstrumentSpec], recorded: list[InstrumentSpec]) -> int:
    by_symbol = {spec.symbol: spec for spec in ccxt_specs}
    checked = 0
    for spec in recorded:
        other = by_symbol.get(spec.symbol)
        if other is None:
            continue
        for name in COMPARED:
            assert getattr(other, name) == getattr(spec, name), (spec.symbol, name)
        checked += 1
    return checked


def test_okx_spot_swaps_and_futures_agree_with_ccxt(shared_data: Path) -> None:
    """ccxt.okx's parse of the recorded instruments gives the same units as ctVal/ctMult."""
    specs = specs_from_ccxt("okx", okx_markets(shared_data / "OKX.0"))
    recorded = specs_from_recording(shared_data / "OKX.0")
    assert assert_agree(specs, recorded) >= 700
    by_symbol = {spec.symbol: spec for spec in specs}
    assert by_symbol["BTC-USD-22K27"].inverse
    assert by_symbol["UNI-USD-PERP"].settle == "UNI"


def test_binance_usdm_and_spot_agree_with_ccxt(shared_data: Path) -> None:
    """ccxt.binanceusdm / ccxt.binance parse the recorded exchangeInfo into the same specs."""
    path = shared_data / "BINANCE_FUTURES.0"
    usdm = specs_from_ccxt("binance_futures", binance_markets(ccxt.binanceusdm(), path))
    recorded = specs_from_recording(path)
    assert assert_agree(usdm, recorded) == len(recorded)
    client = ccxt.binance()
    markets = binance_markets(client, shared_data / "BINANCE.0")
    spot = specs_from_ccxt("binance", markets, renamed=client.commonCurrencies)
    recorded_spot = specs_from_recording(shared_data / "BINANCE.0")
    assert assert_agree(spot, recorded_spot) == len(recorded_spot)
    by_symbol = {spec.symbol: spec for spec in spot}
    assert by_symbol["NKN-USDT"].min_notional == 10
    assert by_symbol["YOYO-BTC"].base == "YOYO"  # ccxt's YOYOW, cryptofeed's YOYO


def test_gate_quanto_multiplier_is_ccxt_contract_size(shared_data: Path) -> None:
    """ccxt.gate's contractSize of every recorded USDT contract is its quanto_multiplier."""
    path = shared_data / "GATEIO_FUTURES.0"
    specs = specs_from_ccxt("gateio_futures", gate_futures_markets(path))
    recorded = specs_from_recording(path)
    assert assert_agree(specs, recorded) == len(recorded)


def test_documented_market_structure_maps_every_kind() -> None:
    """ccxt's documented market dict gives spot, swap, dated future and option specs."""
    base = {"base": "BTC", "quote": "USD", "active": True, "limits": {}}
    future = {
        **base,
        "type": "future",
        "settle": "BTC",
        "inverse": True,
        "contractSize": 100,
        "expiry": 1653638400000,
        "precision": {"amount": 1, "price": 0.1},
    }
    option = {
        **base,
        "type": "option",
        "settle": "BTC",
        "linear": True,
        "contractSize": 0.1,
        "expiry": 1653638400000,
        "strike": 22000.0,
        "optionType": "put",
        "precision": {"amount": 1, "price": 0.0005},
    }
    spot = {**base, "type": "spot", "precision": {"amount": 8, "price": 2}}
    margin = {**base, "type": "margin"}
    inactive = {**spot, "active": False}
    specs = {
        s.symbol: s
        for s in specs_from_ccxt(
            "x", {"f": future, "o": option, "m": margin, "i": inactive}, precision_mode=TICK_SIZE
        )
    }
    assert specs["BTC-USD-22K27"].kind is InstrumentKind.FUTURE
    assert specs["BTC-USD-22K27"].contract_size == 100
    assert specs["BTC-USD-22000-22K27-P"].kind is InstrumentKind.OPTION
    assert len(specs) == 2
    spec = spec_from_ccxt("x", spot, precision_mode=DECIMAL_PLACES)
    assert spec is not None
    assert (spec.tick_size, spec.lot_size) == (Decimal("0.01"), Decimal("1E-8"))
    spec = spec_from_ccxt("x", spot, precision_mode=SIGNIFICANT_DIGITS)
    assert spec is not None
    assert spec.tick_size is None
    assert spec_from_ccxt("x", {**future, "contractSize": None}) is None
