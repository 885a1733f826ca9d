"""Replay of cryptofeed raw-data recordings: exact callback counts, bad input handling."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig
from cryptomon.errors import ConfigError
from cryptomon.events import BookTop, Candle, Ticker, Trade
from cryptomon.feeds.replay import (
    ReplayFeed,
    merged_lines,
    parse_speed,
    replay_feed_class,
    timed_lines,
)
from cryptomon.hub import Hub

# ../shared/data/cryptofeed-sample/README.md: callbacks of cryptofeed 2.4.1's own playback
EXPECTED = {
    "BINANCE": (265, {"trades": 2, "l2_book": 176, "ticker": 84, "candles": 2}),
    "BINANCE_FUTURES": (1535, {"trades": 91, "l2_book": 756, "ticker": 613, "candles": 67}),
    "OKX": (410, {"trades": 74, "l2_book": 290, "ticker": 28}),
    "KRAKEN": (4430, {"trades": 10, "l2_book": 4279, "ticker": 18}),
    "BITFINEX": (1693, {"trades": 210, "l2_book": 1600, "ticker": 21}),
    "GATEIO": (239, {"trades": 9, "l2_book": 169, "ticker": 22, "candles": 14}),
}


def files_of(data: Path, exchange: str) -> list[str]:
    return sorted(str(p) for p in data.glob(f"{exchange}.*"))


async def run_replay(name: str, files: list[str], hub: Hub, depth: int = 20) -> ReplayFeed:
    cfg = ExchangeConfig(name=name.lower(), source="replay", files=files, depth=depth)
    feed = ReplayFeed(cfg, feed_class=replay_feed_class(name), hub=hub, clock=LiveClock())
    await feed.start()
    await feed.done.wait()
    await feed.stop()
    return feed


@pytest.mark.asyncio
@pytest.mark.parametrize("exchange", sorted(EXPECTED))
async def test_replay_yields_exactly_playback_counts(shared_data: Path, exchange: str) -> None:
    """Each shared recording replays to cryptofeed's own playback callback counts; the
    conflated BookTops are counted apart and their updates add up to the book callbacks."""
    hub = Hub()
    published: dict[type, int] = {}
    conflated = [0]
    hub.subscribe(
        (Trade, BookTop, Ticker, Candle),
        lambda e: published.__setitem__(type(e), published.get(type(e), 0) + 1),
    )
    hub.subscribe(BookTop, lambda top: conflated.__setitem__(0, conflated[0] + top.updates))
    feed = await run_replay(exchange, files_of(shared_data, exchange), hub)
    messages, counts = EXPECTED[exchange]
    assert feed.error is None
    assert feed.messages == messages
    assert feed.counts() == counts
    assert feed.health.parse_errors == 0
    assert published.get(Trade, 0) == counts["trades"]
    assert published.get(Ticker, 0) == counts["ticker"]
    assert published.get(Candle, 0) == counts.get("candles", 0)
    assert 0 < published[BookTop] <= counts["l2_book"]
    assert feed.health.book_tops == published[BookTop]  # BookTops counted apart from callbacks
    assert conflated[0] == counts["l2_book"]  # every book callback is in exactly one BookTop


def with_garbage_line(shared_data: Path, tmp_path: Path) -> list[str]:
    for f in files_of(shared_data, "BINANCE"):
        shutil.copy(f, tmp_path)
    ws = tmp_path / "BINANCE.ws.1.0"
    lines = ws.read_text().splitlines(keepends=True)
    lines.insert(5, "1633998512.1: {this is not json\n")
    ws.write_text("".join(lines))
    return sorted(str(p) for p in tmp_path.glob("BINANCE.*"))


@pytest.mark.asyncio
async def test_malformed_line_is_counted_and_skipped(shared_data: Path, tmp_path: Path) -> None:
    """A garbage line in a recording is counted as a parse error; every other line still counts."""
    files = with_garbage_line(shared_data, tmp_path)
    feed = await run_replay("BINANCE", files, Hub())
    assert feed.health.parse_errors == 1
    assert feed.counts() == EXPECTED["BINANCE"][1]
    assert feed.messages == EXPECTED["BINANCE"][0] + 1


def test_missing_files_and_missing_configuration_are_config_errors(tmp_path: Path) -> None:
    """Nonexistent files, or no EXCHANGE.0 with a configuration line, are clear errors."""
    with pytest.raises(ConfigError, match="an existing recording file"):
        ReplayFeed(
            ExchangeConfig(name="binance", source="replay", files=[str(tmp_path / "nope")]),
            feed_class=replay_feed_class("binance"),
            hub=Hub(),
            clock=LiveClock(),
        )
    only_ws = tmp_path / "BINANCE.ws.1.0"
    only_ws.write_text("1.0: {}\n")
    with pytest.raises(ConfigError, match="configuration"):
        ReplayFeed(
            ExchangeConfig(name="binance", source="replay", files=[str(only_ws)]),
            feed_class=replay_feed_class("binance"),
            hub=Hub(),
            clock=LiveClock(),
        )


def test_recording_problems_name_the_exchange_entry(tmp_path: Path) -> None:
    """A bad recording in the config names its key path (`exchanges[kraken].files`), as every
    other config error does, not a bare `files`."""
    only_ws = tmp_path / "KRAKEN.ws.48.0"
    only_ws.write_text("1.0: {}\n")
    for files, expected in (
        ([str(tmp_path / "nope")], "an existing recording file"),
        ([str(only_ws)], "configuration"),
    ):
        with pytest.raises(ConfigError) as caught:
            ReplayFeed(
                ExchangeConfig(name="kraken", source="replay", files=files),
                feed_class=replay_feed_class("kraken"),
                hub=Hub(),
                clock=LiveClock(),
            )
        assert [p.path for p in caught.value.problems] == ["exchanges[kraken].files"]
        assert expected in str(caught.value)


def test_parse_speed() -> None:
    """max is unpaced, Nx is a multiple, anything else is a ConfigError."""
    assert parse_speed("max") is None
    assert parse_speed("10x") == 10.0
    assert parse_speed("1x") == 1.0
    assert parse_speed("2.5x") == 2.5
    for bad in ("fast", "0x", "-1x", "10", "infx", "nanx", "1e3x", "9" * 400 + "x"):
        with pytest.raises(ConfigError):
            parse_speed(bad)


def recording_span(files: list[str]) -> float:
    stamps = [
        float(line.split(": ", 1)[0])
        for f in files
        if ".ws." in f
        for line in Path(f).read_text().splitlines()
        if line[:1].isdigit()
    ]
    return max(stamps) - min(stamps)


@pytest.mark.asyncio
async def test_paced_replay_follows_the_clock(shared_data: Path) -> None:
    """At 1x the replay waits on the injected clock between messages and completes once the
    clock has moved by the recording's span, with the same counts as at max speed."""
    from cryptomon.clock import ManualClock
    from tests.util import wait_until

    files = files_of(shared_data, "BINANCE")
    span = recording_span(files)
    clock = ManualClock()
    cfg = ExchangeConfig(name="binance", source="replay", files=files, replay_speed="1x")
    feed = ReplayFeed(cfg, feed_class=replay_feed_class("binance"), hub=Hub(), clock=clock)
    await feed.start()
    try:
        await wait_until(lambda: clock.sleepers == 1, message="replay waiting on the clock")
        assert not feed.done.is_set()
        assert feed.messages < EXPECTED["BINANCE"][0]
        clock.advance(span / 2)
        await wait_until(lambda: clock.sleepers == 1, message="replay waiting again")
        assert not feed.done.is_set()
        clock.advance(span)
        await wait_until(feed.done.is_set, message="replay done")
        assert feed.counts() == EXPECTED["BINANCE"][1]
    finally:
        await feed.stop()


