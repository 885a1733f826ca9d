"""The enumerations everyone shares (DESIGN.md convention 12): one source of truth each.

This is the base layer: config, events, detectors, notifications, the store and the
simulator import from here; nothing here imports a subsystem. Members are ``StrEnum`` so
they compare equal to, serialize as and are stored as their plain string values.
"""

from __future__ import annotations

from enum import StrEnum


class AnomalyKind(StrEnum):
    """What a detector found. Config fields that name kinds are typed with this enum."""

    VOLUME = "volume"
    VOLUME_IMBALANCE = "volume_imbalance"
    PRICE_CHANGE = "price_change"
    VOLATILITY = "volatility"
    MA_DEVIATION = "ma_deviation"
    BOOK_IMBALANCE = "book_imbalance"
    SPREAD = "spread"
    WHALE = "whale"
    WHALE_BURST = "whale_burst"
    DIVERGENCE = "divergence"
    LIQUIDATIONS = "liquidations"
    FUNDING = "funding"
    ARBITRAGE = "arbitrage"


class SignalGrade(StrEnum):
    """How good a signal is, from its strength (``trading.grades``); ``ignore`` is never traded."""

    STRONG = "strong"
    MEDIUM = "medium"
    WEAK = "weak"
    IGNORE = "ignore"


class NotifyEventType(StrEnum):
    """The types of notification a channel can subscribe to."""

    ANOMALY = "anomaly"
    FILL = "fill"
    EXIT = "exit"
    RISK = "risk"
    KILL_SWITCH = "kill_switch"
    FEED_DOWN = "feed_down"
    FEED_RECOVERED = "feed_recovered"
    NOTICE = "notice"
    TEST = "test"
    SIGNAL = "signal"


class NotificationEventType(StrEnum):
    """What a stored notification was about: an event type a channel subscribes to, or the
    digest message that delivered several of them (the notification history's filter)."""

    ANOMALY = "anomaly"
    FILL = "fill"
    EXIT = "exit"
    RISK = "risk"
    KILL_SWITCH = "kill_switch"
    FEED_DOWN = "feed_down"
    FEED_RECOVERED = "feed_recovered"
    NOTICE = "notice"
    TEST = "test"
    SIGNAL = "signal"
    DIGEST = "digest"


class OrderState(StrEnum):
    """The life of an order; terminal states never change again."""

    NEW = "new"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCEL_PENDING = "cancel_pending"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_STATES


_TERMINAL_STATES = frozenset(
    {OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED}
)
