"""Contract markets on the live broker: cryptofeed symbols of ccxt swaps and futures, the
leverage and margin mode set before a symbol's first order, funding history, positions.

Before the first order of a contract symbol the broker calls ccxt's unified
``set_margin_mode`` and ``set_leverage``, then reads them back (``fetch_leverage``) and
compares; a venue that refuses either, or reads back something else, raises
:class:`~cryptomon.trading.brokers.base.OrderRejectedError` and no order is sent. Setting
them again is harmless (a venue answers "no need to change", which ccxt raises as
``MarginModeAlreadySet`` for the margin mode: taken as done, the read-back checks it), so
every restart sets them again; the order itself is never resent (its intent is in the
journal and settled by lookup).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import structlog

from cryptomon.trading.brokers.base import FundingPayment, OrderRejectedError, VenuePosition
from cryptomon.trading.brokers.ccxt_map import dec, symbol_of

log = structlog.get_logger()

_EXPIRY = re.compile(r"^\d{2}[FGHJKMNQUVXZ]\d{2}$")

Reader = Callable[..., Awaitable[Any]]
"""The broker's retrying read (``CcxtBroker._read``)."""
ContractSettings = Callable[[str], tuple[Decimal, str]]
"""cryptofeed symbol -> (leverage, margin mode ``isolated`` | ``cross``) from the config."""


def settings_from(trading: Any) -> ContractSettings:
    """Per-symbol leverage and margin mode of a ``TradingConfig``."""

    def settings(symbol: str) -> tuple[Decimal, str]:
        return Decimal(str(trading.leverage_for(symbol))), trading.margin_mode_for(symbol)

    return settings


def is_contract_symbol(symbol: str) -> bool:
    """``BTC-USDT-PERP`` and ``BTC-USD-22K27`` name contracts; ``BTC-USDT`` is spot."""
    last = symbol.rpartition("-")[2]
    return last == "PERP" or bool(_EXPIRY.match(last))


def find_market(markets: dict[str, Any], symbol: str) -> dict[str, Any] | None:
    """The ccxt market of a cryptofeed symbol, spot or contract."""
    market = markets.get(symbol.replace("-", "/", 1))
    if market is not None and not is_contract_symbol(symbol):
        return dict(market)
    for candidate in markets.values():
        if candidate.get("active", True) is not False and symbol_of(candidate) == symbol:
            return dict(candidate)
    return None


class ContractSetup:
    """Leverage and margin mode per contract symbol, set and verified once per process."""

    def __init__(self, *, settings: ContractSettings | None) -> None:
        self.settings = settings
        self._ready: set[str] = set()

    async def prepare(self, ex: Any, market: dict[str, Any], symbol: str, cid: str) -> None:
        """Set and verify the symbol's leverage and margin mode before its first order."""
        if not market.get("contract") or self.settings is None or symbol in self._ready:
            return
        leverage, mode = self.settings(symbol)
        leverage = Decimal(f"{leverage.normalize():f}")  # 5.0 -> 5 in messages
        unified = market["symbol"]
        has = ex.has or {}
        import ccxt

        try:
            if has.get("setMarginMode"):
                # already in that mode (set by an earlier process): not a refusal
                with contextlib.suppress(ccxt.MarginModeAlreadySet):
                    await ex.set_margin_mode(mode, unified)
            await ex.set_leverage(int(leverage), unified)
            read = await ex.fetch_leverage(unified) if has.get("fetchLeverage") else None
        except Exception as exc:  # any venue refusal: no order without the settings
            raise OrderRejectedError(
                cid,
                f"{symbol}: the venue refused leverage {leverage}x / {mode} margin "
                f"({type(exc).__name__}: {exc}); no order sent",
            ) from exc
        problem = _mismatch(read, leverage, mode)
        if problem:
            raise OrderRejectedError(cid, f"{symbol}: {problem}; no order sent")
        log.info("broker.ccxt.contract_ready", symbol=symbol, leverage=str(leverage), mode=mode)
        self._ready.add(symbol)

    @staticmethod
    async def first_tier(
        ex: Any, market: dict[str, Any], read: Reader
    ) -> tuple[Decimal, Decimal | None] | None:
        """(max leverage, maintenance margin rate) of the venue's first bracket of a contract
        market (ccxt leverage tiers); None on spot or without tiers."""
        if not market.get("contract") or not (ex.has or {}).get("fetchMarketLeverageTiers"):
            return None
        tiers = await read(ex.fetch_market_leverage_tiers, market["symbol"])
        if not tiers:
            return None
        first = tiers[0]
        return dec(first.get("maxLeverage")) or Decimal(1), dec(first.get("maintenanceMarginRate"))

    @staticmethod
    async def funding_rows(
        ex: Any, market: dict[str, Any], since: float | None, read: Reader
    ) -> list[dict[str, Any]]:
        """ccxt funding history of a contract market (none on spot)."""
        if not market.get("contract") or not (ex.has or {}).get("fetchFundingHistory"):
            return []
        since_ms = int(since * 1000) if since is not None else None
        rows = await read(ex.fetch_funding_history, market["symbol"], since_ms)
        return list(rows)

    @staticmethod
    async def positions(ex: Any, read: Reader) -> dict[str, VenuePosition]:
        """The open positions per symbol; {} when no contract market is loaded."""
        markets = ex.markets or {}
        if not (ex.has or {}).get("fetchPositions") or not any(
            m.get("contract") for m in markets.values()
        ):
            return {}
        return venue_positions(await read(ex.fetch_positions), markets)


