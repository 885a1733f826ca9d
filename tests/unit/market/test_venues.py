"""Specs from the REST answers of the shared recordings (EXCHANGE.0 files), per venue."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.market.instruments import InstrumentKind
from cryptomon.market.venues import (
    VENUE_FORMATS,
    RecordingError,
    specs_from_answers,
    specs_from_recording,
)

COVERED = sorted(VENUE_FORMATS)


def recorded_symbols(path: Path) -> set[str]:
    """Every symbol of the recording's ``configuration:`` line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("configuration: "):
            channels = json.loads(line.removeprefix("configuration: "))
            return {symbol for symbols in channels.values() for symbol in symbols}
    raise AssertionError(f"{path} has no configuration line")


@pytest.mark.parametrize("venue", COVERED)
def test_every_recorded_market_has_a_spec(shared_data: Path, venue: str) -> None:
    """Each subscribed symbol of the recording resolves to a spec from the venue's own answer."""
    specs = {spec.symbol: spec for spec in specs_from_recording(shared_data / f"{venue}.0")}
    assert recorded_symbols(shared_data / f"{venue}.0") <= set(specs)
    assert {spec.exchange for spec in specs.values()} == {venue.lower()}


def test_huobi_swap_contract_sizes_inverse_and_linear(shared_data: Path) -> None:
    """HUOBI_SWAP: coin-margined swaps are inverse (contract_size USD), USDT ones linear."""
    specs = {s.symbol: s for s in specs_from_recording(shared_data / "HUOBI_SWAP.0")}
    btc_usd, btc_usdt = specs["BTC-USD-PERP"], specs["BTC-USDT-PERP"]
    assert (btc_usd.inverse, btc_usd.contract_size, btc_usd.settle) == (True, Decimal(100), "BTC")
    assert (btc_usdt.inverse, btc_usdt.contract_size) == (False, Decimal("0.001"))
    assert specs["SOS-USDT-PERP"].contract_size == Decimal(100_000)
    assert specs["SHIB-USD-PERP"].tick_size == Decimal("1E-8")


def test_gateio_futures_quanto_multiplier(shared_data: Path) -> None:
    """GATEIO_FUTURES: quanto_multiplier is the base units of one linear contract."""
    specs = {s.symbol: s for s in specs_from_recording(shared_data / "GATEIO_FUTURES.0")}
    btc = specs["BTC-USDT-PERP"]
    assert (btc.contract_size, btc.inverse, btc.settle) == (Decimal("0.0001"), False, "USDT")
    assert specs["KNC-USDT-PERP"].tick_size == Decimal("0.0001")


def test_okx_ctval_swaps_futures_and_spot(shared_data: Path) -> None:
    """OKX: ctVal x ctMult per contract; inverse swaps and dated futures in USD, spot plain."""
    specs = {s.symbol: s for s in specs_from_recording(shared_data / "OKX.0")}
    uni = specs["UNI-USD-PERP"]
    assert (uni.kind, uni.inverse, uni.contract_size) == (
        InstrumentKind.PERPETUAL,
        True,
        Decimal(10),
    )
    future = specs["BTC-USD-22K27"]
    assert (future.kind, future.inverse, future.contract_size) == (
        InstrumentKind.FUTURE,
        True,
        Decimal(100),
    )
    assert specs["BTC-USDT-PERP"].contract_size == Decimal("0.01")
    assert not specs["BTC-USDT-PERP"].inverse
    assert specs["BTC-USDT"].kind is InstrumentKind.SPOT
    assert specs["BTC-USDT"].lot_size == Decimal("1E-8")
    assert not any(spec.kind is InstrumentKind.OPTION for spec in specs.values())


def test_binance_filters_give_tick_lot_and_min_notional(shared_data: Path) -> None:
    """BINANCE / BINANCE_FUTURES: PRICE_FILTER, LOT_SIZE and MIN_NOTIONAL become the limits."""
    spot = {s.symbol: s for s in specs_from_recording(shared_data / "BINANCE.0")}["NKN-USDT"]
    assert (spot.tick_size, spot.lot_size, spot.min_notional) == (
        Decimal("0.0001"),
        Decimal(1),
        Decimal(10),
    )
    usdm = {s.symbol: s for s in specs_from_recording(shared_data / "BINANCE_FUTURES.0")}
    sushi = usdm["SUSHI-USDT-PERP"]
    assert (sushi.contract_size, sushi.min_notional, sushi.settle) == (
        Decimal(1),
        Decimal(5),
        "USDT",
    )


def test_kraken_renames_xbt_like_cryptofeed(shared_data: Path) -> None:
    """KRAKEN: XBT pairs are BTC pairs, as cryptofeed names them."""
    specs = {s.symbol: s for s in specs_from_recording(shared_data / "KRAKEN.0")}
    assert specs["BTC-CHF"].tick_size == Decimal("0.1")
    assert "XBT-CHF" not in specs


def test_unsupported_venue_is_named_with_the_supported_ones(shared_data: Path) -> None:
    """A recording of a venue without a format is a clear error listing the known ones."""
    with pytest.raises(RecordingError, match="no instrument format for exchange 'BITFINEX'"):
        specs_from_recording(shared_data / "BITFINEX.0")


def test_malformed_answer_names_the_venue_and_url() -> None:
    """An answer missing a documented field is reported with its venue and URL."""
    url = "https://api.hbdm.com/swap-api/v1/swap_contract_info"
    with pytest.raises(RecordingError, match=f"HUOBI_SWAP answer to {url} is not the documented"):
        specs_from_answers("HUOBI_SWAP", [(url, {"data": [{"contract_code": "BTC-USD"}]})], "h")


def test_missing_and_non_json_files_are_clear_errors(tmp_path: Path) -> None:
    """A missing EXCHANGE.0 or a line that is not JSON names the file and the expectation."""
    with pytest.raises(RecordingError, match=r"no such file; expected a recording's OKX\.0 file"):
        specs_from_recording(tmp_path / "OKX.0")
    bad = tmp_path / "OKX.0"
    bad.write_text("https://www.okx.com/x -> 1.0: {nope\n", encoding="utf-8")
    with pytest.raises(RecordingError, match=r"OKX\.0:1: the answer to https://www\.okx\.com/x"):
        specs_from_recording(bad)
