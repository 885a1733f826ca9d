"""Subject names and the JetStream streams behind them.

=====================================  ==================  ===================================
subject                                stream              payload
=====================================  ==================  ===================================
``<p>.md.<exchange>.<symbol>``         ``<stream>``        columnar batch (:mod:`.codec`)
``<p>.instruments.<exchange>``         ``<stream>_META``   JSON list of instrument specs
``<p>.health.<collector>``             (core NATS)         JSON health of one collector
``<p>.health_request``                 (core NATS)         empty: every collector sends its health
``<p>.anomaly.<exchange>.<symbol>``    ``<stream>_EVENTS`` JSON Anomaly (:mod:`.outbound`)
``<p>.signal.<exchange>.<symbol>``     ``<stream>_EVENTS`` JSON Signal
``<p>.order.<exchange>.<symbol>``      ``<stream>_EVENTS`` JSON OrderUpdate
``<p>.fill.<exchange>.<symbol>``       ``<stream>_EVENTS`` JSON Fill
=====================================  ==================  ===================================

Symbols keep their ``-`` (``BTC-USDT``); a ``.``, ``*``, ``>`` or space in a name becomes ``_``.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[.*> \t]")
EVENT_KINDS = ("anomaly", "signal", "order", "fill")


def token(name: str) -> str:
    """``name`` as one subject token."""
    return _UNSAFE.sub("_", name) or "_"


def market_data(prefix: str, exchange: str, symbol: str) -> str:
    return f"{prefix}.md.{token(exchange)}.{token(symbol)}"


def instruments(prefix: str, exchange: str) -> str:
    return f"{prefix}.instruments.{token(exchange)}"


def health(prefix: str, collector: str) -> str:
    return f"{prefix}.health.{token(collector)}"


def health_request(prefix: str) -> str:
    """A brain starting asks every collector for its health (and markets) at once."""
    return f"{prefix}.health_request"


def event(prefix: str, kind: str, exchange: str, symbol: str) -> str:
    return f"{prefix}.{kind}.{token(exchange)}.{token(symbol or '_')}"
