"""Spam control primitives, all driven by times passed in (from the injected Clock).

- :class:`TokenBucket`: ``rate_per_min`` refill, ``burst`` capacity.
- :class:`Deduper`: one alert per key within a window (a higher severity passes).
- :class:`QuietHours`: a daily ``HH:MM-HH:MM`` window in a time zone (may cross midnight).
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo


class TokenBucket:
    """Classic token bucket on a monotonic time axis."""

    __slots__ = ("_last", "_tokens", "burst", "rate_per_s")

    def __init__(self, *, rate_per_min: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_min / 60.0
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def take(self, now: float) -> bool:
        """Consume one token if there is one."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def force(self, now: float) -> None:
        """Consume one token even into debt (P0 alerts always go out but still count)."""
        self._refill(now)
        self._tokens -= 1.0

    def next_token_in(self, now: float) -> float:
        """Seconds until one whole token is available (0 when one is)."""
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s


class Deduper:
    """Remembers when each key was last let through, and at which severity rank."""

    __slots__ = ("_seen", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._seen: dict[tuple[str, ...], tuple[float, int]] = {}

    def admit(self, key: tuple[str, ...] | None, rank: int, now: float) -> bool:
        """True when the alert may pass; records it. A duplicate does not extend the window."""
        if key is None or self.window_s <= 0:
            return True
        prev = self._seen.get(key)
        if prev is not None and now - prev[0] < self.window_s and rank <= prev[1]:
            return False
        self._seen[key] = (now, rank)
        return True

    def forget(self, key: tuple[str, ...]) -> None:
        """The condition ``key`` reported has ended: its next alert passes."""
        self._seen.pop(key, None)

    def prune(self, now: float) -> None:
        """Forget keys whose window has passed (keeps memory bounded by active keys)."""
        old = [k for k, (t, _) in self._seen.items() if now - t >= self.window_s]
        for k in old:
            del self._seen[k]

    def __len__(self) -> int:
        return len(self._seen)


class QuietHours:
    """``start-end`` local times; ``22:00-07:00`` crosses midnight; equal ends = never quiet."""

    __slots__ = ("end", "start", "tz")

    def __init__(self, spec: str, tz: str = "UTC") -> None:
        a, _, b = spec.partition("-")
        self.start = _hhmm(a)
        self.end = _hhmm(b)
        self.tz = ZoneInfo(tz)

    def active(self, epoch: float) -> bool:
        local = datetime.fromtimestamp(epoch, self.tz).time()
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def _hhmm(text: str) -> time:
    h, _, m = text.strip().partition(":")
    return time(int(h), int(m))
