"""One backtest as the command runs it: inputs -> runner -> document -> store (+ report).

:class:`BacktestRequest` holds the arguments (picklable: the sweep sends it to worker
processes with the settings). :func:`run_request` loads the candles, runs them, summarizes;
:func:`store_run` keeps the run in ``backtest_runs``.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import yaml

from cryptomon.backtest.data import CandleSeries, timeframe_seconds
from cryptomon.backtest.inputs import (
    FileData,
    cut_trades,
    load_db,
    load_db_trades,
    load_file,
    select_range,
)
from cryptomon.backtest.result import BacktestResult
from cryptomon.backtest.runner import BacktestRunner
from cryptomon.backtest.stats import result_document
from cryptomon.config import Settings
from cryptomon.market.datafiles import DataError, TradeRows


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestRequest:
    """What to run: files (or the database when empty), markets, range, timeframe."""

    files: tuple[str, ...] = ()
    exchange: str | None = None
    symbols: tuple[str, ...] = ()
    timeframe: str = "1m"
    timeframe_given: bool = False  # --timeframe given: candle files must be of it
    start: float | None = None
    end: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    trades: bool = False  # public trades (files or stored) instead of candles
    # the command's inputs as given (files, --config, range, ...: absolute paths), without
    # the overrides: with their --set options, the command that runs it again
    argv: tuple[str, ...] = ()
    # the folder a run from a relative SQLite file ran in (the command goes there first)
    workdir: str | None = None

    @property
    def command(self) -> str:
        """``crypto-monitor backtest ...``: this run again (shell-quoted); ``cd FOLDER &&``
        before it for a run whose database is a SQLite file named relative to the folder."""
        line = shlex.join(
            ["crypto-monitor", "backtest", *self.argv, *override_args(self.overrides)]
        )
        return f"cd {shlex.quote(self.workdir)} && {line}" if self.workdir else line

    @property
    def source(self) -> str:
        return ", ".join(self.files) if self.files else "db"


def scalar_text(value: Any) -> str:
    """``value`` written so that YAML reads it back as the same value (``--set`` and
    ``--sweep`` values): ``null``, ``true``, ``2.5``, a string quoted only when needed."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        try:
            same = yaml.safe_load(value) == value
        except yaml.YAMLError:
            same = False
        return value if same and "," not in value else json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


def override_args(overrides: dict[str, Any]) -> list[str]:
    """The ``--set`` options that run ``overrides`` again, in their order."""
    return [f"--set={key}={scalar_text(value)}" for key, value in overrides.items()]


async def load_series(settings: Settings, req: BacktestRequest) -> list[CandleSeries]:
    """The candle series of the request (files, or the configured database)."""
    if req.files:
        symbol = _file_symbol(req)
        data = [
            load_file(f, exchange=req.exchange or "binance", symbol=symbol, timeframe=req.timeframe)
            for f in req.files
        ]
        wanted = _wanted(req, data)
        series = [d.series for d in wanted]
        if req.timeframe_given:  # trade files are aggregated to it; candles are not resampled
            kept = {id(d) for d in wanted}
            for f, d in zip(req.files, data, strict=True):
                if id(d) in kept and d.trades is None and d.series.timeframe != req.timeframe:
                    raise DataError(
                        f"--timeframe {req.timeframe}: {f} holds {d.series.timeframe} candles "
                        f"(not resampled); leave --timeframe out or give "
                        f"--timeframe {d.series.timeframe}"
                    )
        frames = sorted({s.timeframe for s in series}, key=timeframe_seconds)
        if len(frames) > 1:  # one clock step and one indicator interval per run
            raise DataError(
                f"the files hold candles of different timeframes ({', '.join(frames)}); "
                "backtest files of one timeframe"
            )
        return select_range(series, req.start, req.end)
    from cryptomon.store.db import Database

    db = Database(settings.database)
    await db.start()
    try:
        return await load_db(
            db,
            exchange=req.exchange,
            symbols=list(req.symbols),
            timeframe=req.timeframe,
            start=req.start,
            end=req.end,
        )
    finally:
        await db.stop()


