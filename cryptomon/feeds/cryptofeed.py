"""The cryptofeed adapter: every cryptofeed exchange by name, plus the loopback simulator.

One ``FeedHandler`` per exchange, run on the daemon's loop
(``run(start_loop=False, install_signal_handlers=False)``); its feed is a subclass of the
cryptofeed exchange class with the ``Supervised`` mixin (:mod:`cryptomon.feeds.supervisor`),
which replaces cryptofeed's ``ConnectionHandler``: reconnect forever with capped backoff +
jitter, malformed messages counted and skipped (never a reconnect), health hooks.

cryptofeed's global state is kept behind this module: the symbol table (``Symbols``) is
(re)loaded for the class in a worker thread before the feed is built (the sync HTTP call never
blocks the loop), and the simulator uses its own exchange id ``SIMULATOR``.

Exchange differences are class data: the simulator is :class:`SimulatorBinance`, cryptofeed's
``Binance`` with other endpoint addresses (``plain_ws`` lets it use ``ws://`` on loopback);
:mod:`cryptomon.feeds.simulated` holds it and the USD-M futures one.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
from typing import Any

import structlog
from cryptofeed import FeedHandler
from cryptofeed.connection import Connection
from cryptofeed.exchanges import EXCHANGE_MAP
from cryptofeed.feed import Feed
from cryptofeed.symbols import Symbols

from cryptomon.clock import Clock
from cryptomon.config import ExchangeConfig
from cryptomon.errors import ConfigError, Problem, backoff_delays
from cryptomon.feeds.convert import CF_CHANNELS, Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.feeds.liblog import quiet_symbol_load_errors
from cryptomon.feeds.proxy import proxied, require_proxy_support
from cryptomon.feeds.registry import FeedPlugin, FeedSource
from cryptomon.feeds.simulated import simulator_class
from cryptomon.feeds.supervisor import Supervised
from cryptomon.feeds.venue_fixes import fixed_class
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs

log = structlog.get_logger()

CF_CONFIG: dict[str, Any] = {"log": {"disabled": True}, "uvloop": False}
SYMBOL_TIMEOUT_S = 10.0
RESYNC_MIN_INTERVAL_S = 2.0


def valid_exchange_names() -> list[str]:
    return sorted([name.lower() for name in EXCHANGE_MAP] + ["simulator"])


def exchange_class(name: str) -> type[Feed]:
    """The cryptofeed class of exchange ``name`` (case-insensitive); ConfigError if unknown."""
    for key, cls in EXCHANGE_MAP.items():
        if key.lower() == name.lower():
            return fixed_class(cls)  # with the fixes its real messages need (venue_fixes.py)
    valid = valid_exchange_names()
    close = difflib.get_close_matches(name.lower(), valid, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(
        [Problem(f"exchanges[{name}].name", name, f"one of {', '.join(valid)}{hint}")]
    )


def check_channels(config: ExchangeConfig, cls: type[Feed]) -> None:
    have = set(cls.websocket_channels) | set(getattr(cls, "rest_channels", ()) or ())
    bad = [name for name in config.subscriptions if CF_CHANNELS[name] not in have]
    if bad:
        ok = sorted(name for name, channel in CF_CHANNELS.items() if channel in have)
        raise ConfigError(
            [
                Problem(
                    f"exchanges[{config.name}].subscriptions",
                    bad,
                    f"channels {config.name} supports: {', '.join(ok)}",
                )
            ]
        )


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2_592_000}


def _interval_seconds(interval: str) -> float:
    number, unit = interval[:-1], interval[-1:]
    return float(number) * _UNIT_SECONDS[unit] if number.isdigit() and unit in _UNIT_SECONDS else 0


def check_candle_interval(config: ExchangeConfig, cls: type[Feed]) -> None:
    """The feed class must serve ``candle_interval`` (cryptofeed refuses any other when the
    feed is made: the daemon did not start after check-config said OK)."""
    valid: Any = getattr(cls, "valid_candle_intervals", NotImplemented)
    if not isinstance(valid, set | frozenset | list | tuple) or not valid:
        return  # the class does not say (NotImplemented): cryptofeed does not check either
    if config.candle_interval in valid:
        return
    ordered = sorted(valid, key=lambda i: (_interval_seconds(i), i))
    raise ConfigError(
        [
            Problem(
                f"exchanges[{config.name}].candle_interval",
                config.candle_interval,
                f"an interval {config.name} serves: {', '.join(ordered)}",
            )
        ]
    )


def check_symbols(
    config: ExchangeConfig, known: list[str], cached: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Every configured symbol must be listed by the exchange, or be in the cached instrument
    specs (then it is delisted: returned, to be skipped); else a ConfigError naming close
    matches."""
    problems = []
    delisted = []
    for symbol in config.symbols:
        if symbol in known:
            continue
        if symbol in cached:
            delisted.append(symbol)
            continue
        close = difflib.get_close_matches(symbol, known, n=3, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        problems.append(
            Problem(
                f"exchanges[{config.name}].symbols",
                symbol,
                f"a symbol {config.name} lists ({len(known)} known){hint}",
            )
        )
    if problems:
        raise ConfigError(problems)
    return delisted


def feed_converter(
    config: ExchangeConfig, *, hub: Hub, health: FeedHealth, market: MarketInputs | None
) -> Converter:
    """The :class:`Converter` of exchange ``config``'s feed (live or replayed): its book and
    loop settings, and the market's units and quality guard when there is a market."""
    return Converter(
        config.name,
        hub=hub,
        health=health,
        book_levels=config.book_levels,
        depth=config.depth,
        book_snapshot_interval_s=config.book_snapshot_interval_s,
        loop_yield_every=config.loop_yield_every,
        units=None if market is None else market.units,
        quality=None if market is None else market.guard(config.name),
    )


class CryptofeedFeed:
    """One exchange through cryptofeed: FeedHandler on the daemon loop, events to the hub."""

    backoff_initial_s = 0.5
    backoff_cap_s = 30.0

    def __init__(
        self,
        config: ExchangeConfig,
        *,
        feed_class: type[Feed],
        hub: Hub,
        clock: Clock,
        raw_data: Any = None,
        market: MarketInputs | None = None,
    ) -> None:
        self.config = config
        self.market = market
        self.symbols = list(config.symbols)  # the configured symbols the venue still lists
        self.delisted: set[str] = set()
        self.exchange = config.name
        self.name = f"feed:{config.name}"
        self.clock = clock
        self.hub = hub
        self.raw_data = raw_data
        self.feed_class: type[Feed] = (
            feed_class
            if issubclass(feed_class, Supervised)
            else type(feed_class.__name__, (Supervised, feed_class), {})
        )
        self.proxy = config.proxy.get_secret_value() if config.proxy is not None else None
        if self.proxy is not None:  # REST (sync and async) and websockets through the proxy
            require_proxy_support(self.proxy, f"exchanges[{config.name}].proxy")
            self.feed_class = proxied(self.feed_class, self.proxy)
        self.health = FeedHealth(
            config.name,
            list(config.subscriptions),
            hub=hub,
            clock=clock,
            stale_after_s=config.stale_after_s,
        )
        self.health.on_stale = self._on_stale
        self.converter = feed_converter(config, hub=hub, health=self.health, market=market)
        self.health.quality = self.converter.quality
        self.converter.on_crossed = self.resync
        self.handler: FeedHandler | None = None
        self.feed: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resynced: dict[str, float] = {}

    async def _load_symbols(self) -> list[str]:
        quiet_symbol_load_errors()
        cls: Any = self.feed_class
        await asyncio.wait_for(
            asyncio.to_thread(cls.symbol_mapping, True), timeout=SYMBOL_TIMEOUT_S
        )
        return list(Symbols.get(cls.id)[0])

    async def start(self) -> None:
        """Load and check the symbol list, then run the feed. An unknown symbol is a
        ConfigError; an unreachable exchange is retried in the background (with backoff,
        forever) so the daemon still starts."""
        if self.raw_data is not None:
            Connection.raw_data_callback = self.raw_data  # cryptofeed's recorder hook
        try:
            known = await self._load_symbols()
        except Exception as exc:
            self._unreachable(exc)
            self._spawn(self._start_when_reachable())
            return
        self._check_listed(known)
        self._run_feed()

    def _check_listed(self, known: list[str]) -> None:
        """Check the configured symbols against the venue's list: unknown ones are a
        ConfigError, delisted ones (in the cached specs only) are skipped with an alert."""
        cached = set() if self.market is None else self.market.cached_symbols(self.exchange)
        for symbol in check_symbols(self.config, known, cached):
            self.mark_delisted(symbol, "no longer listed by the exchange at start")

    def mark_delisted(self, symbol: str, detail: str) -> None:
        """Stop expecting data for ``symbol``: skipped at the next (re)start, stale for
        trading, alerted; the daemon and the other symbols go on."""
        if symbol in self.delisted or symbol not in self.config.symbols:
            return
        self.delisted.add(symbol)
        self.symbols = [s for s in self.config.symbols if s not in self.delisted]
        log.warning("feed.delisted", exchange=self.exchange, symbol=symbol, detail=detail)
        self.health.publish("delisted", channel="symbol", symbol=symbol, detail=detail)

    def _unreachable(self, exc: BaseException) -> None:
        detail = f"symbol list unavailable: {exc!r}"[:300]
        log.warning("feed.symbols_unavailable", exchange=self.exchange, error=repr(exc)[:200])
        self.health.state = "error"
        self.health.publish("error", detail=detail)

    async def _start_when_reachable(self) -> None:
        for delay in backoff_delays(initial=self.backoff_initial_s * 4, cap=self.backoff_cap_s):
            await self.clock.sleep(delay)
            try:
                known = await self._load_symbols()
            except Exception as exc:
                self._unreachable(exc)
                continue
            try:
                self._check_listed(known)
            except ConfigError as exc:
                log.error("feed.bad_symbols", exchange=self.exchange, error=str(exc))
                self.health.publish("error", detail=str(exc)[:300])
                return
            self._run_feed()
            return

    def _run_feed(self) -> None:
        if not self.symbols:
            self.health.state = "error"
            self.health.publish("error", detail="every configured symbol is delisted")
            return
        self.feed = self.feed_class(
            symbols=list(self.symbols),
            channels=[CF_CHANNELS[name] for name in self.config.subscriptions],
            callbacks=self.converter.callbacks(list(self.config.subscriptions)),
            max_depth=self.config.depth,
            candle_interval=self.config.candle_interval,
            candle_closed_only=False,
            checksum_validation=True,
            retries=-1,
            config=CF_CONFIG,
            http_proxy=self.proxy,
        )
        self.feed.supervisor_owner = self
        self.handler = FeedHandler(config=CF_CONFIG, raw_data_collection=self.raw_data)
        self.handler.add_feed(self.feed)
        self.handler.run(start_loop=False, install_signal_handlers=False)
        log.info("feed.started", exchange=self.exchange, symbols=self.symbols)

    async def stop(self) -> None:
        if self.raw_data is not None:
            # Detach the recorder before the connection handlers stop running, with no await
            # in between: cryptofeed drops a message read after ``running`` turns False, so a
            # message is either recorded and handled, or neither (record/replay counts match).
            Connection.raw_data_callback = None
        for task in list(self._tasks):
            task.cancel()
        if self.handler is not None:
            with contextlib.suppress(Exception):
                await self.handler.stop_async()
            for supervisor in list(self.feed.connection_handlers):
                if supervisor.task is not None:
                    supervisor.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await supervisor.task
            self.handler = None
        self.health.on_disconnected("stopped")

    # ------------------------------------------------------------------ health hooks

    def on_connected(self, *, reconnect: bool = False) -> None:
        if self.converter.quality is not None:
            self.converter.quality.on_connected(self.clock.time())
        self.converter.reset_connection()
        self.health.on_connected(reconnect=reconnect)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_stale(self, channels: str) -> None:
        log.warning("feed.stale", exchange=self.exchange, channels=channels)
        self.force_reconnect()

    def force_reconnect(self) -> None:
        """Close every connection; the supervisors reconnect (and resync) with backoff."""
        if self.feed is None:
            return
        for supervisor in self.feed.connection_handlers:
            self._spawn(supervisor.conn.close())

    def resync(self, symbol: str) -> None:
        """Rebuild one symbol's book: drop it so the exchange class re-fetches its snapshot
        (classes with a REST book route), else reconnect."""
        now = self.clock.monotonic()
        if now - self._resynced.get(symbol, -1e18) < RESYNC_MIN_INTERVAL_S:
            return  # one resync at a time per symbol; crossed updates meanwhile are dropped
        self._resynced[symbol] = now
        log.warning("feed.crossed_book", exchange=self.exchange, symbol=symbol)
        self.health.publish("resync", channel="orderbook", symbol=symbol, detail="crossed book")
        feed = self.feed
        if feed is None:
            return
        routes = getattr(feed.rest_endpoints[0], "routes", None) if feed.rest_endpoints else None
        if routes is not None and getattr(routes, "l2book", None) and hasattr(feed, "_snapshot"):
            # cryptofeed has no public call to drop one book; a class that fetches snapshots
            # over REST re-fetches a book missing from its ``_l2_book`` on the next delta
            feed._l2_book.pop(symbol, None)
            self.converter.forget_book(symbol)
        else:
            self.force_reconnect()


class CryptofeedPlugin(FeedPlugin):
    """Every exchange cryptofeed supports, by (case-insensitive) name."""

    name = "cryptofeed"

    def feed_class(self, config: ExchangeConfig) -> type[Feed]:
        return exchange_class(config.name)

    def validate(self, config: ExchangeConfig) -> None:
        cls = self.feed_class(config)
        check_channels(config, cls)
        check_candle_interval(config, cls)

    def create(
        self, config: ExchangeConfig, *, hub: Hub, clock: Clock, market: MarketInputs | None = None
    ) -> FeedSource:
        self.validate(config)
        return CryptofeedFeed(
            config, feed_class=self.feed_class(config), hub=hub, clock=clock, market=market
        )


class SimulatorPlugin(CryptofeedPlugin):
    """The loopback simulator (``url`` = its REST address) through cryptofeed's Binance code."""

    name = "simulator"

    def feed_class(self, config: ExchangeConfig) -> type[Feed]:
        if not config.url:
            raise ConfigError(
                [
                    Problem(
                        f"exchanges[{config.name}].url",
                        None,
                        "the simulator's address, e.g. http://127.0.0.1:8901",
                    )
                ]
            )
        return simulator_class(config.url)
