"""Signals become orders: the entry (or closing) decision for one ``Signal``.

Only with ``auto_trading_enabled``, ``strength >= min_signal_strength`` and a grade other than
``ignore`` (read from the shared runtime settings when the signal arrives; an ungraded signal
is graded by ``trading.grades``): a buy opens a long when flat, closes a short; a sell closes
a long, opens a short only with ``allow_short``. Entries carry the stop-loss and take-profit
prices of the configured percentages, or the signal's own ``stop_loss`` / ``take_profit`` (a
webhook sender's) when it gives them; they are sized so that ``risk_percentage`` of equity is
lost at that stop, capped by ``max_position_size`` (and the per-symbol exposure). The size
becomes the venue quantity through the instrument spec (``qty_for_notional``: contracts, lot
rounding) and the bracket prices use its tick; the risk checks then hold the order against the
spec's minimum quantity and order value. A tracked market without a spec is never sized on
(logged once).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal

import structlog

from cryptomon.config import TradingConfig
from cryptomon.events import OrderIntent, Signal
from cryptomon.kinds import SignalGrade
from cryptomon.trading.context import EngineContext, to_decimal
from cryptomon.trading.executor import OrderExecutor
from cryptomon.trading.orders import OrderRecord, client_order_id
from cryptomon.trading.protection import bracket, round_price
from cryptomon.trading.signals.grades import grade_for
from cryptomon.trading.sizing import notional_budget, venue_qty

log = structlog.get_logger()

NOT_ACTED: dict[str, str] = {
    "auto_off": "auto trading off (auto_trading_enabled)",
    "weak": "below min_signal_strength or graded ignore",
    "not_traded": "not a traded market (trading.exchange / trading.symbols)",
    "too_old": "older than max_signal_age_s",
    "order_working": "an order of the market still working",
    "side_held": "on the side already held",
    "no_short": "a sell while flat without allow_short",
    "no_price": "no mid price of the market yet",
    "unknown_spec": "no instrument spec of the market (refused once per market)",
    "below_lot": "the sized entry is less than one lot (refused: lot_size)",
    "failed": "handling the signal raised an error (logged)",
}
"""Why the engine makes no order of a signal (:attr:`SignalTrader.not_acted`'s keys), short
of an order the risk checks refuse."""


class SignalTrader:
    """Turns signals into entry or closing orders through the executor."""

    def __init__(self, *, context: EngineContext, executor: OrderExecutor) -> None:
        self.context = context
        self.executor = executor
        self._unknown_logged: set[tuple[str, str]] = set()
        self.too_old = 0  # signals not traded for their age (max_signal_age_s)
        # the signals that made no order, by reason (NOT_ACTED's keys)
        self.not_acted: Counter[str] = Counter()

    def _wanted(self, sig: Signal) -> bool:
        cfg = self.context.config
        grade = sig.grade or grade_for(sig.strength, cfg.grades)
        if not cfg.auto_trading_enabled or _weak(sig.strength, grade, cfg):
            self.not_acted["weak" if cfg.auto_trading_enabled else "auto_off"] += 1
            log.debug(
                "trading.signal_ignored",
                signal_id=sig.id,
                strength=sig.strength,
                grade=str(grade),
                auto=cfg.auto_trading_enabled,
            )
            return False
        if not (cfg.exchange is None or cfg.exchange == sig.exchange) or (
            cfg.symbols and sig.symbol not in cfg.symbols
        ):
            self.not_acted["not_traded"] += 1
            return False
        age = self.context.now() - sig.ts
        if cfg.max_signal_age_s and age > cfg.max_signal_age_s:
            # made from old events (a brain draining its backlog after a restart, a replay
            # into a live engine): the market it judged is gone; traded at today's price
            # it would be a trade nobody decided
            self.too_old += 1
            self.not_acted["too_old"] += 1
            if self.too_old == 1 or self.too_old % 1000 == 0:
                log.warning(
                    "trading.signal_too_old",
                    signal_id=sig.id,
                    age_s=round(age, 1),
                    limit_s=cfg.max_signal_age_s,
                    count=self.too_old,
                )
            return False
        return True

    async def handle(self, sig: Signal) -> OrderRecord | None:
        """Turn one signal into an order when auto trading, strength and position allow."""
        if not self._wanted(sig):
            return None
        ctx = self.context
        key = (sig.exchange, sig.symbol)
        pos = ctx.portfolio.amount(*key)
        working = ctx.book.open(*key)
        if pos != 0:  # resting venue-side stop / take-profit legs are no close on its way
            working = [r for r in working if not _resting_leg(r)]
        if working:  # an entry or an exit of this market is still working
            self.not_acted["order_working"] += 1
            return None
        reason = _held_reason(pos, sig.side, ctx.config.allow_short)
        if reason is not None:
            self.not_acted[reason] += 1
            return None
        if pos != 0:  # opposite signal: close the position
            return await self.executor.submit(
                self.executor.exit_intent(
                    key, abs(pos), "signal", ref=sig.id, leg="close", signal=sig
                )
            )
        intent = await self._entry(sig)
        return await self.executor.submit(intent) if intent is not None else None

    async def _entry(self, sig: Signal) -> OrderIntent | None:
        """The sized, bracketed market entry for ``sig``; None without a mid price, without
        an instrument spec (tracked but unknown: refused, logged once) or when nothing is
        left after rounding down to the lot."""
        ctx = self.context
        cfg = ctx.config
        mid = ctx.mid(sig.exchange, sig.symbol)
        if mid is None:
            self.not_acted["no_price"] += 1
            return None
        spec = ctx.spec(sig.exchange, sig.symbol)
        if spec is None and not ctx.market.spec_known(sig.exchange, sig.symbol):
            self.not_acted["unknown_spec"] += 1
            self._refuse_unknown(sig)
            return None
        info = await ctx.market_info(sig.symbol)
        tick = spec.tick_size if spec is not None and spec.tick_size else info.tick_size
        stop_pct = to_decimal(cfg.stop_loss_percentage)
        stop, take = bracket(
            side=sig.side,
            price=mid,
            stop_pct=stop_pct,
            take_pct=to_decimal(cfg.take_profit_percentage),
            tick=tick,
        )
        own_stop, take = _sender_bracket(sig, mid, stop, take, tick)
        if own_stop != stop:  # the sender's stop: risk_percentage is lost at it
            stop, stop_pct = own_stop, abs(mid - own_stop) / mid * 100
        limits = ctx.runtime.limits  # the config's sizes as Decimal, derived with it
        notional = notional_budget(
            equity=ctx.portfolio.equity,
            stop_pct=stop_pct,
            risk_pct=to_decimal(cfg.risk_percentage),
            max_notional=min(limits.max_position_size, limits.max_symbol_exposure),
        )
        qty = venue_qty(spec, notional, mid, info.lot_size, ctx.portfolio.quote)
        if qty <= 0:
            reason = (
                f"{sig.symbol}: the sized order ({notional:.8f} {info.quote}) is less "
                f"than one lot ({spec.lot_size if spec else info.lot_size})"
            )
            self.not_acted["below_lot"] += 1
            log.info("trading.entry_too_small", signal_id=sig.id, reason=reason)
            ctx.risk_event(
                "rejected", reason, exchange=sig.exchange, symbol=sig.symbol, check_name="lot_size"
            )
            return None
        now = ctx.now()
        return OrderIntent(
            exchange=sig.exchange,
            symbol=sig.symbol,
            ts=now,
            ts_recv=now,
            client_order_id=client_order_id(sig.id, "entry", "signal"),
            side=sig.side,
            type="market",
            amount=qty,
            stop_loss=stop,
            take_profit=take,
            origin="signal",
            signal_id=sig.id,
            anomaly_id=sig.anomaly_id,
        )

    def count_dropped(
        self, exchange: str, symbol: str, side: str, strength: float, grade: SignalGrade | None
    ) -> None:
        """A signal a fast backtest drops without the engine (it checked that :meth:`handle`
        returns before an order: auto trading on, a traded market, no order working, not too
        old), counted by the reason :meth:`handle` would give."""
        self.count_dropped_all(exchange, symbol, ((side, strength, grade),))

    def count_dropped_all(
        self, exchange: str, symbol: str, drops: Iterable[tuple[str, float, SignalGrade | None]]
    ) -> None:
        """:meth:`count_dropped` of each of ``drops`` (side, strength, grade), in order: signals
        of one market that nothing reaches the engine between (the settings and the
        position read once)."""
        cfg = self.context.config
        grades, allow_short = cfg.grades, cfg.allow_short
        pos = self.context.portfolio.amount(exchange, symbol)
        not_acted = self.not_acted
        for side, strength, grade in drops:
            if _weak(strength, grade or grade_for(strength, grades), cfg):
                reason: str | None = "weak"
            else:
                reason = _held_reason(pos, side, allow_short)
            if reason is None:  # the fast path's check and handle disagree: a bug
                raise AssertionError(f"a dropped {side} signal of {exchange} {symbol} is acted on")
            not_acted[reason] += 1

    def not_acted_unrefused(self) -> dict[str, int]:
        """:attr:`not_acted` less the drops also published as refused ``RiskEvent`` s
        (``below_lot``; ``unknown_spec``: the first signal of each market): the signals that
        came to neither an order nor a refusal."""
        out = dict(self.not_acted)
        out.pop("below_lot", None)
        if "unknown_spec" in out:
            out["unknown_spec"] -= len(self._unknown_logged)
            if out["unknown_spec"] <= 0:
                del out["unknown_spec"]
        return out

    def _refuse_unknown(self, sig: Signal) -> None:
        """No spec for a tracked market: its units are unknown, nothing is sized on it (logged
        and published once per market)."""
        key = (sig.exchange, sig.symbol)
        if key in self._unknown_logged:
            return
        self._unknown_logged.add(key)
        reason = (
            f"no instrument spec for {sig.exchange} {sig.symbol}: its contract size and units "
            "are unknown, so no order is sized on it"
        )
        log.warning("trading.unknown_instrument", exchange=sig.exchange, symbol=sig.symbol)
        self.context.risk_event(
            "rejected",
            reason,
            exchange=sig.exchange,
            symbol=sig.symbol,
            check_name="unknown_instrument",
        )


def _weak(strength: float, grade: SignalGrade, cfg: TradingConfig) -> bool:
    """Below ``min_signal_strength`` or graded ``ignore``: no order."""
    return strength < cfg.min_signal_strength or grade == SignalGrade.IGNORE


def _held_reason(pos: Decimal, side: str, allow_short: bool) -> str | None:
    """Why a signal makes no order against the position ``pos``: on the side held, or a sell
    while flat without ``allow_short``; None when it opens or closes one."""
    if (pos > 0 and side == "buy") or (pos < 0 and side == "sell"):
        return "side_held"
    if pos == 0 and side == "sell" and not allow_short:
        return "no_short"
    return None


def _resting_leg(record: OrderRecord) -> bool:
    """A venue-side protective leg (a reduce-only stop or take-profit resting at the venue):
    it closes the position only if its trigger is hit, so it does not stop a signal's close
    (the close's fill disarms the protection, which cancels the legs)."""
    intent = record.intent
    return intent.reduce_only and intent.type in ("stop_market", "take_profit")


def _sender_bracket(
    sig: Signal, mid: Decimal, stop: Decimal, take: Decimal, tick: Decimal
) -> tuple[Decimal, Decimal]:
    """The signal's own stop-loss / take-profit where it gives them on the right side of the
    mid (a buy's stop below it, its take-profit above), rounded to the tick."""
    up = sig.side == "buy"
    if sig.stop_loss is not None:
        own = round_price(to_decimal(sig.stop_loss), tick, up=not up)
        if (own < mid) == up and own != mid:
            stop = own
    if sig.take_profit is not None:
        own = round_price(to_decimal(sig.take_profit), tick, up=up)
        if (own > mid) == up and own != mid:
            take = own
    return stop, take
