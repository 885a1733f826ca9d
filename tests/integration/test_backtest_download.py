"""``crypto-monitor download`` through the real ccxt code against the simulator's klines and
aggTrades endpoints: pagination, a 429 with Retry-After, a gap, resume; and the import of both
shared freqtrade series."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select

from cryptomon.backtest.download import Downloader, DownloadReport
from cryptomon.clock import ManualClock
from cryptomon.config import DatabaseConfig, LiveTradingConfig, StorageConfig
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.history import HistoryEndpoints
from cryptomon.sim.market import MarketModel
from cryptomon.store import repos
from cryptomon.store.db import Database
from cryptomon.store.models import CandleRow, TradeRow
from cryptomon.store.retention import DAY_S, Retention
from cryptomon.trading.brokers.ccxt_client import build_exchange
from tests.conftest import REPO
from tests.stubs import trade

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
GAP = (int((START + 2 * 3600) * 1000), int((START + 2 * 3600 + 30 * 60) * 1000))
FREQTRADE = REPO.parent / "shared" / "data" / "freqtrade-testdata"


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[tuple[SimExchange, HistoryEndpoints]]:
    """A simulator with six hours of BTC-USDT minutes, 100 rows per answer, a 30-minute gap."""
    exchange = SimExchange(MarketModel(["BTC-USDT"], seed=7), clock=ManualClock(time.time()))
    history = HistoryEndpoints(
        ["BTCUSDT"],
        start_ms=int(START * 1000),
        end_ms=int((START + 6 * 3600) * 1000),
        max_limit=100,
        gaps=[GAP],
    )
    exchange.add_routes(history.routes())
    await exchange.start(run=False)
    try:
        yield exchange, history
    finally:
        await exchange.stop()


async def cli(*args: str, config: Path) -> tuple[int, str, str]:
    """Run ``crypto-monitor`` in a subprocess with this worktree on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cryptomon",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"database: {{url: 'sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}'}}\n")
    return path


@pytest.mark.asyncio
async def test_download_paginates_waits_on_429_reports_the_gap_and_resumes(
    sim: tuple[SimExchange, HistoryEndpoints], config: Path
) -> None:
    """Six hours in pages of 100, one 429 honoured, the gap reported; a rerun fetches little."""
    exchange, history = sim
    history.rate_limit_next(retry_after_s=1.0)
    args = ("download", "--exchange", "binance", "--symbols", "BTC/USDT", "--timeframe", "1m")
    args += ("--since", "2026-01-01", "--until", "2026-01-01T06:00", "--trades", "--limit", "100")
    args += ("--url", exchange.rest_url, "--json")
    code, out, err = await cli(*args, config=config)
    assert code == 0, err
    [market] = json.loads(out.splitlines()[-1])["markets"]
    assert market["candles"] == 360 - 30
    assert market["rate_limited"] == 1
    assert market["waited_s"] >= 1.0
    assert market["gaps"] == [[GAP[0] / 1000, GAP[1] / 1000]]
    assert market["trades"] == 3 * (360 - 30)
    klines = [q for p, q in history.requests if p == "/api/v3/klines"]
    assert len(klines) >= 4  # 330 candles, at most 100 per answer (+ the 429)
    assert all(int(q["limit"]) <= 100 for q in klines)

    history.requests.clear()
    code, out, err = await cli(*args, config=config)
    assert code == 0, err
    [again] = json.loads(out.splitlines()[-1])["markets"]
    assert again["candles"] == 0
    assert again["trades"] == 0
    klines = [q for p, q in history.requests if p == "/api/v3/klines"]
    assert len(klines) == 1  # only the gap is asked again
    assert int(klines[0]["startTime"]) == GAP[0]


