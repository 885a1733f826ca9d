"""What the API calls on the other subsystems: small Protocols, one per capability.

``ApiServer`` takes each service as an optional keyword argument; an endpoint whose service
is absent answers 404. Handlers reach the services through the typed ``web.AppKey``s below.
Rows returned by queries may be dicts or objects with attributes: the response models read
both (``from_attributes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web

from cryptomon.clock import Clock
from cryptomon.events import BookSnapshot, BookTop, Ticker, Trade
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentSpec

Page = tuple[Sequence[Any], str | None]


class StoreQueries(Protocol):
    """Read side of the store (``cryptomon.store.queries.Queries``)."""

    async def anomalies(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        kind: str | None = None,
        min_severity: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page: ...

    async def anomaly_page_json(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        kind: str | None = None,
        min_severity: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> bytes:
        """The page of :meth:`anomalies` as ``{"items": [...], "next_cursor": ...}`` JSON."""
        ...

    async def anomaly_stats(
        self, *, since: float | None = None, until: float | None = None
    ) -> Mapping[str, Any]: ...

    async def candles(
        self,
        *,
        exchange: str,
        symbol: str,
        interval: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 500,
    ) -> Sequence[Any]: ...

    async def notification_page(
        self,
        *,
        channel: str | None = None,
        status: str | None = None,
        event_type: str | None = None,
        exchange: str | None = None,
        symbol: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page: ...

    async def signal_page(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        source: str | None = None,
        side: str | None = None,
        grade: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page: ...

    async def signal_stats(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Mapping[str, Any]: ...
    async def orders(
        self, *, state: str | None = None, symbol: str | None = None, limit: int = 100
    ) -> Sequence[Any]: ...

    async def fills(
        self, *, symbol: str | None = None, client_order_id: str | None = None, limit: int = 100
    ) -> Sequence[Any]: ...

    async def equity_snapshots(
        self, *, since: float | None = None, until: float | None = None, limit: int = 1000
    ) -> Sequence[Any]: ...


class Database(Protocol):
    """``cryptomon.store.db.Database``: reachability for ``/ready``."""

    async def ping(self) -> bool: ...


class Market(Protocol):
    """``cryptomon.market.state.MarketState``: the live market in memory."""

    def top(self, exchange: str, symbol: str) -> BookTop | None: ...

    def snapshot(self, exchange: str, symbol: str) -> BookSnapshot | None: ...

    def ticker(self, exchange: str, symbol: str) -> Ticker | None: ...

    def trades(self, exchange: str, symbol: str, limit: int = 100) -> list[Trade]: ...

    def mid(self, exchange: str, symbol: str) -> float | None: ...

    def is_stale(self, exchange: str, symbol: str) -> bool: ...

    def is_delisted(self, exchange: str, symbol: str) -> bool: ...

    def markets(self) -> list[tuple[str, str]]: ...

    def spec(self, exchange: str, symbol: str) -> InstrumentSpec | None: ...


class Feeds(Protocol):
    """The feed manager: per exchange and channel health."""

    def health(self) -> Mapping[str, Any]: ...


class Detectors(Protocol):
    """The detector engine: anomalies by kind, latency histogram."""

    def stats(self) -> Mapping[str, Any]: ...


class Notifier(Protocol):
    """``cryptomon.notify.router.NotificationRouter``."""

    def channels_redacted(self) -> Sequence[Mapping[str, Any]]: ...

    def update_routing(self, name: str, **fields: Any) -> Mapping[str, Any]: ...

    async def send_test(self, channel: str | None = None) -> Mapping[str, Mapping[str, Any]]: ...

    def stats(self) -> Mapping[str, Any]: ...


class Trading(Protocol):
    """``cryptomon.trading.engine.TradingEngine``: JSON-ready dicts, Decimals as strings.

    Raises ``RiskRejected`` (risk checks), ``ValueError`` (bad input), ``LookupError``
    (unknown order) and ``ConfigError`` (bad limits, one problem per key).
    """

    reconciled: bool

    @property
    def risk_state(self) -> Any: ...

    def limits(self) -> Mapping[str, Any]: ...

    def update_limits(self, actor: str, **fields: Any) -> Mapping[str, Any]: ...

    def positions(self) -> Sequence[Mapping[str, Any]]: ...

    def orders(
        self, symbol: str | None = None, open_only: bool = False, limit: int = 100
    ) -> Sequence[Mapping[str, Any]]: ...

    async def place_manual_order(
        self,
        *,
        actor: str,
        exchange: str,
        symbol: str,
        side: str,
        amount: Any,
        type: str = "market",
        price: Any = None,
        stop_loss: Any = None,
        take_profit: Any = None,
        reduce_only: bool = False,
        request_id: str | None = None,
    ) -> Mapping[str, Any]: ...

    async def cancel_order(self, client_order_id: str, actor: str) -> Mapping[str, Any]: ...

    async def kill_switch(self, actor: str, flatten: bool | None = None) -> Mapping[str, Any]: ...

    async def resume(self, actor: str) -> str: ...

    def stats(self) -> Mapping[str, Any]: ...


class Webhooks(Protocol):
    """``cryptomon.trading.signals.webhooks.SignalWebhooks``: external signal senders."""

    def verify(
        self,
        name: str,
        *,
        secret: str | None = None,
        signature: str | None = None,
        raw_body: bytes = b"",
        timestamp: str | None = None,
    ) -> bool: ...

    def accept(self, name: str, call: Any) -> Mapping[str, Any]: ...

    def forget_signature(self, name: str, signature: str | None) -> None: ...

    def stats(self) -> Mapping[str, Any]: ...


class Stats(Protocol):
    def stats(self) -> Mapping[str, Any]: ...


class Backtests(Protocol):
    """``cryptomon.store.history.BacktestRuns``: stored backtest runs as JSON-ready dicts."""

    async def list_runs(
        self,
        *,
        limit: int = 50,
        before: int | None = None,
        sweep: int | None = None,
        after_rank: int | None = None,
        variants: bool = True,
    ) -> Sequence[Mapping[str, Any]]: ...

    async def get_run(self, run_id: int) -> Mapping[str, Any] | None: ...

    async def report(self, run_id: int) -> str | None: ...


# Typed application keys: the only way handlers reach services.
HUB = web.AppKey("hub", Hub)
CLOCK = web.AppKey("clock", Clock)
QUERIES = web.AppKey("queries", StoreQueries)
DATABASE = web.AppKey("database", Database)
MARKET = web.AppKey("market", Market)
FEEDS = web.AppKey("feeds", Feeds)
DETECTORS = web.AppKey("detectors", Detectors)
NOTIFIER = web.AppKey("notifier", Notifier)
TRADING = web.AppKey("trading", Trading)
WRITER = web.AppKey("writer", Stats)
WEBHOOKS = web.AppKey("webhooks", Webhooks)
BACKTESTS = web.AppKey("backtests", Backtests)
RESOURCES = web.AppKey("resources", Stats)  # process CPU, RSS, open files, free disk

CAPABILITY_NAMES: dict[web.AppKey[Any], str] = {
    QUERIES: "store",
    DATABASE: "database",
    MARKET: "market data",
    FEEDS: "feeds",
    DETECTORS: "detection",
    NOTIFIER: "notifications",
    TRADING: "trading",
    WRITER: "store writer",
    WEBHOOKS: "signal webhooks",
    BACKTESTS: "backtests",
    RESOURCES: "resource monitor",
}
