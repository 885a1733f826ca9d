"""The market layer on the shared real recordings, through the real cryptofeed classes and
the replay feed: exact callback counts, units on every trade and book top, history flagged
and sorted, duplicates dropped and counted."""

from __future__ import annotations

import contextlib
import glob
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptofeed.defines import TRADES
from cryptofeed.raw_data_collection import playback

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig
from cryptomon.events import BookSnapshot, BookTop, Candle, Event, FlaggedTrade, Ticker, Trade
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.quality import QualityGuard
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.venues import RecordingError, specs_from_recording

# cryptofeed 2.4.1's own playback of each recording (the shared data's README)
CRYPTOFEED_COUNTS = {
    "BINANCE": {"trades": 2, "l2_book": 176, "ticker": 84, "candles": 2},
    "BINANCE_FUTURES": {"trades": 91, "l2_book": 756, "ticker": 613, "candles": 67},
    "OKX": {"trades": 74, "l2_book": 290, "ticker": 28},
    "KRAKEN": {"trades": 10, "l2_book": 4279, "ticker": 18},
    "BITFINEX": {"trades": 210, "l2_book": 1600, "ticker": 21},
    "GATEIO": {"trades": 9, "l2_book": 169, "ticker": 22, "candles": 14},
    "HUOBI_SWAP": {"trades": 25, "l2_book": 2862},
    "GATEIO_FUTURES": {"trades": 0, "l2_book": 326, "ticker": 75, "candles": 1},
}


@dataclass
class Replayed:
    feed: ReplayFeed
    registry: InstrumentRegistry
    events: list[Event] = field(default_factory=list)

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if type(e) is cls]

    def trades(self) -> list[Trade]:
        """Every published trade, live or flagged."""
        flagged = [e.trade for e in self.of(FlaggedTrade)]
        return self.of(Trade) + flagged


async def replay(shared_data: Path, venue: str, guard: QualityGuard | None = None) -> Replayed:
    registry = InstrumentRegistry()
    with contextlib.suppress(RecordingError):  # a venue without a format: unknown units
        registry.add(specs_from_recording(shared_data / f"{venue}.0"))
    hub = Hub()
    files = sorted(glob.glob(str(shared_data / f"{venue}.*")))
    config = ExchangeConfig(name=venue.lower(), source="replay", files=files)
    feed = ReplayFeed(
        config,
        feed_class=replay_feed_class(venue),
        hub=hub,
        clock=LiveClock(),
        market=MarketInputs(registry=registry),
    )
    if guard is not None:
        feed.converter.quality = guard
    out = Replayed(feed, registry)
    hub.subscribe(
        [Trade, FlaggedTrade, BookTop, BookSnapshot, Candle, Ticker], out.events.append, name="test"
    )
    await hub.start()
    await feed.start()
    await feed.done.wait()
    await hub.stop(2.0)
    assert feed.error is None
    return out


@pytest.mark.asyncio
@pytest.mark.parametrize("venue", sorted(CRYPTOFEED_COUNTS))
async def test_replay_keeps_cryptofeeds_callback_counts_and_accounts_for_every_trade(
    shared_data: Path, venue: str
) -> None:
    """Every recording yields cryptofeed's exact callback counts; each trade callback is a
    published trade, a flagged one or a counted duplicate (none lost)."""
    got = await replay(shared_data, venue)
    counts = {name: n for name, n in got.feed.counts().items() if n or name == TRADES}
    expected = {name: n for name, n in CRYPTOFEED_COUNTS[venue].items() if n or name == TRADES}
    assert counts == expected
    guard = got.feed.converter.quality
    assert guard is not None
    published = len(got.of(Trade)) + len(got.of(FlaggedTrade))
    assert published + guard.duplicates == CRYPTOFEED_COUNTS[venue]["trades"]
    assert guard.bad_prints == 0  # real recordings: nothing quarantined


@pytest.fixture(scope="module")
def huobi_raw(shared_data: Path) -> dict[str, dict[str, Any]]:
    """HUOBI_SWAP's raw trade messages by trade id, from cryptofeed's own playback."""
    raw: dict[str, dict[str, Any]] = {}

    async def keep(trade: Any, _receipt: float) -> None:
        raw[str(trade.id)] = trade.raw

    files = sorted(glob.glob(str(shared_data / "HUOBI_SWAP.*")))
    playback("HUOBI_SWAP", files, callbacks={TRADES: keep}, config=None)
    return raw


