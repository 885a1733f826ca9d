"""Replay of recordings in cryptofeed's raw-data format through the same adapter.

Files (as written by ``crypto-monitor record`` / cryptofeed's ``AsyncFileCallback``):
``EXCHANGE.0`` (REST symbol lists + a ``configuration:`` line with the recorded subscription),
``EXCHANGE.http.N.M`` (REST responses, e.g. book snapshots), ``EXCHANGE.ws.N.M`` (websocket
traffic, ``timestamp: message`` per line).

The recorded messages go through the real cryptofeed exchange class and the same
:class:`~cryptomon.feeds.convert.Converter` as a live feed, so the callback counts equal
``cryptofeed.raw_data_collection.playback``. Unlike ``playback`` nothing global is patched:
the recorded symbol lists are served by a class attribute of a per-replay subclass
(``http_sync``), recorded REST responses by the feed instance's ``http_conn``; and it runs on
the daemon's loop.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog
from cryptofeed.defines import L2_BOOK
from cryptofeed.feed import Feed
from cryptofeed.symbols import Symbols
from yapic import json as fast_json

from cryptomon.clock import Clock
from cryptomon.config import ExchangeConfig
from cryptomon.config.feeds import REPLAY_MULTIPLE
from cryptomon.errors import ConfigError, Problem
from cryptomon.feeds.convert import CF_CHANNELS, CONFIG_CHANNELS
from cryptomon.feeds.cryptofeed import CF_CONFIG, exchange_class, feed_converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.feeds.registry import FeedPlugin, FeedSource
from cryptomon.feeds.simulated import SimulatorBinance
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs

log = structlog.get_logger()

_YIELD_EVERY = 256
# Marks cryptofeed's symbol table as loaded from a recording (its files' identity).
_RECORDING_KEY = "cryptomon_recording"
_SPEED = re.compile(REPLAY_MULTIPLE)  # what ExchangeConfig.replay_speed takes


def parse_speed(text: str) -> float | None:
    """``max`` -> None (as fast as possible), ``10x`` -> 10.0: what ``replay_speed`` accepts
    (digits, then ``x``), so ``infx``, ``nanx`` or ``1e400x`` never reach the pacing."""
    if text == "max":
        return None
    value = float(text[:-1]) if _SPEED.fullmatch(text) else 0.0
    if not 0 < value < math.inf:
        raise ConfigError([Problem("speed", text, "max or a positive multiple such as 1x or 10x")])
    return value


class Recording:
    """The parsed non-websocket parts of a recording plus its websocket file list."""

    def __init__(self, files: list[str | Path]) -> None:
        self.subscription: dict[str, list[str]] = {}
        # the recorded symbol lists as their JSON text: parsed when cryptofeed reads them (once
        # per recording, see ReplayFeed._build), since held parsed they cost ~7x their size
        self.symbol_texts: list[str] = []
        # REST responses by URL: (recorded receipt time, body)
        self.http: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.ws_files: list[Path] = []
        self.http_files: list[Path] = []
        self.main_files: list[Path] = []  # EXCHANGE.0
        self.key: tuple[tuple[str, int, int], ...] = ()  # identifies the symbol lists
        paths = [Path(name) for name in files]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise ConfigError(
                [Problem("files", name, "an existing recording file") for name in missing]
            )
        for path in paths:
            if path.name.startswith("instruments.") and path.suffix == ".json":
                continue  # the specs saved beside the recording: read by the market layer
            if ".ws." in path.name:
                self.ws_files.append(path)
            elif ".http." in path.name:
                self.http_files.append(path)
                self._read_http(path)
            else:
                self.main_files.append(path)
                self._read_main(path)
        if not self.subscription:
            raise ConfigError(
                [
                    Problem(
                        "files",
                        [str(path) for path in paths],
                        "the EXCHANGE.0 file with a 'configuration:' line",
                    )
                ]
            )
        self.total_bytes = sum(path.stat().st_size for path in self.ws_files)

    def _read_main(self, path: Path) -> None:
        stat = path.stat()
        self.key = (*self.key, (str(path.resolve()), stat.st_mtime_ns, stat.st_size))
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() or ": " not in line:
                continue
            payload = line.split(": ", 1)[1]
            data = _loads(str(path), line, payload)  # a malformed line is a startup error
            if line.startswith("configuration:"):
                self.subscription = data
            self.symbol_texts.append(payload)

    def _read_http(self, path: Path) -> None:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("http") and " -> " in line:
                    url, data = line.split(" -> ", 1)
                    stamp, _, body = data.partition(": ")
                    try:
                        receipt = float(stamp)
                    except ValueError:
                        receipt = math.nan  # no recorded time: cryptofeed's own receipt stays
                    self.http[url].append((receipt, body))


def merged_lines(paths: list[Path]) -> Generator[str, None, None]:
    """The lines of a recording's websocket files in receipt order: a venue recorded over
    several connections (Kraken: trades, tickers and books each on its own; Huobi swaps: coin-
    and USDT-margined) is replayed as the connections delivered it, not one file after the
    other. Each file's own order is kept (ties: the earlier file first)."""
    lines = timed_lines(paths)
    try:
        for _, line in lines:
            yield line
    finally:
        lines.close()