async def load_trade_markets(
    settings: Settings, req: BacktestRequest
) -> list[tuple[str, str, TradeRows]]:
    """(exchange, symbol, trades) of the request: trade files, or the stored trades."""
    if req.files:
        symbol = _file_symbol(req)
        loaded = [
            load_file(f, exchange=req.exchange or "binance", symbol=symbol) for f in req.files
        ]
        out = []
        wanted = {id(d) for d in _wanted(req, loaded)}
        for f, data in zip(req.files, loaded, strict=True):
            if id(data) not in wanted:
                continue
            if not isinstance(data.trades, TradeRows):
                raise DataError(f"--trades: {f} holds candles, not trades")
            trades = cut_trades(data.trades, req.start, req.end)
            if not len(trades):
                raise DataError(f"no trades of {data.series.symbol} in {f} in the range")
            out.append((data.series.exchange, data.series.symbol, trades))
        return out
    from cryptomon.store.db import Database

    db = Database(settings.database)
    await db.start()
    try:
        return await load_db_trades(
            db, exchange=req.exchange, symbols=list(req.symbols), start=req.start, end=req.end
        )
    finally:
        await db.stop()


def _file_symbol(req: BacktestRequest) -> str | None:
    """The market one file is named by ``--symbols`` (one file, one symbol: its name need not
    tell it); with several files each is named by its file name and ``--symbols`` filters."""
    return req.symbols[0] if len(req.files) == 1 and len(req.symbols) == 1 else None


def _wanted(req: BacktestRequest, data: list[FileData]) -> list[FileData]:
    """The files of the markets in ``--symbols`` (all without it); a symbol without a file,
    or two files of one market, is a :class:`DataError`."""
    markets: dict[tuple[str, str], str] = {}
    for f, d in zip(req.files, data, strict=True):
        key = (d.series.exchange, d.series.symbol)
        if key in markets:
            raise DataError(
                f"{markets[key]} and {f} are both {key[0]} {key[1]}; give one file per market"
            )
        markets[key] = f
    if _file_symbol(req) is not None or not req.symbols:
        return data
    missing = [s for s in req.symbols if s not in {d.series.symbol for d in data}]
    if missing:
        raise DataError(
            f"--symbols: no file of {', '.join(missing)} among {', '.join(req.files)} "
            "(the market of each file is read from its name, e.g. ALT_BTC-1m.json)"
        )
    return [d for d in data if d.series.symbol in req.symbols]


def check_quote(settings: Settings, symbols: list[str]) -> None:
    """The paper balance must be in the quote currency of every market traded."""
    from cryptomon.config import split_symbol

    quote = settings.trading.paper.quote_currency
    wrong = [s for s in symbols if split_symbol(s)[1] != quote]  # BTC-USDT-PERP: USDT
    if wrong:
        other = split_symbol(wrong[0])[1]
        raise DataError(
            f"{wrong[0]} is quoted in {other} but the paper balance is in {quote}; "
            f"set trading.paper.quote_currency: {other} (and its starting_balance)"
        )


def recordings(req: BacktestRequest) -> bool:
    """True when the request's files are raw recordings (``EXCHANGE.0``, ``.ws.``, ...)."""
    from cryptomon.backtest.recording import is_recording

    return bool(req.files) and all(is_recording(f) for f in req.files)


async def run_request(
    settings: Settings, req: BacktestRequest
) -> tuple[BacktestResult, dict[str, Any]]:
    """Load and run the request: recordings through the replay, else candles."""
    if req.trades and not recordings(req):
        from cryptomon.backtest.trades import TradeRunner

        markets = await load_trade_markets(settings, req)
        check_quote(settings, [sym for _, sym, _ in markets])
        result = await TradeRunner(settings, markets).run()
        return result, _document(settings, result, req)
    if recordings(req):
        from cryptomon.backtest.recording import RecordingRunner

        given = [
            name
            for name, value in (
                ("--symbols", req.symbols),
                ("--start", req.start),
                ("--end", req.end),
                ("--timeframe", req.timeframe_given),
            )
            if value
        ]
        if given:  # the replay runs the whole recording: they would be ignored
            raise DataError(
                f"{', '.join(given)}: a recording is replayed whole, every market it holds; "
                "leave them out (or record the markets and time wanted)"
            )

        result = await RecordingRunner(settings, list(req.files), exchange=req.exchange).run()
        return result, _document(settings, result, req)
    return await run_series(settings, await load_series(settings, req), req)


