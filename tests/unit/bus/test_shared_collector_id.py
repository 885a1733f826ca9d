"""Two collector processes started with one ``bus.collector_id``: their message ids
``<collector_id>:<seq>`` can meet, and the stream would drop the later batch as a duplicate.
The brain tells them apart by the instance each health report carries, and says so."""

from __future__ import annotations

from structlog.testing import capture_logs

from cryptomon.bus.collectors import BusHealth
from cryptomon.clock import ManualClock
from cryptomon.hub import Hub


def report(health: BusHealth, clock: ManualClock, instance: str) -> None:
    health.report({"collector_id": "c1", "instance": instance, "ts": clock.time(), "feeds": {}})


def test_two_processes_under_one_collector_id_are_reported_once() -> None:
    clock = ManualClock()
    health = BusHealth(hub=Hub(), clock=clock, silent_after_s=15.0)
    with capture_logs() as logs:
        for _ in range(3):
            report(health, clock, "aaa")
            clock.advance(5)
            report(health, clock, "bbb")
            clock.advance(5)
    shared = [e for e in logs if e["event"] == "bus.collector_id_shared"]
    assert len(shared) == 1
    assert shared[0]["collector"] == "c1"
    assert shared[0]["instances"] == ["aaa", "bbb"]
    assert shared[0]["log_level"] == "error"
    assert health.snapshot()["collectors"]["c1"]["id_shared"] is True


def test_a_restarted_collector_is_not_two() -> None:
    """A restart replaces the instance (the old one stops reporting): no warning."""
    clock = ManualClock()
    health = BusHealth(hub=Hub(), clock=clock, silent_after_s=15.0)
    with capture_logs() as logs:
        report(health, clock, "old")
        clock.advance(20)  # the old process is gone, past silent_after_s
        report(health, clock, "new")
        clock.advance(5)
        report(health, clock, "new")
    assert not [e for e in logs if e["event"] == "bus.collector_id_shared"]
    assert health.snapshot()["collectors"]["c1"]["id_shared"] is False
