"""Feed health: counters per exchange and channel, state changes published as ``FeedStatus``.

The hot path only bumps ``messages`` and stores ``last_recv`` (cryptofeed's receipt time) on a
:class:`ChannelHealth`: no clock call per message. ``last`` (the injected clock's monotonic
seconds of the last message) is brought up to date lazily by :meth:`ChannelHealth.refresh`
whenever the watchdog or a snapshot looks (a message counter that moved since the previous
look means "a message arrived since then"), so its resolution is the watchdog interval
(0.5 s by default, against stall thresholds of 15 s and more). State changes (live / stale /
gap / resync / disconnected) go through :class:`FeedHealth`, which publishes a
:class:`~cryptomon.events.FeedStatus` for each.
:meth:`FeedHealth.check_stale` is the stall watchdog, called periodically by the
:class:`~cryptomon.feeds.manager.FeedManager`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from cryptomon.clock import Clock
from cryptomon.events import FeedState, FeedStatus
from cryptomon.hub import Hub
from cryptomon.market.quality import QualityGuard

log = structlog.get_logger()

# Default stall watchdog per channel (seconds without a message); None = no watchdog
# (liquidations are legitimately silent for long stretches).
DEFAULT_STALE_AFTER: dict[str, float | None] = {
    "orderbook": 15.0,
    "ticker": 30.0,
    "trades": 60.0,
    "candles": 120.0,
    "funding": 300.0,
    "open_interest": 300.0,
    "liquidations": None,
}
_RATE_WINDOW_S = 10.0


class ChannelHealth:
    """Counters of one channel of one exchange."""

    __slots__ = (
        "_mark",
        "_samples",
        "channel",
        "gaps",
        "last",
        "last_recv",
        "messages",
        "resyncs",
        "stale_after",
        "stalls",
        "state",
    )

    def __init__(self, channel: str, stale_after: float | None) -> None:
        self.channel = channel
        self.stale_after = stale_after
        self.messages = 0
        self.last = -1.0  # clock.monotonic() of the last message or (re)connection; -1 = never
        self.last_recv = 0.0
        self.gaps = 0
        self.resyncs = 0
        self.stalls = 0
        self.state: FeedState = "connecting"
        self._samples: deque[tuple[float, int]] = deque()
        self._mark = 0  # ``messages`` when ``last`` was last brought up to date

    def refresh(self, now: float) -> None:
        """Messages arrived since the previous look: the last one counts as seen ``now``."""
        if self.messages != self._mark:
            self._mark = self.messages
            self.last = max(self.last, now)

    def rate(self, now: float) -> float:
        """Messages per second over the last ~10 seconds."""
        samples = self._samples
        samples.append((now, self.messages))
        while len(samples) > 2 and now - samples[1][0] >= _RATE_WINDOW_S:
            samples.popleft()
        since, messages_then = samples[0]
        return (self.messages - messages_then) / (now - since) if now > since else 0.0


class FeedHealth:
    """Health of one exchange feed: its channels, reconnects and parse errors."""

    def __init__(
        self,
        exchange: str,
        channels: list[str],
        *,
        hub: Hub,
        clock: Clock,
        stale_after_s: float | None = None,
        source: str = "live",
    ) -> None:
        self.exchange = exchange
        self.hub = hub
        self.clock = clock
        self.source = source
        self.channels: dict[str, ChannelHealth] = {
            name: ChannelHealth(
                name, stale_after_s if stale_after_s is not None else DEFAULT_STALE_AFTER.get(name)
            )
            for name in channels
        }
        self.state: FeedState = "connecting"
        self.connected = False
        self.connections = 0
        self.reconnects = 0
        self.parse_errors = 0
        self.crossed = 0
        self.unquoted_tickers = 0  # tickers without a best bid or ask: not published
        self.book_tops = 0  # BookTop events published (conflated: see feeds.convert)
        self.connected_at = 0.0
        self._last_error_log = -1e18
        self._suppressed = 0
        self.on_stale: Callable[[str], None] | None = None  # set by the feed: force a reconnect
        self.quality: QualityGuard | None = None  # set by the feed: per-symbol checks

    # ------------------------------------------------------------------ publishing

    def publish(
        self, status: FeedState, *, channel: str = "", symbol: str = "", detail: str = ""
    ) -> None:
        now = self.clock.time()
        self.hub.publish(
            FeedStatus(
                exchange=self.exchange,
                symbol=symbol,
                ts=now,
                ts_recv=now,
                channel=channel,
                status=status,
                detail=detail,
            )
        )

    # ------------------------------------------------------------------ connection

    def on_connecting(self) -> None:
        self.state = "connecting"
        self.publish("connecting", detail="opening connection")

    def on_connected(self, *, reconnect: bool = False) -> None:
        """A connection is up; ``reconnect`` when that connection had been up before (a feed
        may hold several connections, e.g. one per websocket endpoint)."""
        now = self.clock.monotonic()
        self.connections += 1
        if reconnect:
            self.reconnects += 1
        self.connected = True
        self.connected_at = now
        for channel in self.channels.values():
            channel.last = max(channel.last, now)  # the watchdog counts from the (re)connection

    def on_disconnected(self, detail: str) -> None:
        was = self.connected
        self.connected = False
        if self.state != "disconnected" or was:
            self.state = "disconnected"
            for channel in self.channels.values():
                channel.state = "disconnected"
            self.publish("disconnected", detail=detail)

    def on_parse_error(self, exc: BaseException, message: object) -> None:
        """A message that could not be handled: counted, logged at most every 10 s."""
        self.parse_errors += 1
        now = self.clock.monotonic()
        if now - self._last_error_log >= 10.0:
            text = message if isinstance(message, str) else repr(message)
            log.warning(
                "feed.malformed_message",
                exchange=self.exchange,
                error=repr(exc)[:200],
                message=text[:200],
                suppressed=self._suppressed,
            )
            self._last_error_log = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    # ------------------------------------------------------------------ channels

    def became_live(self, channel: ChannelHealth) -> None:
        """First message on a channel since (re)connection or a stall (called off the hot path)."""
        previous = channel.state
        channel.state = "live"
        if self.state != "live":
            self.state = "live"
            self.publish("live", detail="receiving data")
        if previous == "stale":
            self.publish("live", channel=channel.channel, detail="recovered from stall")

    def gap(self, channel: str, symbol: str, detail: str) -> None:
        counters = self.channels.get(channel)
        if counters is not None:
            counters.gaps += 1
            counters.resyncs += 1
        log.warning("feed.gap", exchange=self.exchange, symbol=symbol, detail=detail)
        self.publish("gap", channel=channel, symbol=symbol, detail=detail)
        self.publish("resync", channel=channel, symbol=symbol, detail="book resynchronised")

    def check_stale(self) -> list[str]:
        """The stall watchdog: channels silent longer than their ``stale_after``; returns them."""
        now = self.clock.monotonic()
        stale = []
        for channel in self.channels.values():
            channel.refresh(now)
            if channel.stale_after is None or channel.state == "stale" or not self.connected:
                continue
            if channel.last >= 0 and now - channel.last > channel.stale_after:
                channel.state = "stale"
                channel.stalls += 1
                stale.append(channel.channel)
                self.publish(
                    "stale",
                    channel=channel.channel,
                    detail=f"no {channel.channel} message for {now - channel.last:.1f}s "
                    f"(stale_after_s={channel.stale_after:g})",
                )
                channel.last = now  # count the next stall from here
        if stale:
            self.state = "stale"
            if self.on_stale is not None:
                self.on_stale(",".join(stale))
        if self.quality is not None and self.connected and self.source != "replay":
            self.check_symbols_stale()
        return stale

    def check_symbols_stale(self) -> None:
        """Per-symbol staleness: a symbol silent beyond its learned bound is ``stale``
        (trading on it pauses), and ``live`` again on data."""
        if self.quality is None:
            return
        went_stale, recovered = self.quality.check_stale(self.clock.time())
        for symbol in went_stale:
            st = self.quality.symbols[symbol]
            bound = self.quality.stale_bound(st)
            log.warning("feed.symbol_stale", exchange=self.exchange, symbol=symbol)
            self.publish(
                "stale", channel="symbol", symbol=symbol, detail=f"no data for {bound:.1f}s"
            )
        for symbol in recovered:
            self.publish("live", channel="symbol", symbol=symbol, detail="data again")

    # ------------------------------------------------------------------ reporting

    def snapshot(self) -> dict[str, Any]:
        """The ``/api/v1/feeds`` entry of this exchange."""
        now = self.clock.monotonic()
        channels = {}
        for name, channel in self.channels.items():
            channel.refresh(now)
            channels[name] = {
                "state": channel.state,
                "messages": channel.messages,
                "messages_per_s": round(channel.rate(now), 3),
                "last_message_age_s": round(now - channel.last, 3) if channel.messages else None,
                "gaps": channel.gaps,
                "resyncs": channel.resyncs,
                "stalls": channel.stalls,
                "stale_after_s": channel.stale_after,
            }
        return {
            "source": self.source,
            "state": self.state,
            "connected": self.connected,
            "reconnects": self.reconnects,
            "parse_errors": self.parse_errors,
            "crossed_books": self.crossed,
            "unquoted_tickers": self.unquoted_tickers,
            "book_tops": self.book_tops,
            "messages": sum(channel.messages for channel in self.channels.values()),
            "gaps": sum(channel.gaps for channel in self.channels.values()),
            "channels": channels,
            "quality": {} if self.quality is None else self.quality.stats(),
            "quarantined": {} if self.quality is None else self.quality.quarantined(),
        }
