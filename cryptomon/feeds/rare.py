"""The converter's less busy channels (candles, funding, liquidations, open interest): one
event each, built by keyword; the health bookkeeping and units come from the converter."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from cryptomon.events import Candle, Event, Funding, Liquidation, OpenInterest
from cryptomon.feeds.gate import MarketGate
from cryptomon.feeds.times import epoch_s, epoch_s_or_none


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _gateio_spot_base(raw: Any) -> Any:
    """The base amount ``a`` of a Gate.io ``spot.candlesticks`` update (newer API), or None."""
    result = raw.get("result") if isinstance(raw, dict) else None
    return result.get("a") if isinstance(result, dict) else None


# Venues (cryptofeed ids) whose candle volume cryptofeed passes on in the quote currency (Gate.io
# spot's ``v``: DIS_USDT's candle after one 0.201 DIS trade at 121.58 says v = 24.43758), with
# the reader of the base amount the venue may send beside it. Every other venue's candle volume
# is its own quantity (base on spot, contracts on derivatives), converted like a trade's.
QUOTE_VOLUME_CANDLES: dict[str, Callable[[Any], Any]] = {"GATEIO": _gateio_spot_base}


def _kraken_futures_relative(raw: Any) -> tuple[Any, Any, Any] | None:
    """The fractions of a Kraken Futures ``ticker`` message (``relative_funding_rate`` and
    its prediction) and its ``markPrice``, or None without the message.

    Kraken leaves out a field that is zero. cryptofeed only publishes a ticker that carries
    the absolute ``funding_rate``: a relative rate left out beside an absolute one of zero is
    zero, beside a non-zero one it is not zero but unknown (None)."""
    if not isinstance(raw, dict):
        return None
    relative = raw.get("relative_funding_rate")
    if relative is None and not raw.get("funding_rate"):
        relative = 0
    return relative, raw.get("relative_funding_rate_prediction"), raw.get("markPrice")


# Venues (cryptofeed ids) whose funding ``rate`` cryptofeed passes on as an absolute amount
# (Kraken Futures' ``funding_rate``: quote currency per contract, 1.2455 USD on PF_XBTUSD at
# 34840 where the fraction is 3.5755e-05) and whose mark price it drops (passes None), with
# the reader of the fractions and the mark the venue sends beside them. Every other venue's
# rate is already a fraction of the position's value.
#
# Kraken Futures' rate is per hour: ``next_funding_rate_time`` (epoch ms, cryptofeed gives
# seconds) is the next whole UTC hour, when the rate of the hour under way is realized; the
# paper broker pays the rate announced before each next funding time at that time (hourly
# here, as every 8 hours on Binance), so no interval needs converting.
RELATIVE_FUNDING: dict[str, Callable[[Any], tuple[Any, Any, Any] | None]] = {
    "KRAKEN_FUTURES": _kraken_futures_relative
}


def _okx_confirm(raw: Any) -> bool | None:
    """An OKX v5 candle's ``confirm`` (its 9th field: "1" once the candle is complete), or
    None when the message does not carry it."""
    data = raw.get("data") if isinstance(raw, dict) else None
    entry = data[0] if isinstance(data, list) and data else None
    if not isinstance(entry, list) or len(entry) < 9:
        return None
    return str(entry[8]) == "1"


# Venues (cryptofeed ids) whose candle ``closed`` cryptofeed fills from another field (OKX:
# the 7th, the currency volume, so every candle with volume was "closed"), with the reader of
# the venue's own flag (None: not sent, the candle counts as open until the next one starts).
CANDLE_CLOSED: dict[str, Callable[[Any], bool | None]] = {"OKX": _okx_confirm}


class RareChannels:
    """Callbacks of the rare channels of one feed."""

    def __init__(
        self,
        exchange: str,
        *,
        publish: Callable[[Event], None],
        seen: Callable[[str, float], None],
        gate: MarketGate,
    ) -> None:
        self.exchange = exchange
        self._publish = publish
        self._seen = seen  # (config channel name, receipt): the channel's health bookkeeping
        self._gate = gate
        # (symbol, interval) -> the latest candle: published closed when a later one starts
        # and the venue did not close it (venues without a closed flag)
        self._open: dict[tuple[str, str], Candle] = {}

    async def candle(self, candle: Any, receipt: float) -> None:
        """``volume`` in base units: the venue's contracts converted by the spec (at the close
        for an inverse contract), a quote volume without the base amount divided by the close
        (the true base lies between volume / high and volume / low).

        A venue without a closed flag (cryptofeed passes None, read as False: Gate.io,
        Kraken, Huobi, KuCoin ...) sends its open candle again on every update and never says
        it closed: a candle whose last update was not closed is published again ``closed``
        (that last update) when the first candle of a later start arrives (the closed
        candles the indicator strategy and the store read). A venue that closes its candles
        (Binance ``x``, OKX ``confirm``: :data:`CANDLE_CLOSED`) already did: nothing is
        added."""
        self._seen("candles", receipt)
        volume = float(candle.volume)
        close = float(candle.close)
        base_of = QUOTE_VOLUME_CANDLES.get(candle.exchange)
        if base_of is not None:
            base = base_of(getattr(candle, "raw", None))
            volume = float(base) if base is not None else (volume / close if close else 0.0)
        elif volume:
            volume = self._gate.values(candle.symbol, volume, close, float(receipt))[0]
        closed = bool(candle.closed)
        closed_of = CANDLE_CLOSED.get(candle.exchange)
        if closed_of is not None:
            closed = bool(closed_of(getattr(candle, "raw", None)))
        event = Candle(
            exchange=self.exchange,
            symbol=candle.symbol,
            ts=epoch_s(float(candle.timestamp or receipt)),
            ts_recv=float(receipt),
            interval=str(candle.interval),
            start=epoch_s(float(candle.start)),
            end=epoch_s(float(candle.stop)),
            open=float(candle.open),
            high=float(candle.high),
            low=float(candle.low),
            close=close,
            volume=volume,
            trades=None if candle.trades is None else int(candle.trades),
            closed=closed,
        )
        key = (event.symbol, event.interval)
        last = self._open.get(key)
        if last is None or event.start >= last.start:  # (an older one: out of order)
            if last is not None and event.start > last.start and not last.closed:
                self._publish(dataclasses.replace(last, ts_recv=event.ts_recv, closed=True))
            self._open[key] = event
        self._publish(event)

    async def funding(self, funding: Any, receipt: float) -> None:
        """``rate`` and ``predicted_rate`` as fractions of the position's value per funding
        period on every venue (a venue's absolute amount replaced by the fraction it sends
        beside it: :data:`RELATIVE_FUNDING`). A rate the message does not carry is None
        (unknown), never 0.0: a real zero rate and a missing one stay apart for the
        detectors and the paper broker's funding payments."""
        self._seen("funding", receipt)
        rate, predicted, mark = funding.rate, funding.predicted_rate, funding.mark_price
        relative_of = RELATIVE_FUNDING.get(funding.exchange)
        if relative_of is not None:
            relative = relative_of(getattr(funding, "raw", None))
            if relative is not None:
                rate, predicted, venue_mark = relative
                mark = mark if venue_mark is None else venue_mark
        self._publish(
            Funding(
                exchange=self.exchange,
                symbol=funding.symbol,
                ts=epoch_s(float(funding.timestamp or receipt)),
                ts_recv=float(receipt),
                rate=_float_or_none(rate),
                mark_price=_float_or_none(mark),
                predicted_rate=_float_or_none(predicted),
                next_funding_time=epoch_s_or_none(funding.next_funding_time),
            )
        )

    async def liquidation(self, liquidation: Any, receipt: float) -> None:
        self._seen("liquidations", receipt)
        symbol = liquidation.symbol
        price = float(liquidation.price)
        qty = float(liquidation.quantity)
        amount, contracts, notional, usd = self._gate.values(symbol, qty, price, float(receipt))
        self._publish(
            Liquidation(
                exchange=self.exchange,
                symbol=symbol,
                ts=epoch_s(float(liquidation.timestamp or receipt)),
                ts_recv=float(receipt),
                side=liquidation.side,
                price=price,
                amount=amount,
                status=str(liquidation.status or ""),
                contracts=contracts,
                notional=notional,
                notional_usd=usd,
            )
        )

    async def open_interest(self, interest: Any, receipt: float) -> None:
        """``open_interest`` in base units like a trade's amount (the venue's contracts
        converted by the spec; :meth:`MarketGate.open_interest`)."""
        self._seen("open_interest", receipt)
        symbol = interest.symbol
        base, contracts, notional = self._gate.open_interest(symbol, float(interest.open_interest))
        self._publish(
            OpenInterest(
                exchange=self.exchange,
                symbol=symbol,
                ts=epoch_s(float(interest.timestamp or receipt)),
                ts_recv=float(receipt),
                open_interest=base,
                contracts=contracts,
                notional=notional,
            )
        )