async def _wait(what: str, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_ctrl_c_during_a_download_says_what_stays_and_a_rerun_resumes(
    sim: tuple[SimExchange, HistoryEndpoints], config: Path
) -> None:
    """Ctrl-C while the download waits out a 429 (after its first page was stored): one line
    saying it was interrupted, that what was stored stays and that the same command resumes,
    exit 130 (it ended with the progress line and nothing else); the rerun fetches only the
    candles the first run did not store."""
    exchange, history = sim
    args = ["download", "--exchange", "binance", "--symbols", "BTC/USDT", "--timeframe", "1m"]
    args += ["--since", "2026-01-01", "--until", "2026-01-01T06:00", "--limit", "100"]
    args += ["--url", exchange.rest_url, "--config", str(config)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cryptomon",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:

        def klines() -> int:
            return sum(1 for p, _ in history.requests if p == "/api/v3/klines")

        await _wait("the first page", lambda: klines() >= 1)
        history.rate_limit_next(retry_after_s=300.0)  # the next page waits five minutes
        asked = klines()
        await _wait("the 429", lambda: klines() > asked)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = err.decode()
    assert proc.returncode == 130, text
    assert "crypto-monitor download: interrupted" in text, text
    assert "what was stored stays; run the same command again to resume" in text, text
    assert "Traceback" not in text, text
    assert out.decode() == ""
    db = Database(DatabaseConfig(url=f"sqlite+aiosqlite:///{config.parent / 'db.sqlite'}"))
    await db.start()
    try:
        async with db.sessionmaker() as s:
            stored = await s.scalar(select(func.count()).select_from(CandleRow))
    finally:
        await db.stop()
    assert stored is not None
    assert 0 < stored < 330
    code, out_text, err_text = await cli(*args[:-2], config=config)
    assert code == 0, err_text
    assert f"BTC-USDT: {330 - stored} candles" in out_text, out_text


@pytest.mark.asyncio
async def test_a_venue_that_keeps_rate_limiting_is_a_ccxt_error(
    sim: tuple[SimExchange, HistoryEndpoints], db: Database
) -> None:
    """Eight 429s in a row end the download with ccxt's DDoSProtection (the command's one
    line, exit 1), not a RuntimeError (a traceback)."""
    import ccxt

    exchange, history = sim
    history.rate_limit_next(retry_after_s=5.0, times=8)
    clock = ManualClock(START)
    client = build_exchange(LiveTradingConfig(exchange="binance", url=exchange.rest_url))
    try:
        await client.load_markets()
        loader = Downloader(exchange=client, db=db, clock=clock, name="binance", limit=100)
        task = asyncio.ensure_future(
            loader.candles(
                "BTC-USDT", "BTC/USDT", timeframe="1m", step=60.0, start=START, end=START + 600
            )
        )
        deadline = time.monotonic() + 60
        while not task.done():  # each 429's wait passes on the ManualClock
            assert time.monotonic() < deadline, "the download did not end"
            if clock.sleepers:
                clock.advance(5.0)
            await asyncio.sleep(0.01)
        with pytest.raises(ccxt.DDoSProtection, match="still rate limited after 8 attempts"):
            task.result()
    finally:
        await client.close()
    assert len(history.requests) == 8


@pytest.mark.asyncio
async def test_a_market_named_twice_is_downloaded_once(
    sim: tuple[SimExchange, HistoryEndpoints], config: Path
) -> None:
    """``--symbols BTC/USDT,btc-usdt`` is one market: one pass and one summary line (it was
    fetched, then walked again and reported twice)."""
    exchange, history = sim
    args = ("download", "--exchange", "binance", "--symbols", "BTC/USDT,btc-usdt", "--json")
    args += ("--since", "2026-01-01", "--until", "2026-01-01T01:00", "--url", exchange.rest_url)
    code, out, err = await cli(*args, config=config)
    assert code == 0, err
    [market] = json.loads(out.splitlines()[-1])["markets"]
    assert market["candles"] == 60
    assert len([p for p, _ in history.requests if p == "/api/v3/klines"]) == 1


@pytest.mark.asyncio
async def test_a_symbol_the_venue_does_not_list_stops_before_any_download(
    sim: tuple[SimExchange, HistoryEndpoints], config: Path
) -> None:
    """``--symbols BTC/USDT,FOO/USDT``: one line naming FOO/USDT, exit 2, before BTC/USDT is
    fetched (it was downloaded first, then the run stopped without its summary)."""
    exchange, history = sim
    args = ("download", "--exchange", "binance", "--symbols", "BTC/USDT,FOO/USDT")
    args += ("--since", "2026-01-01", "--until", "2026-01-01T01:00", "--url", exchange.rest_url)
    code, _, err = await cli(*args, config=config)
    assert code == 2, err
    assert "binance does not list FOO/USDT" in err
    assert [p for p, _ in history.requests] == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "symbol", "kind", "candles", "trades"),
    [
        ("ALT_BTC-1m.json.gz", "ALT/BTC", "candles", 13681, 0),
        ("XRP_ETH-trades.json.gz", "XRP/ETH", "trades", 2469, 12477),
    ],
)
async def test_import_of_the_shared_series(
    config: Path, name: str, symbol: str, kind: str, candles: int, trades: int
) -> None:
    """Both freqtrade series import; a second import adds no duplicate trade."""
    path = str(FREQTRADE / name)
    args = ("download", "--from-file", path, "--exchange", "binance", "--symbol", symbol)
    code, out, err = await cli(*args, "--json", config=config)
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    assert (doc["kind"], doc["candles"], doc["trades"]) == (kind, candles, trades)
    assert doc["tick"] == "0.00000001"
    code, out, _ = await cli(*args, "--json", config=config)
    assert json.loads(out.splitlines()[-1])["trades"] == 0