def timed_lines(paths: list[Path]) -> Generator[tuple[float | None, str], None, None]:
    """:func:`merged_lines` as ``(receipt, line)`` pairs: ``receipt`` is the float the merge
    read off the line's ``TIMESTAMP: `` prefix (the same text and parse as the replay's), or
    None where it read none (one file: no merge; no prefix; not a number), so a line's time
    is parsed once.

    The file in the lead is read in a plain loop until its next line is later than the
    other files' next lines (a heap of one head per file), so a line costs a receipt parse
    and a comparison, not a heap operation."""
    if len(paths) == 1:
        with paths[0].open(encoding="utf-8") as lines:
            yield from zip(itertools.repeat(None), lines)
        return
    with contextlib.ExitStack() as stack:
        heads: list[tuple[float, int, str, Iterator[str], float | None]] = []
        for index, path in enumerate(paths):
            opened: Iterator[str] = stack.enter_context(path.open(encoding="utf-8"))
            for line in opened:
                ts = _stamp(line)
                heads.append((-math.inf if ts is None else ts, index, line, opened, ts))
                break
        heapq.heapify(heads)
        while heads:
            last, index, line, rest, ts = heapq.heappop(heads)
            yield ts, line
            if heads:
                other, other_index = heads[0][0], heads[0][1]
            else:
                other, other_index = math.inf, -1
            for line in rest:
                ts = None
                end = line.find(": ", 0, 40)
                if end > 0:  # inlined _stamp: this loop runs once per line
                    try:  # noqa: SIM105 - per line: suppress() would cost a context manager
                        ts = last = float(line[:end])
                    except ValueError:
                        pass  # no receipt: the line stays where it was (``last``)
                if last > other or (last == other and index > other_index):
                    heapq.heappush(heads, (last, index, line, rest, ts))
                    break
                yield ts, line


def _stamp(line: str) -> float | None:
    """The receipt time a websocket line starts with (``TIMESTAMP: ``), None without one (a
    connection header)."""
    end = line.find(": ", 0, 40)
    if end > 0:
        try:
            return float(line[:end])
        except ValueError:
            pass
    return None


def _loads(path: str, line: str, payload: str) -> Any:
    try:
        return fast_json.loads(payload)
    except ValueError:
        raise ConfigError([Problem(path, line[:60], "recorded JSON after 'TIMESTAMP: '")]) from None


class _RecordedSymbols:
    """Stands in for cryptofeed's ``HTTPSync`` on the replay subclass: recorded symbol lists,
    each parsed from its JSON text when read."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = list(texts)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        return fast_json.loads(self.texts.pop(0))


def _url_key(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = urlsplit(url)
    query = tuple(sorted((key, value) for key, value in parse_qsl(parts.query) if key != "limit"))
    return parts.path, query


class _RecordedHTTP:
    """Stands in for the feed's ``http_conn``: recorded REST responses by URL (a request that
    differs only in host or depth ``limit`` gets the recorded response of the same route).
    ``on_read`` gets each served response's recorded receipt time."""

    def __init__(
        self,
        cache: dict[str, list[tuple[float, str]]],
        on_read: Callable[[float], None] | None = None,
    ) -> None:
        self.cache = {url: list(responses) for url, responses in cache.items()}
        self.on_read = on_read
        self.missing = 0  # requests without a recorded response
        self.first_missing: str | None = None

    async def read(self, address: str, **kwargs: Any) -> Any:
        queue = self.cache.get(address)
        if not queue:
            key = _url_key(address)
            queue = next(
                (left for url, left in self.cache.items() if left and _url_key(url) == key), None
            )
        if not queue:
            self.missing += 1
            if self.first_missing is None:
                self.first_missing = address
            raise LookupError(f"no recorded response for {address}")
        receipt, data = queue.pop(0)
        if self.on_read is not None and not math.isnan(receipt):
            self.on_read(receipt)
        if " header: " in data:
            body, header = data.split(" header: ", 1)
            return body, json.loads(header.strip())
        return data

    async def close(self) -> None:
        return None