@pytest.mark.asyncio
async def test_huobi_swap_trades_carry_coin_amounts_and_usd_notionals(
    shared_data: Path, huobi_raw: dict[str, dict[str, Any]]
) -> None:
    """HUOBI_SWAP: inverse trades are contracts x contract_size USD and the venue's own coin
    quantity; linear ones the venue's quantity and trade_turnover; contracts kept beside
    where they differ from the coins."""
    raw = huobi_raw
    got = await replay(shared_data, "HUOBI_SWAP")
    trades = got.trades()
    assert len(trades) == 25
    inverse = 0
    for trade in trades:
        spec = got.registry.get("huobi_swap", trade.symbol)
        assert spec is not None
        venue = raw[str(trade.trade_id)]
        if spec.inverse or spec.contract_size != 1:
            assert trade.contracts == pytest.approx(float(venue["amount"]))
        else:  # one coin per contract: the two are the same, no count kept beside
            assert trade.contracts is None
        assert trade.amount == pytest.approx(float(venue["quantity"]))
        if spec.inverse:
            inverse += 1
            assert trade.contracts is not None
            assert trade.notional == pytest.approx(trade.contracts * float(spec.contract_size))
        else:
            assert trade.notional == pytest.approx(float(venue["trade_turnover"]))
        assert trade.notional_usd == trade.notional  # USD and USDT quotes
    assert inverse > 0


@pytest.mark.asyncio
async def test_okx_swaps_and_futures_in_coins_spot_unchanged(shared_data: Path) -> None:
    """OKX: a swap or future trade is contracts x ctVal (inverse: USD), spot stays as sent."""
    got = await replay(shared_data, "OKX")
    kinds = Counter()
    for trade in got.trades():
        spec = got.registry.get("okx", trade.symbol)
        assert spec is not None
        kinds[spec.kind.value] += 1
        if spec.kind.value == "spot":
            assert trade.contracts is None
            assert trade.notional == pytest.approx(trade.amount * trade.price)
        else:
            assert trade.contracts is not None
            size = float(spec.contract_size)
            expected = (
                trade.contracts * size / trade.price if spec.inverse else trade.contracts * size
            )
            assert trade.amount == pytest.approx(expected)
    assert kinds["spot"] > 0
    assert kinds["perpetual"] + kinds["future"] > 0


def recorded_span(shared_data: Path, venue: str) -> tuple[float, float]:
    """The first and last receipt time written in a recording's websocket and REST files."""
    stamps: list[float] = []
    for name in glob.glob(str(shared_data / f"{venue}.*.*")):
        for line in Path(name).read_text(encoding="utf-8").splitlines():
            head = line.split(" -> ", 1)[1] if line.startswith("http") else line
            with contextlib.suppress(ValueError):
                stamps.append(float(head.split(": ", 1)[0]))
    return min(stamps), max(stamps)


@pytest.mark.asyncio
@pytest.mark.parametrize("venue", ["BINANCE", "BINANCE_FUTURES", "GATEIO", "GATEIO_FUTURES"])
async def test_books_from_recorded_rest_snapshots_carry_the_recorded_times(
    shared_data: Path, venue: str
) -> None:
    """A replayed book built from a recorded REST snapshot is stamped with that response's
    recorded receipt, never today's clock (cryptofeed's time.time()), so every book top and
    snapshot lies within the recording's time span."""
    got = await replay(shared_data, venue)
    first, last = recorded_span(shared_data, venue)
    books = got.of(BookTop) + got.of(BookSnapshot)
    assert books
    outside = [
        (type(e).__name__, e.symbol, e.ts, e.ts_recv)
        for e in books
        if not (first <= e.ts_recv <= last and first - 60 <= e.ts <= last + 60)
    ]
    assert outside == []


@pytest.mark.asyncio
async def test_a_book_only_seen_in_its_rest_snapshot_has_the_snapshots_receipt(
    shared_data: Path,
) -> None:
    """GATEIO's INK-USDT book never updates after its REST snapshot: its one book top and
    snapshot carry the receipt recorded for that response (1619093534.9230669)."""
    got = await replay(shared_data, "GATEIO")
    books = [e for e in got.of(BookTop) + got.of(BookSnapshot) if e.symbol == "INK-USDT"]
    assert len(books) == 2
    assert {(e.ts, e.ts_recv) for e in books} == {(1619093534.9230669, 1619093534.9230669)}


