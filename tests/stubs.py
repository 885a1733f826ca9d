"""The one test kit: builders of every event the tests need, with sane defaults.

Each builder takes keyword overrides for any field (``trade(ts, price=..., side="sell")``);
suites that want other defaults wrap them in a preset of a line or two, never a copy."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from cryptomon.events import (
    Anomaly,
    BookTop,
    Fill,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Severity,
    Trade,
)

T0 = 1_700_000_000.0
_seq = itertools.count()


def anomaly(**kw: Any) -> Anomaly:
    base: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "ts": T0,
        "ts_recv": T0,
        "kind": "volume",
        "severity": Severity.HIGH,
        "value": 5.0,
        "threshold": 3.0,
        "confidence": 0.8,
        "z_score": 5.0,
        "reasons": ("Z-score: 5.00",),
        "ts_detected": T0 + 0.001,
    }
    base.update(kw)
    return Anomaly(**base)


def trade(ts: float, price: float = 100.0, amount: float = 1.0, **kw: Any) -> Trade:
    base: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "ts": ts,
        "ts_recv": ts,
        "price": price,
        "amount": amount,
        "side": "buy",
        "trade_id": str(next(_seq)),
    }
    base.update(kw)
    return Trade(**base)


def intent(cid: str = "cm-1", **kw: Any) -> OrderIntent:
    base: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "ts": T0,
        "ts_recv": T0,
        "client_order_id": cid,
        "side": "buy",
        "type": "limit",
        "amount": Decimal("0.123456789012345678"),
        "price": Decimal("65000.10"),
        "stop_loss": Decimal("63000"),
    }
    base.update(kw)
    return OrderIntent(**base)


def update(cid: str = "cm-1", state: OrderState = OrderState.SUBMITTED, **kw: Any) -> OrderUpdate:
    base: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "ts": T0 + 1,
        "ts_recv": T0 + 1,
        "client_order_id": cid,
        "state": state,
        "side": "buy",
        "type": "limit",
        "amount": Decimal("0.123456789012345678"),
    }
    base.update(kw)
    return OrderUpdate(**base)


def fill(trade_id: str = "t-1", cid: str = "cm-1", **kw: Any) -> Fill:
    base: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "ts": T0 + 2,
        "ts_recv": T0 + 2,
        "trade_id": trade_id,
        "client_order_id": cid,
        "side": "buy",
        "amount": Decimal("0.05"),
        "price": Decimal("65000.05"),
        "fee": Decimal("0.0001"),
        "fee_currency": "BNB",
    }
    base.update(kw)
    return Fill(**base)


def book_top(bid: float = 99.9, ask: float = 100.1, depth: float = 5.0, **kw: Any) -> BookTop:
    """A top of book with ``depth`` base units on each side (imbalance 0) unless overridden."""
    mid = (bid + ask) / 2
    base: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "ts": T0,
        "ts_recv": T0,
        "bid": bid,
        "bid_size": 1.0,
        "ask": ask,
        "ask_size": 1.0,
        "spread": ask - bid,
        "spread_bps": (ask - bid) / mid * 1e4,
        "bid_depth": depth,
        "ask_depth": depth,
        "imbalance": 0.0,
        "levels": 5,
    }
    base.update(kw)
    return BookTop(**base)
