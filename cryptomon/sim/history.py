"""Historical market data endpoints of the simulator, for ``crypto-monitor download``.

``GET /api/v3/klines`` (``symbol, interval, startTime, endTime, limit``) and
``GET /api/v3/aggTrades`` (``symbol, startTime, endTime, limit``) over a generated, seeded
history of one-minute candles (a random walk) with a few trades per minute, in Binance's
formats, so the real ccxt ``fetch_ohlcv`` / ``fetch_trades`` code talks to them.

To exercise a client: at most ``max_limit`` rows per answer (pagination), minutes listed in
``gaps`` have no candle and no trade (the venue had no data), and :meth:`rate_limit_next`
makes the next request(s) answer ``429`` with a ``Retry-After`` header like Binance. Every
request is counted in ``requests`` (path, query) so a test sees what was fetched.

Install with ``sim.add_routes(history.routes())`` before ``sim.start()``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from aiohttp import web

MINUTE_MS = 60_000
INTERVALS_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}


class HistoryEndpoints:
    """A deterministic minute history of ``symbols`` (exchange form, ``BTCUSDT``)."""

    def __init__(
        self,
        symbols: list[str],
        *,
        start_ms: int,
        end_ms: int,
        seed: int = 7,
        max_limit: int = 500,
        gaps: list[tuple[int, int]] | None = None,
        trades_per_minute: int = 3,
        trade_spacing_ms: int | None = None,
    ) -> None:
        """``trade_spacing_ms``: between a minute's trades (default: spread over the minute;
        0: all at its first millisecond, as a burst of fills of one taker order prints)."""
        self.start_ms = start_ms - start_ms % MINUTE_MS
        self.end_ms = end_ms
        self.max_limit = max_limit
        self.trades_per_minute = trades_per_minute
        self.trade_spacing_ms = (
            MINUTE_MS // trades_per_minute if trade_spacing_ms is None else trade_spacing_ms
        )
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._limited: list[float] = []
        n = max(0, (end_ms - self.start_ms) // MINUTE_MS)
        times = self.start_ms + MINUTE_MS * np.arange(n, dtype=np.int64)
        keep = np.ones(n, dtype=bool)
        for lo, hi in gaps or []:
            keep &= ~((times >= lo) & (times < hi))
        self.times = times[keep]
        self._series: dict[str, np.ndarray] = {}
        rng = np.random.default_rng(seed)
        for i, sym in enumerate(symbols):
            close = (100.0 + 900.0 * i) * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
            self._series[sym] = close[keep]

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v3/klines", self._klines),
            web.get("/api/v3/aggTrades", self._agg_trades),
        ]

    def rate_limit_next(self, retry_after_s: float = 1.0, times: int = 1) -> None:
        """The next ``times`` requests answer 429 with ``Retry-After: retry_after_s``."""
        self._limited.extend([retry_after_s] * times)

    # ------------------------------------------------------------------ handlers

    def _check(self, request: web.Request) -> tuple[np.ndarray, int]:
        self.requests.append((request.path, dict(request.query)))
        if self._limited:
            wait = self._limited.pop(0)
            raise web.HTTPTooManyRequests(
                headers={"Retry-After": str(math.ceil(wait))},
                text='{"code":-1003,"msg":"Too many requests; current limit is exceeded."}',
                content_type="application/json",
            )
        closes = self._series.get(request.query.get("symbol", ""))
        if closes is None:
            raise web.HTTPBadRequest(
                text='{"code":-1121,"msg":"Invalid symbol."}', content_type="application/json"
            )
        try:
            limit = int(request.query.get("limit", "500"))
        except ValueError:
            limit = 500
        return closes, max(1, min(limit, self.max_limit))

    def _window(self, request: web.Request, times: np.ndarray) -> tuple[int, int]:
        start = int(request.query.get("startTime", "0"))
        end = int(request.query.get("endTime", str(2**62)))
        return int(np.searchsorted(times, start, "left")), int(np.searchsorted(times, end, "right"))

    async def _klines(self, request: web.Request) -> web.Response:
        closes, limit = self._check(request)
        step = INTERVALS_MS.get(request.query.get("interval", ""))
        if step != MINUTE_MS:
            raise web.HTTPBadRequest(
                text='{"code":-1120,"msg":"Invalid interval."}', content_type="application/json"
            )
        lo, hi = self._window(request, self.times)
        rows: list[list[Any]] = []
        for k in range(lo, min(hi, lo + limit)):
            t = int(self.times[k])
            close = float(closes[k])
            prev = float(closes[k - 1]) if k else close
            high, low = max(prev, close) * 1.0005, min(prev, close) * 0.9995
            vol = 1.0 + (t // MINUTE_MS) % 7
            rows.append(
                [
                    t,
                    f"{prev:.2f}",
                    f"{high:.2f}",
                    f"{low:.2f}",
                    f"{close:.2f}",
                    f"{vol:.4f}",
                    t + MINUTE_MS - 1,
                    f"{vol * close:.4f}",
                    self.trades_per_minute,
                    f"{vol / 2:.4f}",
                    f"{vol * close / 2:.4f}",
                    "0",
                ]
            )
        return web.json_response(rows)

    async def _agg_trades(self, request: web.Request) -> web.Response:
        closes, limit = self._check(request)
        per = self.trades_per_minute
        times = (self.times[:, None] + (np.arange(per) * self.trade_spacing_ms)[None, :]).ravel()
        lo, hi = self._window(request, times)
        out = []
        for k in range(lo, min(hi, lo + limit)):
            minute, j = divmod(k, per)
            price = float(closes[minute]) * (1 + 0.0001 * (j - 1))
            out.append(
                {
                    "a": int(self.times[minute] // MINUTE_MS) * per + j,
                    "p": f"{price:.2f}",
                    "q": f"{0.01 * (1 + j):.4f}",
                    "f": k,
                    "l": k,
                    "T": int(times[k]),
                    "m": j % 2 == 1,
                    "M": True,
                }
            )
        return web.json_response(out)
