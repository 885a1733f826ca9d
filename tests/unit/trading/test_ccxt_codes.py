"""The venue code tables of the live broker against the installed ccxt: each listed code is
one ccxt raises as a venue answer (an ``ExchangeError``, not a transport failure) from the API
it is listed for, and a placement refused with one is rejected while ccxt's same
``OperationRejected`` class with a busy or unlisted code stays an unknown outcome."""

from __future__ import annotations

import json
from typing import Any

import ccxt
import pytest

from cryptomon.trading.brokers.base import OrderOutcomeUnknown, OrderRejectedError
from cryptomon.trading.brokers.ccxt_codes import BUSY, REFUSED, busy, market_kind, venue_code
from cryptomon.trading.brokers.ccxt_read import placement_error

URLS = {  # an order endpoint of each market kind on Binance's own hosts
    "spot": ("binance", "https://api.binance.com/api/v3/order"),
    "linear": ("binanceusdm", "https://fapi.binance.com/fapi/v1/order"),
    "inverse": ("binancecoinm", "https://dapi.binance.com/dapi/v1/order"),
}
MARKETS: dict[str, dict[str, Any]] = {
    "spot": {"spot": True},
    "linear": {"contract": True, "linear": True},
    "inverse": {"contract": True, "inverse": True},
}


def venue_answer(kind: str, code: str, msg: str = "m", status: int = 400) -> ccxt.BaseError:
    """The exception ccxt raises for Binance's error answer ``code`` to an order request of
    the market ``kind`` (its own ``handle_errors``, as on the exchange's host)."""
    exchange_id, url = URLS[kind]
    ex = getattr(ccxt, exchange_id)()
    body = json.dumps({"code": int(code), "msg": msg}, separators=(",", ":"))
    with pytest.raises(ccxt.BaseError) as caught:
        ex.handle_errors(status, "x", url, "POST", {}, body, json.loads(body), {}, "")
    return caught.value


@pytest.mark.parametrize(
    ("kind", "code"),
    [(kind, code) for kind, codes in REFUSED["binance"].items() for code in codes],
)
def test_each_listed_refusal_is_a_venue_answer_of_its_api(kind: str, code: str) -> None:
    exc = venue_answer(kind, code)
    assert isinstance(exc, (ccxt.ExchangeError, ccxt.OperationFailed))
    assert not isinstance(exc, ccxt.NetworkError)
    assert venue_code(exc) == code
    error = placement_error(exc, "c1", None, exchange_id=URLS[kind][0], market=MARKETS[kind])
    assert isinstance(error, OrderRejectedError)
    assert error.reason == f"{type(exc).__name__}: {exc}"


def test_percent_price_is_rejected_with_the_venue_message() -> None:
    exc = venue_answer("linear", "-4131", "The counterparty's best price does not meet it.")
    assert type(exc) is ccxt.OperationRejected
    error = placement_error(exc, "c1", None, exchange_id="binanceusdm", market=MARKETS["linear"])
    assert isinstance(error, OrderRejectedError)
    assert "The counterparty's best price does not meet it." in error.reason
    assert error.client_order_id == "c1"


@pytest.mark.parametrize("kind", ["linear", "inverse"])
def test_a_busy_futures_answer_is_operation_rejected_and_stays_unknown(kind: str) -> None:
    """ccxt raises -1004 as OperationRejected on both futures APIs: the reason the class
    cannot decide; the code keeps it an unknown outcome."""
    exc = venue_answer(kind, "-1004", "Server is busy, please wait and try again", 503)
    assert type(exc) is ccxt.OperationRejected
    assert busy(URLS[kind][0], exc)
    error = placement_error(exc, "c1", None, exchange_id=URLS[kind][0], market=MARKETS[kind])
    assert isinstance(error, OrderOutcomeUnknown)


