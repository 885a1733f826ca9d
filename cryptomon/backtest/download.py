"""History through ccxt (``fetch_ohlcv`` / ``fetch_trades``) into the database.

- **Resumable**: the stored history candles of the range are read first and only the missing
  spans are requested, so a second run fetches only what is missing (gaps the venue has no
  data for are asked again, cheaply, and reported again). A live candle the daemon stored in
  the range is fetched again and becomes history (retention deletes live candles only).
- **Paginated**: each span is walked with ``since`` = the last row + one interval, ``limit``
  rows at a time; an answer with no row inside the span ends it.
- **Rate-limited**: ccxt's ``enableRateLimit`` spaces requests; a 429/418 (``DDoSProtection``
  in ccxt) waits the venue's ``Retry-After`` (else a capped backoff) and repeats the request.
- **Gaps** (expected candles the venue did not have) are reported as time spans.

Trades (``--trades``) are fetched from the newest stored history trade of the range (when the
stored ones begin in its first hour; else from ``since``), one hour window at a time as
Binance requires, and stored with ``source =
download`` (a live trade of the same id stored by the daemon becomes ``download``). Candles
are stored as the venue's (``source = exchange``) with ``history`` set. Retention keeps both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptomon.clock import Clock
from cryptomon.store.db import Database
from cryptomon.store.history import (
    candle_rows,
    candle_times,
    save_candles,
    save_trades,
    trade_bounds,
)
from cryptomon.store.types import utc

Progress = Callable[[int, int], None]
MAX_RATE_RETRIES = 8
HOUR_MS = 3_600_000


@dataclass(slots=True)
class DownloadReport:
    """What one market's download did."""

    symbol: str
    requests: int = 0
    candles: int = 0
    trades: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    gaps: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "requests": self.requests,
            "candles": self.candles,
            "trades": self.trades,
            "rate_limited": self.rate_limited,
            "waited_s": self.waited_s,
            "gaps": [[a, b] for a, b in self.gaps],
        }


def missing_spans(
    stored: list[float], start: float, end: float, step: float
) -> list[tuple[float, float]]:
    """``[a, b)`` spans of expected open times in ``[start, end)`` that are not stored."""
    have = {round(t) for t in stored}
    spans: list[tuple[float, float]] = []
    t = start
    run: float | None = None
    while t < end:
        if round(t) in have:
            if run is not None:
                spans.append((run, t))
                run = None
        elif run is None:
            run = t
        t += step
    if run is not None:
        spans.append((run, t))
    return spans