@pytest.mark.asyncio
async def test_import_takes_the_symbol_from_the_name_and_honours_or_refuses_its_options(
    config: Path,
) -> None:
    """Like ``backtest FILE``, ``--from-file`` reads the market from a freqtrade file name;
    ``--timeframe`` aggregates a trade file and must match a candle file (a 1m file imported
    with ``--timeframe 5m`` was stored as 1m candles without a word); ``--since``/``--until``
    and ``--url`` belong to downloads and are refused, not ignored."""
    alt = str(FREQTRADE / "ALT_BTC-1m.json.gz")
    xrp = str(FREQTRADE / "XRP_ETH-trades.json.gz")
    base = ("download", "--exchange", "binance", "--json")
    code, out, err = await cli(*base, "--from-file", alt, "--timeframe", "5m", config=config)
    assert code == 2, err
    assert "--timeframe 5m" in err
    assert "1m candles" in err
    code, out, err = await cli(*base, "--from-file", alt, "--since", "2017-11-05", config=config)
    assert code == 2, err
    assert "--since" in err
    assert "--from-file" in err
    assert out == ""
    code, out, err = await cli(*base, "--from-file", alt, config=config)
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    assert (doc["symbol"], doc["timeframe"], doc["candles"]) == ("ALT-BTC", "1m", 13681)
    code, out, err = await cli(*base, "--from-file", xrp, "--timeframe", "5m", config=config)
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    assert (doc["symbol"], doc["timeframe"], doc["trades"]) == ("XRP-ETH", "5m", 12477)
    assert 0 < doc["candles"] < 2469  # five-minute candles of the 2469 one-minute ones
    db = Database(DatabaseConfig(url=f"sqlite+aiosqlite:///{config.parent / 'db.sqlite'}"))
    await db.start()
    try:
        async with db.sessionmaker() as s:
            frames = (await s.execute(select(CandleRow.interval).distinct())).scalars()
            assert sorted(frames) == ["1m", "5m"]
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_a_venue_that_fails_the_request_is_one_line_and_exit_1(config: Path) -> None:
    """A simulator without history endpoints answers the klines request 404: ccxt raises, and
    the command says so in one line naming the venue (exit 1), not with ccxt's traceback."""
    exchange = SimExchange(MarketModel(["BTC-USDT"], seed=7), clock=ManualClock(time.time()))
    await exchange.start(run=False)
    try:
        args = ("download", "--exchange", "binance", "--symbols", "BTC/USDT")
        args += ("--since", "2026-01-01", "--until", "2026-01-01T01:00")
        code, out, err = await cli(*args, "--url", exchange.rest_url, config=config)
    finally:
        await exchange.stop()
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("crypto-monitor download:")]
    assert len(lines) == 1, err
    assert f"binance at {exchange.rest_url} failed" in lines[0]
    assert "404" in lines[0]
    assert out == ""