@pytest.mark.asyncio
async def test_gateio_futures_book_sizes_are_coins_with_contracts_beside(
    shared_data: Path,
) -> None:
    """GATEIO_FUTURES book tops: best sizes are contracts x quanto_multiplier coins."""
    got = await replay(shared_data, "GATEIO_FUTURES")
    tops = got.of(BookTop)
    assert tops
    for top in tops:
        spec = got.registry.get("gateio_futures", top.symbol)
        assert spec is not None
        size = float(spec.contract_size)
        if size != 1.0:
            assert top.bid_contracts is not None
            assert top.bid_size == pytest.approx(top.bid_contracts * size)
            assert top.ask_size == pytest.approx(top.ask_contracts * size)  # type: ignore[operator]


@pytest.mark.asyncio
async def test_bitfinex_history_is_flagged_and_published_oldest_first(shared_data: Path) -> None:
    """BITFINEX sends hours of trades on subscribe: all flagged historical (never a live
    Trade), each batch published in time order."""
    got = await replay(shared_data, "BITFINEX")
    flagged = got.of(FlaggedTrade)
    assert len(flagged) == 210
    assert {f.flag for f in flagged} == {"historical"}
    assert got.of(Trade) == []
    by_symbol: dict[str, list[float]] = {}
    for event in flagged:
        by_symbol.setdefault(event.symbol, []).append(event.trade.ts)
    assert all(ts == sorted(ts) for ts in by_symbol.values())


@pytest.mark.asyncio
async def test_a_recording_replayed_again_on_the_same_feed_is_all_duplicates(
    shared_data: Path,
) -> None:
    """The same trades delivered again (a reconnect resending them) are dropped and counted."""
    first = await replay(shared_data, "HUOBI_SWAP")
    guard = first.feed.converter.quality
    assert guard is not None
    second = await replay(shared_data, "HUOBI_SWAP", guard=guard)
    assert second.trades() == []
    assert guard.duplicates == 25


@pytest.mark.asyncio
async def test_gateio_spot_candle_volume_is_base_not_quote(shared_data: Path) -> None:
    """Gate.io spot candles carry the quote volume (``v``); the published volume is base
    units: DIS-USDT's minute holds one 0.201 DIS trade at 121.58 (v = 24.43758 USDT), NEO-BTC's
    0.5 + 1.07 NEO (v = 0.002943321 BTC), and every candle's v / volume lies within its range."""
    got = await replay(shared_data, "GATEIO")
    candles = [c for c in got.of(Candle) if c.volume]
    assert candles
    last = {c.symbol: c for c in candles}
    assert last["DIS-USDT"].volume == pytest.approx(0.201)
    assert last["NEO-BTC"].volume == pytest.approx(1.57, rel=1e-3)
    trades = [t for t in got.of(Trade) if t.symbol == "DIS-USDT"]
    assert sum(t.amount for t in trades) == pytest.approx(last["DIS-USDT"].volume)
    quote = {
        (e["result"]["n"], e["time"]): float(e["result"]["v"])
        for e in (
            json.loads(line.split(": ", 1)[1])
            for line in (shared_data / "GATEIO.ws.1.0").read_text(encoding="utf-8").splitlines()
            if '"spot.candlesticks","event":"update"' in line
        )
    }
    for candle in candles:
        name = "1m_" + candle.symbol.replace("-", "_")
        v = quote[(name, int(candle.ts))]
        assert (
            candle.volume * candle.low * (1 - 1e-9) <= v <= candle.volume * candle.high * (1 + 1e-9)
        ), candle.symbol


