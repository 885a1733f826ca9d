"""Token bucket, dedup window and quiet hours on explicit times."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptomon.notify.ratelimit import Deduper, QuietHours, TokenBucket


def test_token_bucket_allows_burst_then_refills_at_rate() -> None:
    """6/min with burst 6: six at once, then one every ten seconds."""
    b = TokenBucket(rate_per_min=6, burst=6, now=0.0)
    assert [b.take(0.0) for _ in range(7)] == [True] * 6 + [False]
    assert b.next_token_in(0.0) == 10.0
    assert not b.take(9.9)
    assert b.take(10.0)
    assert b.available(1000.0) == 6.0  # never above the burst


def test_forced_token_goes_into_debt() -> None:
    """A forced (P0) send is counted, so later alerts wait longer."""
    b = TokenBucket(rate_per_min=60, burst=1, now=0.0)
    assert b.take(0.0)
    b.force(0.0)
    assert not b.take(1.0)
    assert b.take(2.0)


def test_dedup_window_and_escalation() -> None:
    """A key passes once per window; a higher severity passes inside it; None never dedups."""
    d = Deduper(60)
    key = ("binance", "BTC-USDT", "volume")
    assert d.admit(key, 2, 0.0)
    assert not d.admit(key, 2, 30.0)
    assert not d.admit(key, 1, 59.0)
    assert d.admit(key, 3, 59.5)
    assert d.admit(key, 2, 120.0)
    assert d.admit(None, 0, 120.0)
    assert d.admit(None, 0, 120.0)
    d.prune(1000.0)
    assert len(d) == 0


def test_dedup_window_zero_disables() -> None:
    """dedup_window_s: 0 lets every alert through."""
    d = Deduper(0)
    assert all(d.admit(("a", "b", "c"), 1, 0.0) for _ in range(3))


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def test_quiet_hours_cross_midnight_in_their_time_zone() -> None:
    """22:00-07:00 in Europe/Berlin (UTC+1 in winter) is 21:00-06:00 UTC."""
    q = QuietHours("22:00-07:00", "Europe/Berlin")
    assert q.active(_ts("2024-01-15T21:30:00"))
    assert q.active(_ts("2024-01-16T05:59:00"))
    assert not q.active(_ts("2024-01-16T06:00:00"))
    assert not q.active(_ts("2024-01-15T20:59:00"))


def test_quiet_hours_within_a_day_and_empty() -> None:
    """13:00-14:00 is quiet only then; equal ends mean never quiet."""
    q = QuietHours("13:00-14:00")
    assert q.active(_ts("2024-01-15T13:30:00"))
    assert not q.active(_ts("2024-01-15T14:00:00"))
    assert not QuietHours("08:00-08:00").active(_ts("2024-01-15T08:00:00"))
