"""The state the engine's collaborators share: the order book, the portfolio, the risk state.

One :class:`EngineContext` per engine, passed by keyword to the executor, the protection
manager, the reconciler, the signal trader and the controls. It owns no behaviour beyond the
small helpers every one of them needs: the time, the mid price, the venue's market metadata
(cached), the risk state (every change is a ``RiskEvent``), audit entries and the background
tasks the collaborators start (ended together by :meth:`stop_tasks`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog

from cryptomon.clock import Clock
from cryptomon.decimals import float_decimal
from cryptomon.events import PositionUpdate, RiskEvent
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import Broker, MarketInfo
from cryptomon.trading.futures import ContractTerms, SpecLookup, is_contract
from cryptomon.trading.journal import Journal
from cryptomon.trading.orders import OrderBook, OrderRecord
from cryptomon.trading.portfolio import Portfolio, Position
from cryptomon.trading.risk import RiskState
from cryptomon.trading.runtime import TradingRuntime, publish_audit

if TYPE_CHECKING:
    from cryptomon.config import TradingConfig

log = structlog.get_logger()


to_decimal = float_decimal
"""A float setting or market price as the Decimal it prints as (remembered: see
:func:`~cryptomon.decimals.float_decimal`)."""


class EngineContext:
    """Shared state of one engine; see the module docstring."""

    def __init__(
        self,
        *,
        runtime: TradingRuntime,
        hub: Hub,
        clock: Clock,
        broker: Broker,
        market: MarketState,
        journal: Journal,
        portfolio: Portfolio,
        specs: SpecLookup | None = None,
    ) -> None:
        self.runtime = runtime
        self.specs = specs
        self.hub = hub
        self.clock = clock
        self.broker = broker
        self.market = market
        self.journal = journal
        self.portfolio = portfolio
        self.book = OrderBook()
        self.risk_state = RiskState.REDUCING
        self.state_reason = "starting: not reconciled yet"
        self.reconciled = False
        self.last_mismatches: set[str] = set()
        # markets where the venue holds a contract position this engine did not open (a trade
        # by hand that flipped its position): symbol -> what to do; no entry goes there
        self.unmanaged: dict[str, str] = {}
        self.incomplete: list[OrderRecord] = []  # terminal orders whose fills were not stored
        self.market_infos: dict[str, MarketInfo] = {}
        # the first stored equity of today, read at start: the day's start once the cash is
        # the venue's (the first reconciliation; see resume_day)
        self.day_start_equity: Decimal | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def config(self) -> TradingConfig:
        """The current trading settings (the runtime's)."""
        return self.runtime.config

    def now(self) -> float:
        return self.clock.time()

    def mid(self, exchange: str, symbol: str) -> Decimal | None:
        """The market's mid price as an exact Decimal (:meth:`MarketState.decimal_mid`: the
        mid of the prices as quoted, not the float average's), None without a positive
        one."""
        price = self.market.decimal_mid(exchange, symbol)
        return price if price is not None and price > 0 else None

    async def market_info(self, symbol: str) -> MarketInfo:
        """The venue's metadata of ``symbol`` (asked once, then cached)."""
        info = self.market_infos.get(symbol)
        if info is None:
            info = self.market_infos[symbol] = await self.broker.market(symbol)
        return info

    def spec(self, exchange: str, symbol: str) -> InstrumentSpec | None:
        """The market's instrument spec: the engine's lookup, else the market state's."""
        spec = self.specs(exchange, symbol) if self.specs is not None else None
        return spec if spec is not None else self.market.spec(exchange, symbol)

    def contract_terms(self, exchange: str, symbol: str) -> ContractTerms | None:
        """Leverage, margin mode and maintenance rate of a perpetual/future (None on spot or
        an unknown spec): the config's per-symbol values, the venue's bracket when known."""
        spec = self.specs(exchange, symbol) if self.specs is not None else None
        if spec is None or not is_contract(spec):
            return None
        cfg = self.config
        info = self.market_infos.get(symbol)
        mmr = info.maintenance_margin_rate if info is not None else None
        return ContractTerms(
            spec=spec,
            leverage=to_decimal(cfg.leverage_for(symbol)),
            margin_mode=cfg.margin_mode_for(symbol),
            mmr=mmr if mmr is not None else to_decimal(cfg.mmr_for(symbol)),
        )

    def resume_day(self) -> None:
        """Give the portfolio the day's start read from the journal (once, after the first
        reconciliation has set the cash in the venue's terms, as the stored snapshots are)."""
        start, self.day_start_equity = self.day_start_equity, None
        if start is not None:
            self.portfolio.resume_day(self.now(), start)
            log.info("trading.day_resumed", day_start_equity=str(start))

    def publish_position(self, pos: Position) -> None:
        now = self.now()
        self.hub.publish_built(PositionUpdate, pos.event, now, now)

    # ------------------------------------------------------------------ risk state, audit

    def risk_event(
        self,
        kind: Any,
        reason: str,
        *,
        exchange: str = "",
        symbol: str = "",
        client_order_id: str | None = None,
        check_name: str = "",
    ) -> RiskEvent:
        """Publish (and return) a ``RiskEvent`` carrying the current risk state."""
        now = self.now()
        event = RiskEvent(
            exchange=exchange,
            symbol=symbol,
            ts=now,
            ts_recv=now,
            kind=kind,
            state=str(self.risk_state),
            reason=reason,
            client_order_id=client_order_id,
            check=check_name,
        )
        self.hub.publish(event)
        return event

    def set_risk_state(
        self, state: RiskState, reason: str, *, kind: Any = "state_change", check_name: str = ""
    ) -> RiskEvent | None:
        """Change the risk state; every change is a RiskEvent (returned; None: no change)."""
        if state == self.risk_state:
            return None
        # back to active (e.g. reconciled at start) is routine; reducing or halted is a warning
        emit = log.info if state == RiskState.ACTIVE else log.warning
        emit("trading.risk_state", old=str(self.risk_state), new=str(state), reason=reason)
        self.risk_state = state
        self.state_reason = reason
        return self.risk_event(kind, reason, check_name=check_name)

    def audit(self, actor: str, action: str, payload: dict[str, Any]) -> None:
        publish_audit(self.hub, self.clock, actor, action, payload)

    # ------------------------------------------------------------------ background tasks

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; a failure is logged, never lost silently."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("trading.task_failed", task=task.get_name(), error=repr(task.exception()))

    async def stop_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