def test_spot_busy_is_already_a_failure_of_unknown_outcome() -> None:
    exc = venue_answer("spot", "-1004", "Server is busy, please wait and try again", 503)
    assert isinstance(exc, ccxt.OperationFailed)
    error = placement_error(exc, "c1", None, exchange_id="binance", market=MARKETS["spot"])
    assert isinstance(error, OrderOutcomeUnknown)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("linear", "-4117"),  # STOP_ORDER_TRIGGERING: about an order that exists
        ("inverse", "-4131"),  # not COIN-M's PERCENT_PRICE code (that is -4113)
        ("spot", "-4131"),  # no such spot code: a bare ExchangeError
    ],
)
def test_an_unlisted_code_keeps_the_lookup(kind: str, code: str) -> None:
    exc = venue_answer(kind, code)
    error = placement_error(exc, "c1", None, exchange_id=URLS[kind][0], market=MARKETS[kind])
    assert isinstance(error, OrderOutcomeUnknown)


def test_another_exchange_operation_rejected_keeps_the_lookup() -> None:
    """The tables are per exchange: the same code from a venue without one means nothing."""
    exc = ccxt.OperationRejected('okx {"code":-4131,"msg":"x"}')
    error = placement_error(exc, "c1", None, exchange_id="okx", market=MARKETS["linear"])
    assert isinstance(error, OrderOutcomeUnknown)
    assert not busy("okx", ccxt.OperationRejected('okx {"code":-1004}'))


def test_codes_are_read_from_ccxt_messages_and_tables_do_not_overlap() -> None:
    assert venue_code(ccxt.OperationRejected('binanceusdm {"code": -4131, "msg": "x"}')) == "-4131"
    assert venue_code(ccxt.OperationRejected("binanceusdm timed out")) is None
    assert market_kind({"spot": True}) == "spot"
    assert market_kind({"swap": True, "contract": True, "linear": True}) == "linear"
    assert market_kind({"future": True, "contract": True, "inverse": True}) == "inverse"
    for exchange_id, kinds in REFUSED.items():
        for codes in kinds.values():
            assert not set(codes) & set(BUSY.get(exchange_id, {}))


@pytest.mark.parametrize(
    ("kind", "code", "cls", "msg"),
    [
        # USER_IN_LIQUIDATION: no new order is taken while the account is being liquidated;
        # ccxt raises it as OperationFailed (not an ExchangeError) on both futures APIs
        ("linear", "-2023", ccxt.OperationFailed, "User in liquidation mode now."),
        ("inverse", "-2023", ccxt.OperationFailed, "User in liquidation mode now."),
        # USD-M's "..., reject order" answers (OPTIONS_PREMIUM_NOT_UPDATE,
        # OPTIONS_AMOUNT_BIGGER_THAN_UPPER, OPTIONS_PREMIUM_REACH_LIMIT)
        ("linear", "-4072", ccxt.OperationRejected, "premium fee is not updated, reject order"),
        (
            "linear",
            "-4074",
            ccxt.OperationRejected,
            "Order amount is bigger than upper boundary or less than 0, reject order",
        ),
        (
            "linear",
            "-4077",
            ccxt.OperationRejected,
            "place order amount has reached to limit, reject order",
        ),
    ],
)
def test_the_added_refusals_are_rejected_at_once(
    kind: str, code: str, cls: type[ccxt.BaseError], msg: str
) -> None:
    """Binance's documented refusals of a new order that ccxt raises as a class of unknown
    outcome (OperationFailed, OperationRejected): listed, so the placement is rejected with
    the venue's message instead of being looked up."""
    exc = venue_answer(kind, code, msg)
    assert type(exc) is cls
    assert code in REFUSED[URLS[kind][0]][kind]
    error = placement_error(exc, "c1", None, exchange_id=URLS[kind][0], market=MARKETS[kind])
    assert isinstance(error, OrderRejectedError)
    assert msg in error.reason


def test_an_operation_failed_answer_without_a_listed_code_stays_unknown() -> None:
    """-1008 (Request throttled / server overloaded) is OperationFailed too, but the venue may
    have been overloaded after taking the order: not listed, an unknown outcome."""
    exc = venue_answer("linear", "-1008", "Server is currently overloaded", 503)
    assert isinstance(exc, ccxt.OperationFailed)
    error = placement_error(exc, "c1", None, exchange_id="binanceusdm", market=MARKETS["linear"])
    assert isinstance(error, OrderOutcomeUnknown)
