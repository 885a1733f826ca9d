"""Reads of the live broker: what may pass is retried, what will not is said plainly; and
what a failed placement means (:func:`placement_error`).

Trouble that may pass (network, 5xx, 429, unknown venue errors, a venue's busy code of
:data:`~cryptomon.trading.brokers.ccxt_codes.BUSY`) is retried a few times with a short
backoff, then raised as ``TemporaryError``; a timestamp the venue refused re-measures
the venue clock first; authentication and other venue refusals are ``FatalError`` naming the
cause; ``OrderNotFound`` passes through (the caller decides what absence means). A 429/418 is
waited out at the venue gate (:mod:`~cryptomon.trading.brokers.ccxt_gate`), not here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from cryptomon.clock import Clock
from cryptomon.errors import FatalError, TemporaryError, backoff_delays
from cryptomon.trading.brokers.base import OrderOutcomeUnknown, OrderRejectedError
from cryptomon.trading.brokers.ccxt_codes import busy, refused
from cryptomon.trading.brokers.ccxt_time import VenueClock

T = TypeVar("T")


async def read(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    name: str,
    attempts: int,
    clock: Clock,
    venue_clock: VenueClock,
    exchange: Any,
    **kwargs: Any,
) -> T:
    """``await fn(*args, **kwargs)`` with the retries described in the module docstring."""
    import ccxt

    delays = backoff_delays(initial=0.2, cap=2.0)
    for attempt in range(1, attempts + 1):
        try:
            result = await fn(*args, **kwargs)
            venue_clock.answered(fn)
            return result
        except ccxt.OrderNotFound:
            venue_clock.answered(fn)
            raise
        except ccxt.InvalidNonce as exc:  # the venue refused our timestamp: measure again
            await venue_clock.refused_sync(exchange, str(exc))
            if attempt >= attempts:
                raise TemporaryError(f"{name}: clock skew: {exc}") from exc
        except (ccxt.OperationFailed, ccxt.OperationRejected) as exc:
            # NetworkError, BadResponse, -1000/-1001..., and a busy code ccxt calls a refusal
            refused_here = isinstance(exc, ccxt.OperationRejected)
            if refused_here and not busy(getattr(exchange, "id", ""), exc):
                raise FatalError(f"{name}: venue refused: {type(exc).__name__}: {exc}") from exc
            if attempt >= attempts:
                raise TemporaryError(f"{name}: {type(exc).__name__}: {exc}") from exc
            if not isinstance(exc, ccxt.DDoSProtection):  # the gate holds the next try
                await clock.sleep(next(delays))
        except ccxt.AuthenticationError as exc:
            raise FatalError(f"{name}: authentication failed: {exc}") from exc
        except ccxt.BaseError as exc:
            raise FatalError(f"{name}: venue refused: {type(exc).__name__}: {exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _refusals() -> tuple[type[Exception], ...]:
    import ccxt

    return (ccxt.InsufficientFunds, ccxt.InvalidOrder, ccxt.BadRequest, ccxt.NotSupported)


REFUSALS = _refusals()
"""ccxt errors that mean the venue refused the order (it was not placed)."""


def placement_error(
    exc: Exception,
    cid: str,
    retry_after_s: float | None,
    *,
    exchange_id: str,
    market: Mapping[str, Any],
) -> Exception:
    """The broker error of a failed ``create_order`` on ``market``: a venue refusal (funds,
    invalid order, bad request, not supported, authentication, or a venue code listed in
    :data:`~cryptomon.trading.brokers.ccxt_codes.REFUSED`) is :class:`OrderRejectedError`
    with the venue's message; a rate limit, network trouble, a busy venue or any error that
    cannot be classified (an ``OperationRejected`` whose code is not listed among them) is
    :class:`OrderOutcomeUnknown` (the order may exist: it is settled by lookup, never sent
    again)."""
    import ccxt

    name = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, REFUSALS):
        return OrderRejectedError(cid, name)
    if isinstance(exc, ccxt.AuthenticationError):
        return OrderRejectedError(cid, f"authentication failed: {exc}")
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return OrderOutcomeUnknown(cid, f"rate limited: {exc}", retry_after_s=retry_after_s)
    # a venue answer whose code says the order was refused: ccxt raises some as
    # OperationRejected (an ExchangeError), some as OperationFailed (-2023 in liquidation)
    answer = isinstance(exc, (ccxt.ExchangeError, ccxt.OperationFailed))
    if answer and refused(exchange_id, market, exc) is not None:
        return OrderRejectedError(cid, name)
    return OrderOutcomeUnknown(cid, name)
