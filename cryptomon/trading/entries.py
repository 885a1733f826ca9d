"""Signals become orders: the entry (or closing) decision for one ``Signal``.

Only with ``auto_trading_enabled`` and ``strength >= min_signal_strength`` (read from the
shared runtime settings when the signal arrives): a buy opens a long when flat, closes a
short; a sell closes a long, opens a short only with ``allow_short``. Entries are sized from
``risk_percentage`` and the stop distance, capped by ``max_position_size`` (and the per-symbol
exposure), and carry the stop-loss and take-profit prices of the configured percentages.
"""

from __future__ import annotations

from decimal import Decimal

import structlog

from cryptomon.events import OrderIntent, Signal
from cryptomon.trading.context import EngineContext, to_decimal
from cryptomon.trading.executor import OrderExecutor
from cryptomon.trading.orders import OrderRecord, client_order_id
from cryptomon.trading.protection import bracket, position_size

log = structlog.get_logger()


class SignalTrader:
    """Turns signals into entry or closing orders through the executor."""

    def __init__(self, *, context: EngineContext, executor: OrderExecutor) -> None:
        self.context = context
        self.executor = executor

    def _wanted(self, sig: Signal) -> bool:
        cfg = self.context.config
        if not cfg.auto_trading_enabled or sig.strength < cfg.min_signal_strength:
            log.debug(
                "trading.signal_ignored",
                signal_id=sig.id,
                strength=sig.strength,
                auto=cfg.auto_trading_enabled,
            )
            return False
        return (cfg.exchange is None or cfg.exchange == sig.exchange) and (
            not cfg.symbols or sig.symbol in cfg.symbols
        )  # else not a traded market

    async def handle(self, sig: Signal) -> OrderRecord | None:
        """Turn one signal into an order when auto trading, strength and position allow."""
        if not self._wanted(sig):
            return None
        ctx = self.context
        key = (sig.exchange, sig.symbol)
        pos = ctx.portfolio.amount(*key)
        if ctx.book.open(*key):  # an entry or an exit of this market is still working
            return None
        if (pos > 0 and sig.side == "buy") or (pos < 0 and sig.side == "sell"):
            return None
        if pos != 0:  # opposite signal: close the position
            return await self.executor.submit(
                self.executor.exit_intent(
                    key, abs(pos), "signal", ref=sig.id, leg="close", signal=sig
                )
            )
        if sig.side == "sell" and not ctx.config.allow_short:
            return None
        intent = await self._entry(sig)
        return await self.executor.submit(intent) if intent is not None else None

    async def _entry(self, sig: Signal) -> OrderIntent | None:
        """The sized, bracketed market entry for ``sig``; None without a mid price."""
        ctx = self.context
        cfg = ctx.config
        mid = ctx.mid(sig.exchange, sig.symbol)
        if mid is None:
            return None
        info = await ctx.market_info(sig.symbol)
        terms = ctx.contract_terms(sig.exchange, sig.symbol)
        amount = position_size(
            equity=ctx.portfolio.equity,
            price=mid,
            stop_pct=to_decimal(cfg.stop_loss_percentage),
            risk_pct=to_decimal(cfg.risk_percentage),
            max_notional=min(
                to_decimal(cfg.max_position_size), to_decimal(cfg.max_symbol_exposure)
            ),
            lot=info.lot_size if terms is None else Decimal(0),  # contracts: rounded below
        )
        if terms is not None:  # a contract trades in contracts: base units -> venue quantity
            amount = terms.spec.qty_for_amount(amount, mid)
        stop, take = bracket(
            side=sig.side,
            price=mid,
            stop_pct=to_decimal(cfg.stop_loss_percentage),
            take_pct=to_decimal(cfg.take_profit_percentage),
            tick=info.tick_size,
        )
        now = ctx.now()
        return OrderIntent(
            exchange=sig.exchange,
            symbol=sig.symbol,
            ts=now,
            ts_recv=now,
            client_order_id=client_order_id(sig.id, "entry", "signal"),
            side=sig.side,
            type="market",
            amount=amount,
            stop_loss=stop,
            take_profit=take,
            origin="signal",
            signal_id=sig.id,
            anomaly_id=sig.anomaly_id,
        )
