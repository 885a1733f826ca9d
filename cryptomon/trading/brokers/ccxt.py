"""The live broker: any ccxt exchange through ``ccxt.async_support``.

Exchange differences are data (:mod:`cryptomon.trading.brokers.ccxt_client`: per-exchange
ccxt options, URL overrides for the simulator). The shared code never branches on the exchange
name; it uses ccxt's unified parameters (``clientOrderId``, ``stopLossPrice``,
``takeProfitPrice``) which each ccxt exchange class maps to its own fields (Binance:
``newClientOrderId`` / ``origClientOrderId``, ``STOP_LOSS`` / ``TAKE_PROFIT`` order types).

Placement is never retried here (ccxt's ``maxRetriesOnFailure`` is 0): a timeout, a dropped
connection, a 5xx or a 429 raises :class:`OrderOutcomeUnknown` (with ``Retry-After`` when the
venue sent one) and the engine settles the order with :meth:`CcxtBroker.fetch_order` by client
order id. A venue refusal (insufficient funds, invalid order, bad symbol, bad request,
authentication, or a venue code that certainly left no order, such as Binance USD-M's -4131
PERCENT_PRICE: :mod:`~cryptomon.trading.brokers.ccxt_codes`) raises
:class:`OrderRejectedError` with the venue's message; ccxt's ``OperationRejected`` alone does
not (it also stands for a busy venue that may have taken the order). A "duplicate order"
answer means the order already exists, so it is looked up and returned instead. Reads raise
``TemporaryError`` on network trouble (the engine retries with backoff).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any, TypeVar

import structlog

from cryptomon.clock import Clock, LiveClock
from cryptomon.errors import FatalError, TemporaryError
from cryptomon.events import Fill, OrderIntent
from cryptomon.trading.brokers.base import (
    BrokerOrder,
    FundingPayment,
    MarketInfo,
    OrderOutcomeUnknown,
    OrderRejectedError,
    VenuePosition,
)
from cryptomon.trading.brokers.ccxt_client import LiveSettings, build_exchange
from cryptomon.trading.brokers.ccxt_conditional import (
    TRIGGER,
    ConditionalOrders,
    actual_order_id,
    lookup_params,
    settled,
)
from cryptomon.trading.brokers.ccxt_contracts import (
    ContractSettings,
    ContractSetup,
    find_market,
    funding_payments,
    is_contract_symbol,
    settings_from,
)
from cryptomon.trading.brokers.ccxt_forced import ForcedClose, forced_close, journal_id
from cryptomon.trading.brokers.ccxt_gate import RateLimited, VenueGate, install
from cryptomon.trading.brokers.ccxt_map import dec, market_info, order_request, to_fill, to_order
from cryptomon.trading.brokers.ccxt_read import REFUSALS, placement_error, read
from cryptomon.trading.brokers.ccxt_spec import check_spec
from cryptomon.trading.brokers.ccxt_time import VenueClock

log = structlog.get_logger()
T = TypeVar("T")


class CcxtBroker:
    """A :class:`~cryptomon.trading.brokers.base.Broker` over one ccxt exchange account."""

    def __init__(
        self,
        settings: LiveSettings,
        *,
        clock: Clock | None = None,
        exchange_name: str | None = None,
        urls: dict[str, str] | None = None,
        read_attempts: int = 3,
        gate: VenueGate | None = None,
        contracts: ContractSettings | None = None,
        contract_markets: bool = False,
        session: Any = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or LiveClock()
        self.exchange_id = settings.exchange
        self.exchange_name = exchange_name or settings.exchange
        self.name = f"ccxt:{settings.exchange}"
        self.urls = dict(urls or {})
        self.read_attempts = read_attempts
        self.exchange: Any = None
        self._order_ids: dict[str, str] = {}  # exchange order id -> client order id
        # One gate per venue: every request of every caller waits out a 429/418 Retry-After.
        self.gate = gate or VenueGate(self.name, clock=self.clock)
        self.venue_clock = VenueClock(self.name, max_skew_s=settings.max_clock_skew_ms / 1000)
        self.contracts = ContractSetup(settings=contracts)
        self.contract_markets = contract_markets  # traded symbols are contracts: no spot options
        self.conditional = ConditionalOrders()  # venue-side trigger orders (SL/TP legs)
        self.session = session  # the transport seam: an aiohttp session the caller owns

    @classmethod
    def from_config(cls, trading: Any, *, clock: Clock | None = None) -> CcxtBroker:
        """The live broker of a ``TradingConfig``: ``trading.live`` settings; events carry the
        traded market data exchange (``trading.exchange``, else the ccxt id)."""

        return cls(
            trading.live,
            clock=clock,
            exchange_name=trading.exchange or None,
            contracts=settings_from(trading),
            contract_markets=any(is_contract_symbol(s) for s in trading.symbols),
        )

    # ------------------------------------------------------------------ lifecycle

    def _build(self) -> Any:
        exchange = build_exchange(
            self.settings, urls=self.urls, contracts=self.contract_markets, session=self.session
        )
        install(exchange, self.gate)
        return exchange

    async def start(self) -> None:
        self.exchange = self._build()
        try:
            await self._read(self.exchange.load_markets)
            await self.venue_clock.sync(self.exchange)  # ccxt signs with the venue's offset
        except BaseException:
            await self.stop()
            raise
        log.info(
            "broker.ccxt.ready",
            exchange=self.exchange_id,
            markets=len(self.exchange.markets or {}),
            url=self.settings.url or "",
        )

    async def stop(self) -> None:
        if self.exchange is not None:
            with contextlib.suppress(Exception):
                await self.exchange.close()
            self.exchange = None

    # ------------------------------------------------------------------ helpers

    def _ex(self) -> Any:
        if self.exchange is None:
            raise TemporaryError(f"{self.name}: broker not started")
        return self.exchange

    def _market(self, symbol: str) -> dict[str, Any]:
        """The ccxt market of a cryptofeed symbol (``BTC-USDT`` -> ``BTC/USDT``,
        ``BTC-USDT-PERP`` -> ``BTC/USDT:USDT``)."""
        market = find_market(self._ex().markets or {}, symbol)
        if market is None:
            raise OrderRejectedError("", f"{symbol} is not a market of {self.exchange_id}")
        return market

    async def _read(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """A read call with the retries of :func:`~cryptomon.trading.brokers.ccxt_read.read`."""
        return await read(
            fn,
            *args,
            name=self.name,
            attempts=self.read_attempts,
            clock=self.clock,
            venue_clock=self.venue_clock,
            exchange=self.exchange,
            **kwargs,
        )

    # ------------------------------------------------------------------ protocol

    async def market(self, symbol: str) -> MarketInfo:
        ex, m = self._ex(), self._market(symbol)
        info = market_info(ex, m, symbol, native=self.settings.native_stop_loss)
        tier = await self.contracts.first_tier(ex, m, self._read)
        if tier is None:
            return info
        return replace(info, max_leverage=tier[0], maintenance_margin_rate=tier[1])

    async def place_order(self, intent: OrderIntent) -> BrokerOrder:
        import ccxt

        ex = self._ex()
        cid = intent.client_order_id
        m = self._market(intent.symbol)
        try:
            ccxt_type, amount, price, params = order_request(ex, intent, m)
        except ccxt.BaseError as exc:
            raise OrderRejectedError(cid, f"{type(exc).__name__}: {exc}") from exc
        await check_spec(ex, m, intent, exchange=self.exchange_name, read=self._read)
        if amount <= 0:
            raise OrderRejectedError(cid, f"amount {intent.amount} rounds to 0 at this lot size")
        await self.contracts.prepare(ex, m, intent.symbol, cid)
        if self.conditional.applies(intent, m):  # looked up there if the answer is lost
            self.conditional.placed(cid)
        log.info(
            "broker.ccxt.place",
            order_id=cid,
            symbol=intent.symbol,
            side=intent.side,
            type=intent.type,
            amount=amount,
            price=price,
        )
        try:
            raw = await ex.create_order(m["symbol"], ccxt_type, intent.side, amount, price, params)
        except RateLimited as exc:  # raised at the gate, before anything was sent
            raise OrderRejectedError(cid, str(exc)) from exc
        except ccxt.DuplicateOrderId:
            return await self._existing(intent.symbol, cid)
        except ccxt.InvalidNonce as exc:  # refused before processing: not placed, re-measured
            await self.venue_clock.refused_sync(ex, str(exc))
            raise OrderRejectedError(cid, f"venue clock skew, refused: {exc}") from exc
        except ccxt.BaseError as exc:
            if isinstance(exc, REFUSALS) and "duplicate order" in str(exc).lower():
                return await self._existing(intent.symbol, cid)
            raise placement_error(
                exc, cid, self.gate.last_wait_s, exchange_id=ex.id, market=m
            ) from exc
        self.venue_clock.accepted()
        order = self._order(raw, m, intent=intent)
        log.info("broker.ccxt.placed", order_id=cid, state=order.state, filled=str(order.filled))
        return order

    async def _existing(self, symbol: str, cid: str) -> BrokerOrder:
        found = await self.fetch_order(symbol, cid)
        if found is None:
            raise OrderOutcomeUnknown(cid, "venue says duplicate but the order is not found")
        return found

    async def cancel_order(self, symbol: str, client_order_id: str) -> BrokerOrder:
        import ccxt

        ex = self._ex()
        m = self._market(symbol)
        for trigger in self.conditional.first(client_order_id, m):
            try:
                raw = await ex.cancel_order(
                    "", m["symbol"], lookup_params(client_order_id, trigger)
                )
            except ccxt.OrderNotFound:
                continue
            except (ccxt.NetworkError, ccxt.OperationFailed) as exc:
                raise TemporaryError(f"{self.name}: cancel {client_order_id}: {exc}") from exc
            except ccxt.ExchangeError as exc:
                raise OrderRejectedError(client_order_id, f"cancel: {exc}") from exc
            if trigger:  # the answer is a bare acknowledgement: the order is canceled
                raw = {**raw, "status": raw.get("status") or "canceled"}
            # A cancel answer may carry the cancel request's own id; the order's is the one
            # we asked.
            return self._order(raw, m, client_order_id=client_order_id)
        found = await self.fetch_order(symbol, client_order_id)
        if found is None:
            raise OrderRejectedError(client_order_id, "cancel: no such order")
        return found

    async def fetch_order(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        import ccxt

        ex = self._ex()
        m = self._market(symbol)
        cid = client_order_id
        for trigger in self.conditional.first(cid, m):
            try:
                raw = await self._read(ex.fetch_order, "", m["symbol"], lookup_params(cid, trigger))
            except ccxt.OrderNotFound:
                continue
            if trigger:
                self.conditional.placed(cid)
                return await self._conditional_order(raw, m, cid)
            order = self._order(raw, m, client_order_id=cid)
            if order.filled > 0 and not order.fills and order.exchange_order_id:
                fills = await self._order_fills(m, order.exchange_order_id, cid)
                order = replace(order, fills=fills)
            return order
        return None

    async def _conditional_order(
        self, raw: dict[str, Any], m: dict[str, Any], cid: str
    ) -> BrokerOrder:
        """A conditional order; once fired, its fills are those of the order it placed."""
        order = self._order(settled(raw), m, client_order_id=cid)
        actual = actual_order_id(raw)
        if actual is None:
            return order
        self._order_ids[actual] = cid
        fills = await self._order_fills(m, actual, cid) if order.filled > 0 else ()
        return replace(order, exchange_order_id=actual, fills=fills)

    async def _order_fills(self, m: dict[str, Any], order_id: str, cid: str) -> tuple[Fill, ...]:
        ex = self._ex()
        trades = None
        if (ex.has or {}).get("fetchOrderTrades"):
            # some venues offer it on spot only (Binance): fall back to the account's trades
            with contextlib.suppress(FatalError):
                trades = await self._read(ex.fetch_order_trades, order_id, m["symbol"])
        if trades is None:
            trades = [
                t
                for t in await self._read(ex.fetch_my_trades, m["symbol"])
                if str(t.get("order")) == order_id
            ]
        # the order's own trades: a venue that lists them without their order id (no
        # ``order`` field) still has them named after the order they were asked for
        return tuple(self._fill(t, m, cid, order_id=order_id) for t in trades)

    def open_orders_need_symbol(self) -> bool:
        """Whether the exchange lists open orders only per symbol: ccxt's ``features`` data
        (``fetchOpenOrders.symbolRequired``) for the market types loaded."""
        ex = self._ex()
        kinds = {(m.get("type"), m.get("subType")) for m in (ex.markets or {}).values()}
        return any(
            bool(ex.feature_value_by_type(t, sub, "fetchOpenOrders", "symbolRequired", False))
            for t, sub in kinds
            if t
        )

    async def fetch_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        """Open orders, the conditional (trigger) ones of contract markets included."""
        ex = self._ex()
        market = self._market(symbol) if symbol else None
        unified = market["symbol"] if market else None
        raws = list(await self._read(ex.fetch_open_orders, unified))
        if (market or {}).get("contract") or (market is None and self.contract_markets):
            for raw in await self._read(ex.fetch_open_orders, unified, None, None, TRIGGER):
                if raw.get("clientOrderId"):
                    self.conditional.placed(str(raw["clientOrderId"]))
                raws.append(raw)
        out = []
        for raw in raws:
            m = dict((ex.markets or {}).get(raw.get("symbol"), {}))
            if m:
                out.append(self._order(raw, m))
        return out

    async def fetch_fills(self, symbol: str, since: float | None = None) -> list[Fill]:
        import ccxt

        ex = self._ex()
        m = self._market(symbol)
        since_ms = int(since * 1000) if since is not None else None
        trades = await self._read(ex.fetch_my_trades, m["symbol"], since_ms)
        out: list[Fill] = []
        for t in trades:
            oid = str(t.get("order") or "")
            cid = self._order_ids.get(oid)
            if cid is None and oid:
                try:
                    raw = await self._read(ex.fetch_order, oid, m["symbol"])
                except ccxt.OrderNotFound:
                    raw = {}
                cid = raw.get("clientOrderId") or ""
                if cid:
                    self._order_ids[oid] = cid
            out.append(self._fill(t, m, cid or ""))
        return out

    async def forced_closes(self, symbol: str, since: float | None = None) -> list[ForcedClose]:
        """Every finished order among the account's trades of ``symbol`` (a contract, or a
        spot market: a sale by hand of the coins a position holds) since ``since``
        (seconds), each with its fills and its origin
        (:mod:`~cryptomon.trading.brokers.ccxt_forced`: the venue's mark of a liquidation,
        auto-deleveraging or settlement, else ``venue``); the caller tells ours from the
        others by :attr:`ForcedClose.venue_client_id` and the fills it counted. The client id
        of an order not placed here is looked up once by order id and kept; an order the venue
        cannot look up takes the one its trades carry (``info.clientOrderId``), if any."""
        import ccxt

        ex = self._ex()
        m = self._market(symbol)
        since_ms = int(since * 1000) if since else None
        trades: dict[str, list[dict[str, Any]]] = {}
        for t in await self._read(ex.fetch_my_trades, m["symbol"], since_ms):
            oid = str(t.get("order") or "")
            if oid:  # a trade without its order cannot be told from ours: left alone
                trades.setdefault(oid, []).append(t)
        out: list[ForcedClose] = []
        for oid, rows in trades.items():
            venue_cid = self._order_ids.get(oid)  # ours (or a fired trigger of ours), or seen
            if venue_cid is None:
                try:
                    raw = await self._read(ex.fetch_order, oid, m["symbol"])
                except (ccxt.OrderNotFound, FatalError) as exc:  # gone, or not by order id
                    log.info("broker.ccxt.order_not_found", order_id=oid, error=str(exc))
                    raw = {"clientOrderId": (rows[0].get("info") or {}).get("clientOrderId")}
                if raw.get("status") == "open":  # adopted once it is done
                    continue
                venue_cid = self._order_ids[oid] = str(raw.get("clientOrderId") or "")
            cid = journal_id(venue_cid, oid)
            found = forced_close(
                exchange=self.exchange_name,
                symbol=symbol,
                order_id=oid,
                venue_client_id=venue_cid,
                fills=tuple(self._fill(t, m, cid) for t in rows),
                now=self.clock.time(),
            )
            if found is not None:
                out.append(found)
        return out

    async def fetch_balances(self) -> dict[str, Decimal]:
        ex = self._ex()
        raw = await self._read(ex.fetch_balance)
        totals = raw.get("total") or {}
        out: dict[str, Decimal] = {}
        for asset, value in totals.items():
            amount = dec(value)
            if amount is not None and amount != 0:
                out[asset] = amount
        return out

    async def fetch_funding(self, symbol: str, since: float | None = None) -> list[FundingPayment]:
        """The venue's funding income of a contract ``symbol`` (ccxt funding history)."""
        m = self._market(symbol)
        rows = await self.contracts.funding_rows(self._ex(), m, since, self._read)
        return funding_payments(rows, symbol, self.exchange_name)

    async def fetch_positions(self) -> dict[str, Decimal]:
        """Signed contracts of every open contract position at the venue."""
        return {s: p.contracts for s, p in (await self.fetch_venue_positions()).items()}

    async def fetch_venue_positions(self) -> dict[str, VenuePosition]:
        """Every open contract position at the venue with the unrealized PnL it reports."""
        return await self.contracts.positions(self._ex(), self._read)

    # ------------------------------------------------------------------ mapping

    def _order(
        self,
        raw: dict[str, Any],
        m: dict[str, Any],
        *,
        intent: OrderIntent | None = None,
        client_order_id: str | None = None,
    ) -> BrokerOrder:
        order = to_order(
            raw,
            m,
            exchange=self.exchange_name,
            now=self.clock.time(),
            intent=intent,
            client_order_id=client_order_id,
        )
        if order.exchange_order_id and order.client_order_id:
            self._order_ids[order.exchange_order_id] = order.client_order_id
        return order

    def _fill(
        self, t: dict[str, Any], m: dict[str, Any], cid: str, *, order_id: str | None = None
    ) -> Fill:
        raw = {"id": order_id} if order_id else None
        return to_fill(t, m, cid, exchange=self.exchange_name, now=self.clock.time(), raw=raw)
