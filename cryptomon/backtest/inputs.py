"""What a backtest runs on: candle series from the database or from files, checked.

Every problem is an :class:`~cryptomon.backtest.data.DataError` whose message is the one line
the command prints (exit 2): unknown timeframe, ``--start`` after ``--end``, an empty range,
a symbol without data, an unreadable file.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cryptomon.backtest.data import (
    TIMEFRAMES,
    CandleSeries,
    candles_from_trades,
    parse_candles,
    series_from_rows,
    timeframe_seconds,
)
from cryptomon.config import normalize_symbol
from cryptomon.market.datafiles import (
    MAX_EPOCH_S,
    DataError,
    TradeRows,
    is_trade_rows,
    parse_trades,
    read_rows,
)

_EXPECTED_ROWS = (
    "expected candle rows [open_time_ms, open, high, low, close, volume] or trade rows "
    "[timestamp_ms, id, type, side, price, amount, cost], as a JSON list of lists or as CSV "
    "lines (a header line allowed)"
)
_HEAD_BYTES = 65_536
_FILE_SYMBOL = re.compile(r"^([A-Za-z0-9]+)[_-]([A-Za-z0-9]+)(?:[-_.]|$)")


def parse_time(value: str | None, option: str) -> float | None:
    """``2026-01-01``, ``2026-01-01T12:00`` (UTC unless an offset is given) or epoch seconds."""
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not 0 <= number <= MAX_EPOCH_S:  # also NaN; a time in ms was a traceback
            raise DataError(
                f"{option}: expected epoch seconds (1970..3000) or a date like 2026-01-01, "
                f"got {value!r}" + (" (milliseconds?)" if number > MAX_EPOCH_S else "")
            )
        return number
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(
            f"{option}: expected a date like 2026-01-01 or 2026-01-01T12:00, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def check_range(start: float | None, end: float | None, names: tuple[str, str]) -> None:
    if start is not None and end is not None and start >= end:
        raise DataError(f"{names[0]} ({_iso(start)}) must be before {names[1]} ({_iso(end)})")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def symbol_from_path(path: str) -> str | None:
    """``ALT_BTC-1m.json.gz`` -> ``ALT-BTC`` (freqtrade's file names), else None."""
    match = _FILE_SYMBOL.match(Path(path).name)
    if match is None:
        return None
    try:
        return normalize_symbol(f"{match.group(1)}-{match.group(2)}")
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class FileData:
    """One file's content: candles, and the trades when the file held trades."""

    series: CandleSeries
    trades: object | None  # TradeRows when the file held trades


def load_file(path: str, *, exchange: str, symbol: str | None, timeframe: str = "1m") -> FileData:
    """Candles (or trades aggregated to ``timeframe`` candles) of one JSON/CSV file."""
    if Path(path).is_dir():
        raise DataError(
            f"cannot read {path}: a directory; expected candle or trade files (JSON/CSV) or "
            "a recording's files (e.g. DIR/BINANCE.*)"
        )
    if not Path(path).is_file():
        raise DataError(f"cannot read {path}: no such file")
    sym = symbol or symbol_from_path(path)
    if sym is None:
        raise DataError(
            f"{path}: cannot tell the symbol from the file name; pass --symbol BASE/QUOTE"
        )
    _check_json(path)
    rows = read_rows(path)
    if not rows:
        raise DataError(f"cannot read {path}: {_nothing_in(path)}; {_EXPECTED_ROWS}")
    if is_trade_rows(rows):
        trades = parse_trades(rows, path=path)
        series = candles_from_trades(trades, exchange=exchange, symbol=sym, timeframe=timeframe)
        return FileData(series, trades)
    return FileData(parse_candles(rows, path=path, exchange=exchange, symbol=sym), None)


def _text(path: str, limit: int | None = None) -> str | None:
    """The file's text (its first ``limit`` bytes), gunzipped; None when it cannot be read
    as UTF-8 text (``read_rows`` names that problem)."""
    try:
        with Path(path).open("rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gz else Path(path).open("rb") as f:
            raw = f.read(-1 if limit is None else limit)
    except (OSError, EOFError):
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if limit is not None and exc.start >= len(raw) - 4:  # a character cut by the limit
            return raw[: exc.start].decode("utf-8")
        return None


def _check_json(path: str) -> None:
    """A JSON file that is not a JSON list of rows: what is wrong with it. ``read_rows`` took
    any text not starting with ``[`` for CSV, so a JSON object, or text that is not JSON in
    a ``.json`` file, came out as a CSV header and "no rows"."""
    head = _text(path, _HEAD_BYTES)
    if head is None:
        return
    start = head.lstrip()
    named_json = Path(path).name.lower().removesuffix(".gz").endswith(".json")
    if not start or start.startswith("[") or not (named_json or start[:1] in ("{", '"')):
        return  # empty, a JSON list (read_rows checks them) or CSV
    text = _text(path)
    if text is None:
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"cannot read {path}: not valid JSON ({exc.msg}, line {exc.lineno} column "
            f"{exc.colno}); {_EXPECTED_ROWS}"
        ) from None
    kind = (
        "a JSON object"
        if isinstance(data, dict)
        else "a JSON string"
        if isinstance(data, str)
        else "a single JSON value"
    )
    raise DataError(f"cannot read {path}: not a JSON list of rows ({kind}); {_EXPECTED_ROWS}")


def _nothing_in(path: str) -> str:
    """What a file without rows holds: an empty JSON list, or a CSV header alone."""
    text = (_text(path, _HEAD_BYTES) or "").strip()
    if text.startswith("["):
        return "an empty JSON list, no rows"
    first = text.splitlines()[0] if text else ""
    return f"only a header line ({first[:60]!r}), no rows"


def select_range(
    series: list[CandleSeries], start: float | None, end: float | None
) -> list[CandleSeries]:
    """Each series cut to ``[start, end)``; a market left empty is an error naming it."""
    out = []
    for s in series:
        cut = s.between(start, end)
        if not len(cut):
            span = f"{_iso(float(s.ts[0]))} .. {_iso(float(s.ts[-1]))}" if len(s) else "none"
            raise DataError(
                f"no {s.timeframe} candles of {s.exchange} {s.symbol} in the range "
                f"{_iso(start) if start else 'start'} .. {_iso(end) if end else 'end'} "
                f"(data: {span})"
            )
        out.append(cut)
    return out


async def _stored_timeframes(
    db: object, exchange: str | None, symbol: str, *, skip: str
) -> list[str]:
    """The timeframes other than ``skip`` with stored candles of ``symbol`` (on
    ``exchange``), shortest first: asked only to explain a missing one."""
    from cryptomon.store.db import Database
    from cryptomon.store.history import stored_markets

    assert isinstance(db, Database)
    out = []
    for tf in TIMEFRAMES:
        if tf == skip:
            continue
        markets = await stored_markets(db, tf)
        if any(m[1] == symbol and exchange in (None, m[0]) for m in markets):
            out.append(tf)
    return out


async def load_db(
    db: object,
    *,
    exchange: str | None,
    symbols: list[str],
    timeframe: str,
    start: float | None,
    end: float | None,
) -> list[CandleSeries]:
    """Stored candles of each market (every stored market of ``timeframe`` when none given)."""
    from cryptomon.store.db import Database
    from cryptomon.store.history import load_candles, stored_markets

    assert isinstance(db, Database)
    timeframe_seconds(timeframe)
    stored = await stored_markets(db, timeframe)
    markets = stored if exchange is None else [m for m in stored if m[0] == exchange]
    if symbols:
        wanted = []
        for sym in symbols:
            found = [m for m in markets if m[1] == sym]
            elsewhere = sorted({ex for ex, s in stored if s == sym})
            if not found and elsewhere:  # the exchange is what to change (a typo)
                raise _other_exchanges(f"{timeframe} candles of {sym}", exchange, elsewhere)
            if not found:
                where = f" on {exchange}" if exchange else ""
                others = await _stored_timeframes(db, exchange, sym, skip=timeframe)
                if others:  # the market is there: the timeframe is what to change
                    raise DataError(
                        f"no stored {timeframe} candles of {sym}{where}; stored: "
                        f"{', '.join(others)} (candles are not resampled; give --timeframe "
                        f"{others[0]})"
                    )
                raise DataError(
                    f"no stored {timeframe} candles of {sym}{where}; import or download them "
                    "first (crypto-monitor download)"
                )
            if len(found) > 1:  # never one of them silently: the user names it
                venues = ", ".join(ex for ex, _ in found)
                raise DataError(
                    f"--symbols {sym}: stored {timeframe} candles on {venues}; "
                    "name one with --exchange"
                )
            wanted.extend(found)
        markets = wanted
    if not markets and stored:
        raise _other_exchanges(f"{timeframe} candles", exchange, sorted({ex for ex, _ in stored}))
    if not markets:
        raise DataError(f"no stored {timeframe} candles; run crypto-monitor download first")
    out = []
    for ex, sym in markets:
        rows = await load_candles(
            db, exchange=ex, symbol=sym, interval=timeframe, start=start, end=end
        )
        if not rows:
            raise DataError(
                f"no {timeframe} candles of {ex} {sym} between "
                f"{_iso(start) if start else 'the start'} and {_iso(end) if end else 'the end'}"
            )
        out.append(series_from_rows(rows, exchange=ex, symbol=sym, timeframe=timeframe))
    return out


def _other_exchanges(what: str, exchange: str | None, stored_on: list[str]) -> DataError:
    """``--exchange`` names one without ``what`` while others have it: name them."""
    return DataError(
        f"no stored {what} on {exchange}; stored on: {', '.join(stored_on)} "
        f"(give --exchange {stored_on[0]})"
    )


async def load_db_trades(
    db: object,
    *,
    exchange: str | None,
    symbols: list[str],
    start: float | None,
    end: float | None,
) -> list[tuple[str, str, TradeRows]]:
    """Stored public trades of each market (every market with trades when none given)."""
    from cryptomon.store.db import Database
    from cryptomon.store.history import load_trades, trade_markets

    assert isinstance(db, Database)
    markets = [
        m
        for m in await trade_markets(db)
        if (exchange is None or m[0] == exchange) and (not symbols or m[1] in symbols)
    ]
    missing = [s for s in symbols if s not in {m[1] for m in markets}]
    if missing or not markets:
        what = ", ".join(missing) if missing else "any market"
        raise DataError(
            f"no stored trades of {what}; download them first "
            "(crypto-monitor download --trades, or --from-file a trade file)"
        )
    out = []
    for ex, sym in markets:
        rows = await load_trades(db, exchange=ex, symbol=sym, start=start, end=end)
        if not rows:
            raise DataError(f"no trades of {ex} {sym} in the range")
        out.append((ex, sym, trade_rows(rows)))
    return out


def trade_rows(rows: list[tuple[float, float, float, str, str]]) -> TradeRows:
    return TradeRows(
        ts=np.asarray([r[0] for r in rows]),
        price=np.asarray([r[1] for r in rows]),
        amount=np.asarray([r[2] for r in rows]),
        side=[r[3] for r in rows],
        ids=[r[4] for r in rows],
    )


def cut_trades(trades: TradeRows, start: float | None, end: float | None) -> TradeRows:
    lo = 0 if start is None else int(np.searchsorted(trades.ts, start, side="left"))
    hi = len(trades) if end is None else int(np.searchsorted(trades.ts, end, side="left"))
    return TradeRows(
        ts=trades.ts[lo:hi],
        price=trades.price[lo:hi],
        amount=trades.amount[lo:hi],
        side=trades.side[lo:hi],
        ids=trades.ids[lo:hi],
    )
