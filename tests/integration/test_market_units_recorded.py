"""Units on real recorded data: amounts and notionals computed from the venue's own spec
agree with what the venue itself reports (per-trade coin quantity and turnover, candle and
24h quote volumes), for spot, linear and inverse perpetuals, a dated inverse future and
scaled contracts.

Venues covered: HUOBI_SWAP (inverse and linear perpetuals, exact per trade), OKX (spot,
inverse perpetual, inverse future: 24h volumes), BINANCE and BINANCE_FUTURES (spot and
linear perpetual: candle quote volumes). GATEIO_FUTURES records no trades and no value
field: its quanto multipliers are checked against ccxt's parser instead (unit tests).
"""

from __future__ import annotations

import glob
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from cryptofeed.defines import CANDLES, TICKER, TRADES
from cryptofeed.raw_data_collection import playback

from cryptomon.market.instruments import InstrumentSpec
from cryptomon.market.venues import specs_from_recording


class Recorded:
    """What cryptofeed's own playback of one recording delivers, by channel."""

    def __init__(self, shared_data: Path, venue: str, channels: tuple[str, ...]) -> None:
        self.items: dict[str, list[Any]] = defaultdict(list)
        self.specs = {s.symbol: s for s in specs_from_recording(shared_data / f"{venue}.0")}
        files = sorted(glob.glob(str(shared_data / f"{venue}.*")))
        callbacks = {channel: self._collector(channel) for channel in channels}
        self.counts = playback(venue, files, callbacks=callbacks, config=None)["callbacks"]

    def _collector(self, channel: str) -> Any:
        async def collect(item: Any, _receipt: float) -> None:
            self.items[channel].append(item)

        return collect

    def spec(self, symbol: str) -> InstrumentSpec:
        return self.specs[symbol]


@pytest.fixture(scope="module")
def huobi(shared_data: Path) -> Recorded:
    return Recorded(shared_data, "HUOBI_SWAP", (TRADES,))


@pytest.fixture(scope="module")
def okx(shared_data: Path) -> Recorded:
    return Recorded(shared_data, "OKX", (TRADES, TICKER))


def within_volume_bounds(spec: InstrumentSpec, qty: float, low: float, high: float) -> tuple:
    """(base, quote) bounds of ``qty`` traded anywhere between ``low`` and ``high``."""
    amounts = sorted((spec.base_amount(qty, low), spec.base_amount(qty, high)))
    notionals = sorted((spec.notional(qty, low), spec.notional(qty, high)))
    return amounts, notionals


def test_inverse_perpetual_trades_match_huobi_coin_quantity(huobi: Recorded) -> None:
    """HUOBI_SWAP coin-margined trades: amount = contracts x contract_size / price equals the
    venue's own coin quantity, and notional is contracts x contract_size USD."""
    trades = [t for t in huobi.items[TRADES] if huobi.spec(t.symbol).inverse]
    assert {t.symbol for t in trades} >= {"ATOM-USD-PERP", "SHIB-USD-PERP", "GALA-USD-PERP"}
    for trade in trades:
        spec = huobi.spec(trade.symbol)
        qty, price = float(trade.amount), float(trade.price)
        assert spec.base_amount(qty, price) == pytest.approx(float(trade.raw["quantity"]))
        assert spec.notional(qty, price) == qty * float(spec.contract_size)
        assert spec.amount_of(trade.amount, trade.price) == pytest.approx(trade.raw["quantity"])


def test_linear_perpetual_trades_match_huobi_quantity_and_turnover(huobi: Recorded) -> None:
    """HUOBI_SWAP USDT-margined trades: amount and notional equal the venue's quantity and
    trade_turnover, including SOS-USDT-PERP whose contract is 100,000 coins."""
    trades = [t for t in huobi.items[TRADES] if not huobi.spec(t.symbol).inverse]
    assert "SOS-USDT-PERP" in {t.symbol for t in trades}
    for trade in trades:
        spec = huobi.spec(trade.symbol)
        qty, price = float(trade.amount), float(trade.price)
        assert spec.base_amount(qty, price) == pytest.approx(float(trade.raw["quantity"]))
        assert spec.notional(qty, price) == pytest.approx(float(trade.raw["trade_turnover"]))
        assert spec.notional_of(trade.amount, trade.price) == trade.raw["trade_turnover"]


def test_scaled_contracts_are_not_coins(huobi: Recorded) -> None:
    """A 3,696-contract SOS trade is 369.6M coins worth ~857 USDT, not 3,696 coins (the unit
    error that made whales of small trades)."""
    sos = next(t for t in huobi.items[TRADES] if t.symbol == "SOS-USDT-PERP")
    spec = huobi.spec("SOS-USDT-PERP")
    assert spec.base_amount(float(sos.amount), float(sos.price)) == float(sos.raw["quantity"])
    assert spec.base_amount(float(sos.amount), float(sos.price)) > 1000 * float(sos.amount)


@pytest.mark.parametrize("symbol", ["BTC-USDT", "UNI-USD-PERP", "BTC-USD-22K27"])
def test_okx_24h_volumes_match_the_spec(okx: Recorded, symbol: str) -> None:
    """OKX tickers: the 24h volume in contracts, converted by the spec at any price between
    the 24h low and high, brackets the venue's own 24h volume in the other unit (quote on
    spot, coins on the inverse perpetual and the dated inverse future)."""
    spec = okx.spec(symbol)
    tickers = [t for t in okx.items[TICKER] if t.symbol == symbol]
    assert tickers
    for ticker in tickers:
        raw = ticker.raw
        qty, low, high = float(raw["vol24h"]), float(raw["low24h"]), float(raw["high24h"])
        amounts, notionals = within_volume_bounds(spec, qty, low, high)
        other = float(raw["volCcy24h"])
        lo, hi = notionals if not spec.inverse else amounts
        assert lo <= other <= hi, (symbol, lo, other, hi)


def test_okx_trades_units_per_contract_type(okx: Recorded) -> None:
    """OKX trades: spot sizes are coins; inverse sizes are 10 / 100 USD contracts."""
    by_symbol = defaultdict(list)
    for trade in okx.items[TRADES]:
        by_symbol[trade.symbol].append(trade)
    uni = by_symbol["UNI-USD-PERP"][0]
    assert okx.spec("UNI-USD-PERP").notional(float(uni.amount), float(uni.price)) == 1000.0
    fut = by_symbol["BTC-USD-22K27"][0]
    fut_spec = okx.spec("BTC-USD-22K27")
    assert fut_spec.notional(float(fut.amount), float(fut.price)) == 100.0 * float(fut.amount)
    spot = by_symbol["BTC-USDT"][0]
    assert okx.spec("BTC-USDT").base_amount(float(spot.amount), 1.0) == float(spot.amount)


@pytest.mark.parametrize("venue", ["BINANCE", "BINANCE_FUTURES"])
def test_binance_candle_quote_volume_matches_the_spec(shared_data: Path, venue: str) -> None:
    """Binance spot and USD-M candles: the base volume converted by the spec between the
    candle's low and high brackets the venue's quote volume ``q``."""
    recorded = Recorded(shared_data, venue, (CANDLES,))
    assert recorded.items[CANDLES]
    for candle in recorded.items[CANDLES]:
        spec = recorded.spec(candle.symbol)
        kline = candle.raw["k"]
        _, (lo, hi) = within_volume_bounds(
            spec, float(kline["v"]), float(kline["l"]), float(kline["h"])
        )
        assert lo * (1 - 1e-12) <= float(kline["q"]) <= hi * (1 + 1e-12), candle.symbol