@pytest.mark.asyncio
async def test_symbol_table_is_built_once_per_recording(shared_data: Path, tmp_path: Path) -> None:
    """Replaying a recording again reuses cryptofeed's symbol table; another recording of the
    same exchange (other files) rebuilds it, and both still replay to the playback counts."""
    from cryptofeed.symbols import Symbols

    files = files_of(shared_data, "GATEIO")
    first = await run_replay("GATEIO", files, Hub())
    table = Symbols.get("GATEIO")[0]
    again = await run_replay("GATEIO", files, Hub())
    assert Symbols.get("GATEIO")[0] is table  # not rebuilt
    for f in files:
        shutil.copy(f, tmp_path)
    other = await run_replay("GATEIO", files_of(tmp_path, "GATEIO"), Hub())
    assert Symbols.get("GATEIO")[0] is not table  # another recording: rebuilt from its files
    assert first.counts() == again.counts() == other.counts() == EXPECTED["GATEIO"][1]


def test_timed_lines_merge_by_receipt_and_hand_over_the_parsed_receipt(tmp_path: Path) -> None:
    """Several websocket files are merged by receipt (ties: the earlier file first), each line
    with the float of its ``TIMESTAMP: `` prefix, or None where it has none (the connection
    header keeps its place); a single file is not merged and its receipts are left to the
    replay."""
    first = tmp_path / "X.ws.1.0"
    second = tmp_path / "X.ws.2.0"
    first.write_text("wss://a\n1.5: {}\n3.25: {}\n3.25: {}\nno stamp\n")
    second.write_text("wss://b\n1.0: []\n3.25: []\n9.0000001234567891: []\n")
    merged = list(timed_lines([first, second]))
    assert merged == [
        (None, "wss://a\n"),
        (None, "wss://b\n"),
        (1.0, "1.0: []\n"),
        (1.5, "1.5: {}\n"),
        (3.25, "3.25: {}\n"),
        (3.25, "3.25: {}\n"),
        (None, "no stamp\n"),
        (3.25, "3.25: []\n"),
        (9.0000001234567891, "9.0000001234567891: []\n"),
    ]
    assert list(merged_lines([first, second])) == [line for _, line in merged]
    assert list(timed_lines([first])) == [
        (None, line) for line in first.read_text().splitlines(True)
    ]