@pytest.mark.asyncio
async def test_downloaded_history_survives_retention(
    sim: tuple[SimExchange, HistoryEndpoints], db: Database
) -> None:
    """QA's case, on both databases: the daemon's retention (run a month later) keeps the
    downloaded candles and trades, and deletes the old live rows. A live candle the daemon
    stored inside the range is fetched again and becomes history."""
    exchange, _ = sim
    old = START - DAY_S
    async with db.sessionmaker() as s, s.begin():
        await repos.insert_trades(s, [trade(old + i, symbol="BTC-USDT") for i in range(4)])
        await repos.upsert_candles(
            s, [minute(old, source="trades"), minute(START + 600, source="trades")]
        )
    client = build_exchange(LiveTradingConfig(exchange="binance", url=exchange.rest_url))
    try:
        await client.load_markets()
        loader = Downloader(
            exchange=client, db=db, clock=ManualClock(START), name="binance", limit=100
        )
        report = await loader.candles(
            "BTC-USDT", "BTC/USDT", timeframe="1m", step=60.0, start=START, end=START + 3600
        )
        await loader.trades(report, "BTC-USDT", "BTC/USDT", START, START + 3600)
    finally:
        await client.close()
    assert (report.candles, report.trades, report.gaps) == (60, 180, [])

    config = StorageConfig(retention_days=7, retention_batch=50, retention_interval_s=3600)
    retention = Retention(db=db, config=config, clock=ManualClock(START + 30 * DAY_S))
    assert await retention.run_once() == {"trades": 4, "book_tops": 0, "candles": 1}
    async with db.sessionmaker() as s:
        trades = (await s.execute(select(TradeRow.source, func.count()).group_by("source"))).all()
        candles = (
            await s.execute(
                select(CandleRow.source, CandleRow.history, func.count()).group_by(
                    CandleRow.source, CandleRow.history
                )
            )
        ).all()
    assert [tuple(r) for r in trades] == [("download", 180)]
    assert [(src, bool(h), n) for src, h, n in candles] == [("exchange", True, 60)]


@pytest.mark.asyncio
async def test_trades_sharing_a_millisecond_across_pages_and_a_resume(db: Database) -> None:
    """The three trades of each minute print in one millisecond; pages of four end amid
    them. Every trade is stored once (the next page started after the last one's
    millisecond: two of every four were lost), and a resume after a run that stored only
    part of the last millisecond fetches the rest of it (it resumed after it)."""
    exchange = SimExchange(MarketModel(["BTC-USDT"], seed=7), clock=ManualClock(time.time()))
    end = START + 600
    history = HistoryEndpoints(
        ["BTCUSDT"],
        start_ms=int(START * 1000),
        end_ms=int(end * 1000),
        max_limit=4,
        trade_spacing_ms=0,
    )
    exchange.add_routes(history.routes())
    await exchange.start(run=False)
    client = build_exchange(LiveTradingConfig(exchange="binance", url=exchange.rest_url))

    async def download() -> int:
        loader = Downloader(
            exchange=client, db=db, clock=ManualClock(START), name="binance", limit=4
        )
        report = DownloadReport("BTC-USDT")
        await loader.trades(report, "BTC-USDT", "BTC/USDT", START, end)
        return report.trades

    async def stored() -> list[str]:
        async with db.sessionmaker() as s:
            rows = await s.execute(select(TradeRow.trade_id).order_by(TradeRow.trade_id))
            return [r[0] for r in rows]

    try:
        await client.load_markets()
        assert await download() == 30
        ids = await stored()
        assert len(ids) == len(set(ids)) == 30
        last_minute = sorted(ids, key=int)[-2:]  # the run stopped amid the last millisecond
        async with db.sessionmaker() as s, s.begin():
            await s.execute(delete(TradeRow).where(TradeRow.trade_id.in_(last_minute)))
        assert await download() == 2
        assert await stored() == ids
    finally:
        await client.close()
        await exchange.stop()