@pytest.mark.asyncio
async def test_gateio_futures_candle_volume_is_contracts_times_multiplier(
    shared_data: Path, tmp_path: Path
) -> None:
    """A Gate.io USDT futures candle's volume is contracts: QUICK_USDT (quanto_multiplier
    0.01) with v = 250 contracts is 2.5 QUICK (a candle frame added to the recording)."""
    for name in glob.glob(str(shared_data / "GATEIO_FUTURES.*")):
        shutil.copy(name, tmp_path)
    frame = {
        "time": 1684930195,
        "time_ms": 1684930195000,
        "channel": "futures.candlesticks",
        "event": "update",
        "result": [
            {
                "t": 1684930140,
                "v": 250,
                "c": "56.9",
                "h": "57.0",
                "l": "56.9",
                "o": "56.9",
                "n": "1m_QUICK_USDT",
            }
        ],
    }
    with (tmp_path / "GATEIO_FUTURES.ws.1.0").open("a", encoding="utf-8") as ws:
        ws.write(f"1684930195.2: {json.dumps(frame, separators=(',', ':'))}\n")
    got = await replay(tmp_path, "GATEIO_FUTURES")
    quick = [c for c in got.of(Candle) if c.symbol == "QUICK-USDT-PERP"]
    assert [c.volume for c in quick] == [pytest.approx(2.5)]
    front = [c for c in got.of(Candle) if c.symbol == "FRONT-USDT-PERP"]
    assert [c.volume for c in front] == [0.0]  # the recorded one: v = 0


@pytest.mark.asyncio
@pytest.mark.parametrize("venue", ["KRAKEN", "HUOBI_SWAP"])
async def test_a_venue_recorded_over_several_connections_replays_in_receipt_order(
    shared_data: Path, venue: str
) -> None:
    """KRAKEN (trades, tickers and books on three connections) and HUOBI_SWAP (coin- and
    USDT-margined connections) replay as the connections delivered them: the trades and
    tickers, published as they arrive, come in receipt order across the files (not one
    30-second file after the other), with cryptofeed's counts unchanged."""
    got = await replay(shared_data, venue)
    arrivals = [e.ts_recv for e in got.events if type(e) in (Trade, Ticker)]
    assert len(arrivals) == sum(
        CRYPTOFEED_COUNTS[venue].get(name, 0) for name in ("trades", "ticker")
    ) - len(got.of(FlaggedTrade))
    assert arrivals == sorted(arrivals)
    counts = {name: n for name, n in got.feed.counts().items() if n}
    assert counts == {name: n for name, n in CRYPTOFEED_COUNTS[venue].items() if n}


@pytest.mark.asyncio
async def test_gateio_candles_close_when_the_next_one_starts(
    shared_data: Path, tmp_path: Path
) -> None:
    """Gate.io sends its open candle again on every update and no closed flag (cryptofeed's
    closed None): the recorded DIS_USDT minute is published open, and closed (its last
    update: close 121.58, 0.201 DIS) once a frame of the next minute is added; the others,
    with no next minute, never close."""
    for name in glob.glob(str(shared_data / "GATEIO.*")):
        shutil.copy(name, tmp_path)
    frame = {
        "time": 1619093581,
        "channel": "spot.candlesticks",
        "event": "update",
        "result": {
            "t": "1619093580",
            "v": "0",
            "c": "121.6",
            "h": "121.6",
            "l": "121.6",
            "o": "121.6",
            "n": "1m_DIS_USDT",
        },
    }
    with (tmp_path / "GATEIO.ws.1.0").open("a", encoding="utf-8") as ws:
        ws.write(f"1619093581.5: {json.dumps(frame, separators=(',', ':'))}\n")
    got = await replay(tmp_path, "GATEIO")
    dis = [c for c in got.of(Candle) if c.symbol == "DIS-USDT"]
    assert [(c.start, c.closed) for c in dis] == [
        (1619093520.0, False),
        (1619093520.0, False),
        (1619093520.0, True),
        (1619093580.0, False),
    ]
    closed = dis[2]
    assert (closed.close, closed.volume) == (121.58, pytest.approx(0.201))
    assert closed.ts_recv == 1619093581.5
    assert not [c for c in got.of(Candle) if c.closed and c.symbol != "DIS-USDT"]


@pytest.mark.asyncio
async def test_binance_futures_candles_keep_the_venues_closed_flag(shared_data: Path) -> None:
    """Binance USD-M says when a kline closed (``x``): each recorded closed minute is
    published closed once, as the venue sent it, and nothing else is closed."""
    got = await replay(shared_data, "BINANCE_FUTURES")
    candles = got.of(Candle)
    closed = [(c.symbol, c.start) for c in candles if c.closed]
    assert len(closed) == len(set(closed)) == 4