class _RecordedConn:
    """The connection object handed to the feed's subscribe/handler during replay."""

    conn_type = "wss"
    uuid = "1"
    last_message: float | None = None

    def __init__(self, subscription: dict[str, list[str]]) -> None:
        self.subscription = subscription

    async def write(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def read(self, *args: Any, **kwargs: Any) -> Any:
        raise LookupError("replay connections do not read")


def replay_feed_class(name: str) -> type[Feed]:
    """The cryptofeed class used to parse recordings of exchange ``name``."""
    return SimulatorBinance if name.lower() == "simulator" else exchange_class(name)


class ReplayFeed:
    """Feeds recorded files through the exchange class and the Converter, then sets ``done``."""

    def __init__(
        self,
        config: ExchangeConfig,
        *,
        feed_class: type[Feed],
        hub: Hub,
        clock: Clock,
        progress: Callable[[int, int], None] | None = None,
        market: MarketInputs | None = None,
    ) -> None:
        self.config = config
        self.exchange = config.name
        self.name = f"feed:{config.name}"
        self.clock = clock
        self.base_class = feed_class
        self.speed = parse_speed(config.replay_speed)
        self.progress = progress
        try:
            self.recording = Recording(list(config.files))
        except ConfigError as exc:  # name the config key, as every other config error does
            raise ConfigError(
                [
                    dataclasses.replace(p, path=f"exchanges[{config.name}].{p.path}")
                    for p in exc.problems
                ]
            ) from None
        channels = [
            CONFIG_CHANNELS[name] for name in self.recording.subscription if name in CONFIG_CHANNELS
        ]
        self.health = FeedHealth(config.name, channels, hub=hub, clock=clock, source="replay")
        for channel in self.health.channels.values():
            channel.stale_after = None  # a replay has no live pace to watch
        self.converter = feed_converter(config, hub=hub, health=self.health, market=market)
        self.health.quality = self.converter.quality
        self.messages = 0
        self.done = asyncio.Event()
        self.error: BaseException | None = None
        self.seconds = 0.0
        self._task: asyncio.Task[None] | None = None
        self.feed: Any = None
        # the feed's book callbacks while one REST snapshot's callback is redirected
        self._book_callbacks: list[Any] | None = None

    @property
    def missing_rest(self) -> int:
        """REST requests (book snapshots) the recording held no response for."""
        http = getattr(self.feed, "http_conn", None)
        return http.missing if isinstance(http, _RecordedHTTP) else 0

    def missing_rest_problem(self) -> str | None:
        """What to say when REST requests went unanswered: which file is missing and where
        it is expected (a recording's REST answers are in its ``EXCHANGE.http.*`` files,
        written beside ``EXCHANGE.0``); None when none did."""
        http = getattr(self.feed, "http_conn", None)
        if not isinstance(http, _RecordedHTTP) or not http.missing:
            return None
        recording = self.recording
        main = recording.main_files[0] if recording.main_files else None
        prefix = main.name.split(".")[0] if main is not None else self.base_class.id
        where = f" beside {main.name} in {main.parent}" if main is not None else ""
        if recording.http_files:
            given = ", ".join(path.name for path in recording.http_files)
            cause = f"the given {given} hold(s) no answer to them"
        else:
            cause = f"no {prefix}.http.* file (the recorded REST answers) was given"
        return (
            f"{http.missing} REST request(s) had no recorded answer (the first: "
            f"{http.first_missing}), so the messages needing them were dropped: {cause}; "
            f"expected {prefix}.http.N.M{where}, as `crypto-monitor record` writes it"
        )

    def counts(self) -> dict[str, int]:
        """Callbacks per cryptofeed channel (``trades``, ``l2_book``, ...), as ``playback``."""
        channels = self.health.channels.items()
        return {CF_CHANNELS[name]: channel.messages for name, channel in channels}

    def _build(self) -> Any:
        recording = self.recording
        cls: Any = type(
            f"Replay{self.base_class.__name__}",
            (self.base_class,),
            {"http_sync": _RecordedSymbols(recording.symbol_texts)},
        )
        # Like cryptofeed (which reads a symbol list only when it has none), the list is parsed
        # once: again only if cryptofeed's table for this exchange id came from elsewhere.
        known = Symbols.get(cls.id)[1] if Symbols.populated(cls.id) else None
        if not isinstance(known, dict) or known.get(_RECORDING_KEY) != recording.key:
            cls.symbol_mapping(refresh=True)
            info = Symbols.get(cls.id)[1]
            if isinstance(info, dict):
                info[_RECORDING_KEY] = recording.key
        subscription = {
            channel: symbols
            for channel, symbols in recording.subscription.items()
            if channel in CONFIG_CHANNELS
        }
        feed = cls(
            candle_closed_only=False,
            config=CF_CONFIG,
            subscription=subscription,
            callbacks=self.converter.callbacks([CONFIG_CHANNELS[name] for name in subscription]),
            max_depth=self.config.depth,
        )
        feed.http_conn = _RecordedHTTP(recording.http, on_read=self._rest_read)
        return feed

    def _rest_read(self, receipt: float) -> None:
        """A recorded REST response (a book snapshot) was served: cryptofeed hands the book it
        builds from it to the callbacks with ``time.time()`` as the receipt (today's clock in a
        replay, years after the recording's other times), so the next book callback, within
        the same websocket line, gets the response's recorded receipt instead."""
        callbacks = self.feed.callbacks
        original = self._book_callbacks or callbacks.get(L2_BOOK)
        if not original:
            return
        self._book_callbacks = original

        async def at_recorded_receipt(book: Any, _now: float) -> None:
            self._restore_book_callbacks()
            for callback in original:
                await callback(book, receipt)

        callbacks[L2_BOOK] = [at_recorded_receipt]

    def _restore_book_callbacks(self) -> None:
        if self._book_callbacks is not None:
            self.feed.callbacks[L2_BOOK] = self._book_callbacks
            self._book_callbacks = None

    async def start(self) -> None:
        try:
            self.feed = self._build()
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                [
                    Problem(
                        f"exchanges[{self.exchange}].files",
                        list(self.config.files),
                        f"a recording of {self.base_class.__name__} ({exc!r})",
                    )
                ]
            ) from None
        if self.converter.quality is not None:
            self.converter.quality.on_connected(None)  # subscribed at the first recorded trade
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        t_start = time.perf_counter()
        try:
            await self._replay()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
            log.error("replay.failed", exchange=self.exchange, error=repr(exc))
        finally:
            self.converter.flush()  # the last loop turn's BookTops, before ``done``
            self.seconds = time.perf_counter() - t_start
            self.health.connected = False
            self.health.state = "disconnected"
            self.done.set()

    async def _subscribe(self) -> tuple[_RecordedConn, Any]:
        """The recorded connection, subscribed as the recording was, and the feed's message
        handler (None if the feed has no connection for the recorded channels)."""
        feed = self.feed
        conn = _RecordedConn({})
        conn.subscription = {
            feed.std_channel_to_exchange(channel): [
                feed.std_symbol_to_exchange_symbol(symbol) for symbol in symbols
            ]
            for channel, symbols in self.recording.subscription.items()
            if channel in CONFIG_CHANNELS
        }
        handler: Any = None
        for _, subscribe, conn_handler, _auth in feed.connect():
            await subscribe(conn)
            handler = conn_handler
        return conn, handler

    async def _replay(self) -> None:  # noqa: PLR0912, PLR0915 - the per-line hot loop, inlined on purpose
        recording = self.recording
        conn, handler = await self._subscribe()
        if handler is None:
            return
        self.health.on_connected()
        health = self.health
        speed = self.speed
        first_ts: float | None = None
        wall0 = self.clock.monotonic()
        done_bytes = 0
        handed = 0  # websocket messages handed to the feed
        messages = self.messages  # counted in a local (hot loop), stored back below
        lines = timed_lines(recording.ws_files)
        try:
            for receipt, line in lines:
                done_bytes += len(line)
                if line == "\n":
                    continue
                start = line[:3]
                if start in {"wss", "ws:"}:  # a connection header line
                    continue
                messages += 1
                if start == "htt":
                    continue
                ts_text, _, message = line.partition(": ")
                handed += 1
                try:
                    ts = float(ts_text) if receipt is None else receipt
                    if message.startswith(("b'", 'b"')):
                        message = ast.literal_eval(message.strip())
                    if speed is not None:
                        first_ts = ts if first_ts is None else first_ts
                        wait = (ts - first_ts) / speed - (self.clock.monotonic() - wall0)
                        if wait > 0:
                            await self.clock.sleep(wait)
                    await handler(message, conn, ts)
                    if self._book_callbacks is not None:  # a REST read, no book after
                        self._restore_book_callbacks()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bad line is counted and skipped
                    self._restore_book_callbacks()
                    health.on_parse_error(exc, line)
                if handed % _YIELD_EVERY == 0:
                    self.messages = messages
                    if self.progress is not None:
                        self.progress(done_bytes, recording.total_bytes)
                    await asyncio.sleep(0)
        finally:
            lines.close()  # the files, also when the replay is cancelled
            self.messages = messages
        if self.progress is not None:
            self.progress(recording.total_bytes, recording.total_bytes)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.feed is not None:
            with contextlib.suppress(Exception):
                await self.feed.shutdown()


class ReplayPlugin(FeedPlugin):
    """``source: replay`` exchanges: recordings through the exchange's cryptofeed class."""

    name = "replay"

    def validate(self, config: ExchangeConfig) -> None:
        replay_feed_class(config.name)
        parse_speed(config.replay_speed)

    def create(
        self, config: ExchangeConfig, *, hub: Hub, clock: Clock, market: MarketInputs | None = None
    ) -> FeedSource:
        return ReplayFeed(
            config, feed_class=replay_feed_class(config.name), hub=hub, clock=clock, market=market
        )