@pytest.mark.asyncio
async def test_trades_pages_shorter_than_the_limit_asked_are_followed(
    sim: tuple[SimExchange, HistoryEndpoints], db: Database
) -> None:
    """--limit 1000 against a venue answering at most 100 rows: all 180 trades of the hour
    are stored (an answer shorter than the limit asked ended the hour's window: 100)."""
    exchange, _ = sim
    client = build_exchange(LiveTradingConfig(exchange="binance", url=exchange.rest_url))
    try:
        await client.load_markets()
        loader = Downloader(
            exchange=client, db=db, clock=ManualClock(START), name="binance", limit=1000
        )
        report = DownloadReport("BTC-USDT")
        await loader.trades(report, "BTC-USDT", "BTC/USDT", START, START + 3600)
    finally:
        await client.close()
    assert report.trades == 180
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(TradeRow)) == 180


@pytest.mark.asyncio
async def test_trades_of_an_earlier_range_than_the_stored_ones_are_fetched(
    sim: tuple[SimExchange, HistoryEndpoints], db: Database
) -> None:
    """Trades of 04:00-05:00 stored, then 03:00-04:00 asked: its 180 trades are fetched (the
    resume started after the newest stored trade, 04:59:40, past the range: none); then
    03:00-05:00 asked: nothing is missing, and the stored ones are not asked again."""
    exchange, history = sim
    client = build_exchange(LiveTradingConfig(exchange="binance", url=exchange.rest_url))
    hour = 3600.0

    async def download(start: float, end: float) -> int:
        loader = Downloader(exchange=client, db=db, clock=ManualClock(START), name="binance")
        report = DownloadReport("BTC-USDT")
        await loader.trades(report, "BTC-USDT", "BTC/USDT", start, end)
        return report.trades

    try:
        await client.load_markets()
        assert await download(START + 4 * hour, START + 5 * hour) == 180
        assert await download(START + 3 * hour, START + 4 * hour) == 180
        history.requests.clear()
        assert await download(START + 3 * hour, START + 5 * hour) == 0
        asked = [int(q["startTime"]) for p, q in history.requests if p == "/api/v3/aggTrades"]
        assert min(asked) >= int((START + 5 * hour - 60) * 1000)
    finally:
        await client.close()
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(TradeRow)) == 360


def minute(ts: float, *, source: str) -> dict[str, Any]:
    """A live candle row of the minute at ``ts`` (not history)."""
    return {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "interval": "1m",
        "open_time": datetime.fromtimestamp(ts, UTC),
        "close_time": datetime.fromtimestamp(ts + 60, UTC),
        **dict.fromkeys(("open", "high", "low", "close", "volume"), 1.0),
        "trade_count": 1,
        "buy_volume": 1.0,
        "sell_volume": 0.0,
        "closed": True,
        "source": source,
    }


@pytest.mark.asyncio
async def test_retry_after_zero_retries_at_once(
    sim: tuple[SimExchange, HistoryEndpoints], db: Database
) -> None:
    """``Retry-After: 0`` (ccxt's ``last_response_headers``) repeats the request at once: no
    wait on the clock (it was taken as absent: the default 1 s backoff)."""
    exchange, history = sim
    history.rate_limit_next(retry_after_s=0.0, times=2)
    clock = ManualClock(START)
    client = build_exchange(LiveTradingConfig(exchange="binance", url=exchange.rest_url))
    try:
        await client.load_markets()
        loader = Downloader(exchange=client, db=db, clock=clock, name="binance", limit=100)
        report = await asyncio.wait_for(
            loader.candles(
                "BTC-USDT", "BTC/USDT", timeframe="1m", step=60.0, start=START, end=START + 600
            ),
            timeout=10,  # the ManualClock never moves: a wait > 0 hangs
        )
    finally:
        await client.close()
    assert report.rate_limited == 2
    assert report.waited_s == 0.0
    assert clock.time() == START
    assert report.candles == 10