class Downloader:
    """One ccxt exchange client, one database; :meth:`candles` and :meth:`trades` per market."""

    def __init__(
        self,
        *,
        exchange: Any,
        db: Database,
        clock: Clock,
        name: str,
        limit: int = 1000,
        progress: Progress | None = None,
    ) -> None:
        self.exchange = exchange
        self.db = db
        self.clock = clock
        self.name = name
        self.limit = limit
        self.progress = progress
        self._page = 0  # the longest answer of fetch_trades seen (the venue's page size)

    async def _call(self, report: DownloadReport, method: str, *args: Any, **kw: Any) -> Any:
        """One request; a 429/418 waits Retry-After (or a backoff) and repeats it."""
        import ccxt

        delay = 1.0
        for _ in range(MAX_RATE_RETRIES):
            report.requests += 1
            try:
                return await getattr(self.exchange, method)(*args, **kw)
            except ccxt.DDoSProtection:
                told = self._retry_after()  # 0 is "now", not "absent"
                wait = delay if told is None else told
                delay = min(delay * 2, 60.0)
                report.rate_limited += 1
                report.waited_s += wait
                await self.clock.sleep(wait)
        # a ccxt error: the command says it in one line and keeps what was stored (a
        # RuntimeError here was a traceback)
        raise ccxt.DDoSProtection(f"{method}: still rate limited after {MAX_RATE_RETRIES} attempts")

    def _retry_after(self) -> float | None:
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        for key, value in dict(headers).items():
            if str(key).lower() == "retry-after":
                try:
                    return max(0.0, float(value))
                except ValueError:
                    return None
        return None

    async def candles(
        self, symbol: str, market: str, *, timeframe: str, step: float, start: float, end: float
    ) -> DownloadReport:
        """Fetch the missing candles of ``[start, end)``; store them; report the gaps."""
        report = DownloadReport(symbol)

        async def missing() -> list[tuple[float, float]]:
            """The spans of ``[start, end)`` without a history candle stored."""
            times = await candle_times(
                self.db,
                exchange=self.name,
                symbol=symbol,
                interval=timeframe,
                start=start,
                end=end,
                history=True,
            )
            return missing_spans(times, start, end, step)

        spans = await missing()
        total = sum(round((b - a) / step) for a, b in spans)
        done = 0
        for lo, hi in spans:
            since = lo
            while since < hi:
                rows = await self._call(
                    report,
                    "fetch_ohlcv",
                    market,
                    timeframe,
                    since=int(since * 1000),
                    limit=self.limit,
                    params={"endTime": int(hi * 1000) - 1},
                )
                fresh = [r for r in rows or [] if since * 1000 <= r[0] < hi * 1000]
                if not fresh:
                    break
                out = [(r[0] / 1000.0, r[1], r[2], r[3], r[4], r[5] or 0.0) for r in fresh]
                report.candles += await save_candles(
                    self.db,
                    candle_rows(
                        exchange=self.name,
                        symbol=symbol,
                        interval=timeframe,
                        step_s=step,
                        rows=out,
                        source="exchange",
                    ),
                )
                done += len(fresh)
                if self.progress is not None:
                    self.progress(min(done, total), total)
                since = fresh[-1][0] / 1000.0 + step
        report.gaps = await missing()
        return report

    async def trades(
        self, report: DownloadReport, symbol: str, market: str, start: float, end: float
    ) -> None:
        """Fetch the public trades of ``[start, end)`` not stored yet (see the module doc)."""
        # resume from the newest stored trade of the range when the stored ones begin within
        # its first hour (what an earlier or interrupted download of it left), else from
        # ``start`` (the ids stored already are skipped); from that trade's millisecond, not
        # after it: an interrupted run may have stored only some of the trades printed in it
        bounds = await trade_bounds(
            self.db, exchange=self.name, symbol=symbol, start=start, end=end
        )
        resume = bounds[1] if bounds is not None and bounds[0] < start + HOUR_MS / 1000 else start
        since_ms = round(resume * 1000)
        end_ms = int(end * 1000)
        while since_ms < end_ms:
            window = min(since_ms + HOUR_MS - 1, end_ms - 1)
            rows = await self._call(
                report,
                "fetch_trades",
                market,
                since=since_ms,
                limit=self.limit,
                params={"endTime": window},
            )
            rows = rows or []
            # a venue answers at most its own page size, which may be below --limit (Binance:
            # 1,000): an answer as long as the longest seen may be a full page too
            self._page = max(self._page, len(rows))
            fresh = [t for t in rows if since_ms <= int(t["timestamp"]) <= window]
            if fresh:
                report.trades += await save_trades(self.db, self._trade_rows(symbol, fresh))
            if fresh and len(rows) >= min(self.limit, self._page):  # more in this window:
                # continue from the last one's millisecond (the page may have ended amid its
                # trades; those stored already are skipped by id), after it when the whole
                # page was that one
                last = int(fresh[-1]["timestamp"])
                since_ms = last if last > since_ms else last + 1
            else:
                since_ms = window + 1
            await asyncio.sleep(0)

    def _trade_rows(self, symbol: str, trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "exchange": self.name,
                "symbol": symbol,
                "ts": utc(int(t["timestamp"]) / 1000.0),
                "price": float(t["price"]),
                "amount": float(t["amount"]),
                "side": t.get("side") or "buy",
                "trade_id": str(t.get("id")),
                "source": "download",
            }
            for t in trades
        ]
