"""In-process pub/sub (DESIGN.md sections 1, 3.5, 6): ``core.py`` is the :class:`Hub`,
``subscriptions.py`` its inline and queued subscribers."""

from cryptomon.hub.core import Hub
from cryptomon.hub.subscriptions import (
    BatchHandler,
    InlineHandler,
    InlineSubscription,
    Policy,
    QueuedSubscription,
    Subscription,
    Topic,
)

__all__ = [
    "BatchHandler",
    "Hub",
    "InlineHandler",
    "InlineSubscription",
    "Policy",
    "QueuedSubscription",
    "Subscription",
    "Topic",
]