async def run_series(
    settings: Settings, series: list[CandleSeries], req: BacktestRequest
) -> tuple[BacktestResult, dict[str, Any]]:
    """Run ``series`` through the pipeline; the result and its document."""
    check_quote(settings, [s.symbol for s in series])
    result = await BacktestRunner(settings, series).run()
    return result, _document(settings, result, req)


def _document(settings: Settings, result: BacktestResult, req: BacktestRequest) -> dict[str, Any]:
    series = result.series
    settings = result.settings or settings  # as run (auto trading forced on), not as given
    result.params = {
        "source": req.source,
        "exchange": req.exchange,
        "symbols": [s.symbol for s in series],
        "timeframe": series[0].timeframe if series else req.timeframe,
        "start": req.start,
        "end": req.end,
        "overrides": req.overrides,
        "command": req.command,
        "trading": settings.trading.model_dump(mode="json", exclude={"live"}),
        "anomaly_detection": settings.anomaly_detection.model_dump(mode="json"),
        "backtest": settings.backtest.model_dump(mode="json"),
    }
    document = result_document(result)
    document["summary"]["warnings"] = tick_warnings(settings, series)
    return document


def tick_warnings(settings: Settings, series: list[CandleSeries]) -> list[str]:
    """A paper tick above a market's lowest price (``backtest.infer_instrument`` off and
    ``trading.paper.tick_size`` left at a default meant for another market): every quote is
    then rounded to a price off the market, and the run's orders say nothing of it."""
    tick = settings.trading.paper.tick_size
    out = []
    for s in series:
        low = float(np.min(s.low)) if len(s.low) else math.nan
        if low > 0 and tick > low:
            out.append(
                f"trading.paper.tick_size {tick:g} is above {s.symbol}'s lowest price {low:g}: "
                "every quote rounds to a price off the market; set trading.paper.tick_size to "
                "the market's tick, or leave backtest.infer_instrument on"
            )
    return out


def _run_columns(document: dict[str, Any], report: str | None) -> dict[str, Any]:
    """The ``backtest_runs`` columns of a run's document."""
    from cryptomon.store.types import utc

    summary = document["summary"]
    return {
        "created_at": datetime.now(UTC),
        "source": document["params"]["source"][:200],
        "symbols": document["params"]["symbols"],
        "start": utc(summary["start"]),
        "end": utc(summary["end"]),
        "params": document["params"],
        "summary": summary,
        "breakdown": {
            "by_symbol": document["by_symbol"],
            "by_source": document["by_source"],
        },
        "trades": document["trades"],
        "digest": document["digest"],
        "report_html": report,
    }


async def store_run(
    settings: Settings, result: BacktestResult, document: dict[str, Any], report: str | None
) -> int:
    """Keep the run in ``backtest_runs`` of the configured database; its id."""
    from cryptomon.store.db import Database
    from cryptomon.store.history import save_run

    db = Database(settings.database)
    await db.start()
    try:
        return await save_run(db, _run_columns(document, report))
    finally:
        await db.stop()


async def store_sweep(
    settings: Settings, documents: list[dict[str, Any]], *, metric: str
) -> list[int]:
    """Keep a sweep's variants (``documents``, ranked best first by ``metric``) in
    ``backtest_runs``, without reports; their ids (the first names the sweep)."""
    from cryptomon.store.db import Database
    from cryptomon.store.history import save_sweep

    db = Database(settings.database)
    await db.start()
    try:
        return await save_sweep(db, [_run_columns(d, None) for d in documents], metric=metric)
    finally:
        await db.stop()