def _mismatch(read: dict[str, Any] | None, leverage: Decimal, mode: str) -> str | None:
    """What the venue read back differently from what was set, or None."""
    if read is None:
        return None
    got = {dec(read.get("longLeverage")), dec(read.get("shortLeverage"))} - {None}
    if got and got != {leverage}:
        shown = ", ".join(sorted(f"{g.normalize():f}" for g in got if g is not None))
        return f"leverage read back as {shown}x, expected {leverage}x"
    got_mode = read.get("marginMode")
    if got_mode and got_mode != mode:
        return f"margin mode read back as {got_mode}, expected {mode}"
    return None


def funding_payments(
    rows: list[dict[str, Any]], symbol: str, exchange: str
) -> list[FundingPayment]:
    """ccxt funding history rows (``fetch_funding_history``) as payments."""
    out = []
    for row in rows:
        amount = dec(row.get("amount"))
        if amount is None:
            continue
        ts = float(row.get("timestamp") or 0) / 1000
        ident = str(row.get("id") or f"{symbol}-{row.get('timestamp')}")
        out.append(
            FundingPayment(
                payment_id=f"{exchange}-{ident}",
                exchange=exchange,
                symbol=symbol,
                ts=ts,
                amount=amount,
                currency=str(row.get("code") or ""),
            )
        )
    return out


def venue_positions(
    rows: list[dict[str, Any]], markets: dict[str, Any]
) -> dict[str, VenuePosition]:
    """ccxt positions (``fetch_positions``) per cryptofeed symbol: signed contracts and the
    unrealized PnL the venue reports (``unrealizedPnl``, settle currency; the rows of a
    hedge-mode account's two sides are added, None when a row has none)."""
    out: dict[str, VenuePosition] = {}
    for row in rows:
        contracts = dec(row.get("contracts")) or Decimal(0)
        market = markets.get(str(row.get("symbol")))
        if contracts == 0 or market is None:
            continue
        sign = Decimal(-1) if row.get("side") == "short" else Decimal(1)
        symbol = symbol_of(market)
        upnl = dec(row.get("unrealizedPnl"))
        settle = str(market.get("settle") or market.get("quote") or "")
        seen = out.get(symbol)
        if seen is not None:
            contracts = seen.contracts + sign * abs(contracts)
            upnl = None if upnl is None or seen.unrealized is None else seen.unrealized + upnl
        else:
            contracts = sign * abs(contracts)
        out[symbol] = VenuePosition(contracts=contracts, unrealized=upnl, settle=settle)
    return out
