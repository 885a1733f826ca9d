"""Feed health for notifications: a feed is reported down only when it stayed stale or
disconnected for ``after_s`` seconds; a recovery is reported only for feeds reported down."""

from __future__ import annotations

from dataclasses import dataclass

from cryptomon.events import FeedStatus

DOWN_STATES = frozenset({"stale", "disconnected", "error"})
UP_STATES = frozenset({"live"})

FeedKey = tuple[str, str, str]


@dataclass(slots=True)
class _Down:
    status: FeedStatus
    since_mono: float
    since_wall: float
    notified: bool = False


class FeedWatch:
    """Tracks down feeds per (exchange, symbol, channel); times come from the caller's clock."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._down: dict[FeedKey, _Down] = {}

    def on_status(
        self, status: FeedStatus, now_mono: float, now_wall: float
    ) -> list[tuple[FeedStatus, float]]:
        """Record a status change; returns ``(down status, down_since_wall)`` of every feed that
        was reported down and is live again. A connection-wide ``live`` (empty channel and
        symbol) clears every channel of that exchange, not its symbols: a symbol still silent
        after a reconnect stays down until its own ``live``."""
        key = (status.exchange, status.symbol, status.channel)
        if status.status in DOWN_STATES:
            entry = self._down.get(key)
            if entry is None:
                self._down[key] = _Down(status, now_mono, now_wall)
            else:
                entry.status = status  # keep the first "since"
            return []
        if status.status not in UP_STATES:
            return []  # connecting / gap / resync: transitional, no change
        if status.channel or status.symbol:
            keys = [key] if key in self._down else []
        else:
            keys = [k for k in self._down if k[0] == status.exchange and not k[1]]
        back = [self._down.pop(k) for k in keys]
        return [(e.status, e.since_wall) for e in back if e.notified]

    def due(self, now_mono: float) -> list[tuple[FeedStatus, float, float]]:
        """Feeds down for ``after_s`` and not yet reported: ``(status, since_wall, down_for)``;
        marks them reported."""
        out: list[tuple[FeedStatus, float, float]] = []
        for entry in self._down.values():
            if not entry.notified and now_mono - entry.since_mono >= self.after_s:
                entry.notified = True
                out.append((entry.status, entry.since_wall, now_mono - entry.since_mono))
        return out

    @property
    def down(self) -> int:
        return len(self._down)
