"""Binance public spot message formats produced by the simulator (REST documents and the
``data`` part of combined-stream messages), plus the running 1-minute candles behind
``kline_1m``. Prices and sizes are decimal strings, times epoch milliseconds, as on Binance.
"""

from __future__ import annotations

from typing import Any

from cryptomon.sim.market import BookChanges, SimTrade, SymbolMarket

Doc = dict[str, Any]


def exchange_info(markets: list[SymbolMarket], server_ms: int) -> Doc:
    """``GET /api/v3/exchangeInfo``: every market TRADING with its tick and lot filters."""
    symbols = []
    for m in markets:
        spec = m.spec
        symbols.append(
            {
                "symbol": spec.exchange_symbol,
                "status": "TRADING",
                "baseAsset": spec.base,
                "quoteAsset": spec.quote,
                "baseAssetPrecision": 8,
                "quoteAssetPrecision": 8,
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": m.fmt(spec.tick),
                        "maxPrice": "1000000",
                        "tickSize": m.fmt(spec.tick),
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": f"{spec.lot:.8f}",
                        "maxQty": "9000",
                        "stepSize": f"{spec.lot:.8f}",
                    },
                ],
                "permissions": ["SPOT"],
            }
        )
    return {"timezone": "UTC", "serverTime": server_ms, "symbols": symbols}


def depth_snapshot(m: SymbolMarket, limit: int) -> Doc:
    """``GET /api/v3/depth``: the top ``limit`` levels and the last applied update id."""
    bids, asks = m.book(limit)
    return {
        "lastUpdateId": m.update_id,
        "bids": [[m.fmt(p), m.fmt(s, 8)] for p, s in bids],
        "asks": [[m.fmt(p), m.fmt(s, 8)] for p, s in asks],
    }


def agg_trade(m: SymbolMarket, t: SimTrade, ms: int) -> Doc:
    """``<symbol>@aggTrade``; ``m`` (buyer is maker) is true for a taker sell."""
    return {
        "e": "aggTrade",
        "E": ms,
        "s": m.spec.exchange_symbol,
        "a": t.trade_id,
        "p": m.fmt(t.price),
        "q": m.fmt(t.amount, 8),
        "f": t.trade_id,
        "l": t.trade_id,
        "T": ms,
        "m": t.side == "sell",
        "M": True,
    }


def depth_update(m: SymbolMarket, changes: BookChanges, ms: int) -> Doc:
    """``<symbol>@depth@100ms``: absolute sizes (0 = removed), update ids ``U``..``u``."""
    return {
        "e": "depthUpdate",
        "E": ms,
        "s": m.spec.exchange_symbol,
        "U": changes.first_id,
        "u": changes.last_id,
        "b": [
            [m.fmt(m.price(p)), m.fmt(s, 8)] for p, s in sorted(changes.bids.items(), reverse=True)
        ],
        "a": [[m.fmt(m.price(p)), m.fmt(s, 8)] for p, s in sorted(changes.asks.items())],
    }


def book_ticker(m: SymbolMarket) -> Doc:
    """``<symbol>@bookTicker``: best bid/ask and their sizes."""
    bid, ask = m.best_bid, m.best_ask
    return {
        "u": m.update_id,
        "s": m.spec.exchange_symbol,
        "b": m.fmt(m.price(bid)),
        "B": m.fmt(m.bids[bid], 8),
        "a": m.fmt(m.price(ask)),
        "A": m.fmt(m.asks[ask], 8),
    }


def kline(m: SymbolMarket, c: Doc, now: float) -> Doc:
    """``<symbol>@kline_1m`` of candle ``c`` (see :class:`Candles`); closed in its last second."""
    sym = m.spec.exchange_symbol
    return {
        "e": "kline",
        "E": int(now * 1000),
        "s": sym,
        "k": {
            "t": c["t"] * 1000,
            "T": c["t"] * 1000 + 59_999,
            "s": sym,
            "i": "1m",
            "f": 0,
            "L": c["n"],
            "o": m.fmt(c["o"]),
            "c": m.fmt(c["c"]),
            "h": m.fmt(c["h"]),
            "l": m.fmt(c["l"]),
            "v": m.fmt(c["v"], 8),
            "n": c["n"],
            "x": now - c["t"] >= 59.0,
            "q": m.fmt(c["q"], 8),
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


class Candles:
    """The current 1-minute candle per symbol, built from the simulated trades."""

    def __init__(self) -> None:
        self._candles: dict[str, Doc] = {}

    @staticmethod
    def _new(start: int, price: float) -> Doc:
        return {
            "t": start,
            "o": price,
            "h": price,
            "l": price,
            "c": price,
            "v": 0.0,
            "n": 0,
            "q": 0.0,
        }

    def add(self, symbol: str, price: float, amount: float, now: float) -> None:
        start = int(now // 60 * 60)
        c = self._candles.get(symbol)
        if c is None or c["t"] != start:
            c = self._candles[symbol] = self._new(start, price)
        c["h"], c["l"], c["c"] = max(c["h"], price), min(c["l"], price), price
        c["v"] += amount
        c["q"] += amount * price
        c["n"] += 1

    def current(self, symbol: str, now: float, price: float) -> Doc:
        """This minute's candle; a flat one at ``price`` if nothing traded yet."""
        start = int(now // 60 * 60)
        c = self._candles.get(symbol)
        if c is None or c["t"] != start:
            return self._new(start, price)
        return c
