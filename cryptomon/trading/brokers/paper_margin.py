"""The paper broker's contract account: perpetuals and dated futures settle in their settle
currency; an entry locks margin (value / leverage) instead of spending the coins, a close
realizes the contract PnL into the settle balance, and funding announced by ``Funding``
events is paid or received at each funding time (and kept as the income history the engine
reads, like a venue's).

Shorts need no coins. Reduce-only orders that would not reduce the position are refused, as a
venue does.

Forced closes (:meth:`MarginBook.liquidation_due`, :meth:`MarginBook.expired`,
:meth:`MarginBook.force_close`): a position whose mark reaches its liquidation estimate is
closed at that estimate and loses its whole initial margin
(:func:`~cryptomon.trading.futures.liquidation_close`); a dated future past its expiry is
settled at the last price seen before the expiry (:meth:`MarginBook.follow`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import structlog

from cryptomon.events import Funding, OrderIntent
from cryptomon.trading.brokers.base import FundingPayment, MarketInfo, OrderRejectedError
from cryptomon.trading.futures import (
    ContractTerms,
    FundingSchedule,
    average_entry,
    funding_payment,
    liquidation_close,
    liquidation_crossed,
    pnl,
    settle_currency,
    value,
)
from cryptomon.trading.margin import TermsLookup

log = structlog.get_logger()

ZERO = Decimal(0)
VENUE_MAX_LEVERAGE = Decimal(125)


@dataclass(slots=True)
class PaperContract:
    """One contract position of the paper account."""

    terms: ContractTerms
    qty: Decimal = ZERO  # signed contracts
    entry: Decimal = ZERO

    @property
    def margin(self) -> Decimal:
        if self.qty == 0:
            return ZERO
        return value(self.terms.spec, self.qty, self.entry) / self.terms.leverage


class MarginBook:
    """Contract positions, margin and funding of the paper account (balances are shared with
    the broker, one per currency)."""

    def __init__(self, *, terms: TermsLookup, balances: dict[str, Decimal]) -> None:
        self._terms = terms
        self.balances = balances
        self.positions: dict[tuple[str, str], PaperContract] = {}
        self.payments: list[FundingPayment] = []
        self._schedule = FundingSchedule()
        self._marks: dict[tuple[str, str], Decimal] = {}  # the last announced mark
        # the last price before expiry: the mark where the venue announces one, else trades
        self.last: dict[tuple[str, str], Decimal] = {}
        self._marked: set[tuple[str, str]] = set()  # markets whose venue announces a mark

    def terms(self, exchange: str, symbol: str) -> ContractTerms | None:
        return self._terms(exchange, symbol)

    def terms_any(self, symbol: str, exchanges: Iterable[str]) -> ContractTerms | None:
        """The contract terms of ``symbol`` on the first of ``exchanges`` that lists it."""
        for exchange in exchanges:
            terms = self._terms(exchange, symbol)
            if terms is not None:
                return terms
        return None

    def restore(self, positions: Iterable[tuple[str, str, Decimal, Decimal]]) -> None:
        """Positions after a restart: ``(exchange, symbol, signed qty, entry)``."""
        for exchange, symbol, qty, entry in positions:
            terms = self._terms(exchange, symbol)
            if terms is not None:
                pos = self.position(terms, exchange)
                pos.qty, pos.entry = qty, entry

    def market(self, symbol: str, terms: ContractTerms, fallback: MarketInfo) -> MarketInfo:
        spec = terms.spec
        return MarketInfo(
            symbol=symbol,
            base=spec.base,
            quote=spec.quote,
            tick_size=spec.tick_size or fallback.tick_size,
            lot_size=spec.lot_size or fallback.lot_size,
            min_amount=spec.min_qty or ZERO,
            min_notional=spec.min_notional or ZERO,
            max_leverage=VENUE_MAX_LEVERAGE,
            maintenance_margin_rate=terms.mmr,
        )

    def position(self, terms: ContractTerms, exchange: str) -> PaperContract:
        key = (exchange, terms.spec.symbol)
        pos = self.positions.get(key)
        if pos is None or (pos.terms != terms and pos.qty == 0):
            pos = self.positions[key] = PaperContract(terms)
        return pos

    def used_margin(self, currency: str) -> Decimal:
        held = self.positions.values()
        return sum((p.margin for p in held if settle_currency(p.terms.spec) == currency), ZERO)

    def check(
        self, intent: OrderIntent, terms: ContractTerms, price: Decimal, fee: Decimal
    ) -> None:
        """Refuse a reduce-only order that does not reduce, and an entry without the margin."""
        pos = self.position(terms, intent.exchange)
        signed = intent.amount if intent.side == "buy" else -intent.amount
        reduces = pos.qty != 0 and (pos.qty > 0) != (signed > 0)
        if intent.reduce_only:
            if not reduces or intent.amount > abs(pos.qty):
                raise OrderRejectedError(
                    intent.client_order_id,
                    f"reduce-only {intent.side} {intent.amount} would not reduce the "
                    f"position {pos.qty} of {intent.symbol}",
                )
            return
        after = pos.qty + signed
        flips = reduces and after != 0 and (after > 0) != (pos.qty > 0)
        # through the position, what is left on the other side is a new position
        grows = abs(after) if flips else ZERO if reduces else abs(after) - abs(pos.qty)
        if grows <= 0:
            return
        settle = settle_currency(terms.spec)
        need = value(terms.spec, grows, price) * (1 / terms.leverage + fee)
        free = self.balances.get(settle, ZERO) - self.used_margin(settle)
        if flips:  # the closed side's margin is freed
            free += pos.margin
        if free < need:
            raise OrderRejectedError(
                intent.client_order_id,
                f"insufficient margin: {need} {settle} needed at {terms.leverage}x, "
                f"{free} {settle} free",
            )

    def fill(
        self,
        intent: OrderIntent,
        terms: ContractTerms,
        qty: Decimal,
        price: Decimal,
        rate: Decimal,
        *,
        ts: float | None = None,
    ) -> tuple[Decimal, str]:
        """Move the position and the settle balance by one fill at ``ts``; returns (fee,
        currency). A funding time passed before ``ts`` is settled first, on the position
        held then (a position opened after it pays nothing, one closed after it pays)."""
        spec = terms.spec
        settle = settle_currency(spec)
        if ts is not None:
            key = (intent.exchange, spec.symbol)
            self._settle(key, self._schedule.pending(key, ts), self._marks.get(key, price))
        pos = self.position(terms, intent.exchange)
        signed = qty if intent.side == "buy" else -qty
        fee = value(spec, qty, price) * rate
        realized = ZERO
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            pos.entry = average_entry(spec, pos.qty, pos.entry, qty, price)
        else:
            closing = min(qty, abs(pos.qty))
            realized = pnl(spec, closing if pos.qty > 0 else -closing, pos.entry, price)
            if qty > abs(pos.qty):  # flipped: the rest opens at this price
                pos.entry = price
        pos.qty += signed
        if pos.qty == 0:
            pos.entry = ZERO
        self.balances[settle] = self.balances.get(settle, ZERO) + realized - fee
        return fee, settle

    def on_funding(self, event: Funding, mark: Decimal | None) -> FundingPayment | None:
        """Pay or receive funding when ``event`` follows a funding time."""
        key = (event.exchange, event.symbol)
        rate = None if event.rate is None else Decimal(str(event.rate))
        due = self._schedule.due(key, event.ts, rate, event.next_funding_time)
        price = Decimal(str(event.mark_price)) if event.mark_price else mark
        if price is not None and price > 0:
            self._marks[key] = price
        return self._settle(key, due, price)

    def _settle(
        self,
        key: tuple[str, str],
        due: tuple[float, Decimal | None] | None,
        price: Decimal | None,
    ) -> FundingPayment | None:
        """Pay or receive the funding ``due`` on the position held now, valued at ``price``.
        A funding time whose rate was never announced (the venue's messages left it out)
        pays nothing and says so: an unknown rate is not a 0 % one."""
        pos = self.positions.get(key)
        if due is None or pos is None or pos.qty == 0 or price is None or price <= 0:
            return None
        at, rate = due
        exchange, symbol = key
        if rate is None:
            log.info("paper.funding_rate_unknown", exchange=exchange, symbol=symbol, at=at)
            return None
        amount = funding_payment(pos.terms.spec, pos.qty, price, rate)
        settle = settle_currency(pos.terms.spec)
        self.balances[settle] = self.balances.get(settle, ZERO) + amount
        payment = FundingPayment(
            payment_id=f"funding-{exchange}-{symbol}-{at:.0f}",
            exchange=exchange,
            symbol=symbol,
            ts=at,
            amount=amount,
            currency=settle,
            rate=rate,
        )
        self.payments.append(payment)
        return payment

    # ------------------------------------------------------------------ forced closes

    def follow(self, key: tuple[str, str], price: Decimal, ts: float, *, mark: bool) -> bool:
        """Note ``price`` (a mark when ``mark``, else a public trade) of the market ``key``
        at ``ts``. Returns whether it is the price liquidation watches: the mark where the
        venue announces one, the trades of a market without (a candle or trade replay).
        Prices at or after a dated future's expiry are not kept (no trading then)."""
        if price <= 0:
            return False
        if mark:
            self._marked.add(key)
        elif key in self._marked:
            return False
        pos = self.positions.get(key)
        expiry = pos.terms.spec.expiry if pos is not None else None
        if expiry is None or ts < expiry:
            self.last[key] = price
        return True

    def has_mark(self, key: tuple[str, str]) -> bool:
        """Whether the venue announced a mark for the market ``key`` (then only the mark is
        watched for its liquidation)."""
        return key in self._marked

    def liquidation_due(
        self, key: tuple[str, str], mark: Decimal
    ) -> tuple[PaperContract, Decimal, Decimal] | None:
        """``(position, price, fee)`` when ``mark`` has reached the position's liquidation
        estimate (the one risk checks the stop against, in isolated and cross mode alike):
        closed at that estimate, whatever the mark jumped to, losing its initial margin."""
        pos = self.positions.get(key)
        if pos is None or pos.qty == 0:
            return None
        terms = pos.terms
        close = liquidation_close(terms.spec, pos.qty, pos.entry, terms.leverage, terms.mmr)
        if close is None or not liquidation_crossed(pos.qty > 0, mark, close[0]):
            return None
        return pos, close[0], close[2]

    def expired(self, now: float) -> list[tuple[tuple[str, str], PaperContract, Decimal]]:
        """``(key, position, settlement price)`` of every open dated-future position whose
        expiry ``now`` has reached: settled at the last price seen before the expiry (the
        entry when none was)."""
        out = []
        for key, pos in self.positions.items():
            expiry = pos.terms.spec.expiry
            if pos.qty != 0 and expiry is not None and now >= expiry:
                out.append((key, pos, self.last.get(key, pos.entry)))
        return out

    def force_close(
        self, key: tuple[str, str], price: Decimal, fee: Decimal, ts: float
    ) -> tuple[Decimal, str]:
        """Close the whole position ``key`` at ``price`` paying ``fee`` (a liquidation or a
        settlement): its PnL and the fee move the settle balance, a funding time passed
        before ``ts`` is settled first. Returns (closed signed qty, settle currency)."""
        pos = self.positions[key]
        settle = settle_currency(pos.terms.spec)
        self._settle(key, self._schedule.pending(key, ts), self._marks.get(key, price))
        qty = pos.qty
        realized = pnl(pos.terms.spec, qty, pos.entry, price)
        self.balances[settle] = self.balances.get(settle, ZERO) + realized - fee
        pos.qty, pos.entry = ZERO, ZERO
        return qty, settle

    def funding(self, symbol: str, since: float | None) -> list[FundingPayment]:
        return [p for p in self.payments if p.symbol == symbol and (since is None or p.ts >= since)]
