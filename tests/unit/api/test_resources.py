"""ResourceMonitor: process and disk samples, and one alert per threshold crossing."""

from __future__ import annotations

from pathlib import Path

from cryptomon.api.metrics_sources import resource_metrics
from cryptomon.api.resources import ResourceMonitor
from cryptomon.clock import ManualClock
from cryptomon.config import ResourcesConfig
from cryptomon.events import Notice
from cryptomon.hub import Hub


def _monitor(tmp_path: Path, **limits: float) -> tuple[ResourceMonitor, list[Notice]]:
    hub = Hub()
    seen: list[Notice] = []
    hub.subscribe(Notice, seen.append, name="test.notices")
    monitor = ResourceMonitor(
        config=ResourcesConfig(**limits), data_dir=tmp_path, hub=hub, clock=ManualClock()
    )
    return monitor, seen


def test_sample_reports_rss_open_files_and_free_disk(tmp_path: Path) -> None:
    """A sample has the process RSS, its open files and the free disk of data_dir."""
    monitor, seen = _monitor(tmp_path)
    s = monitor.sample()
    assert s["rss_bytes"] > 1e6
    assert s["open_files"] >= 3
    assert 0 < s["disk_free_bytes"] <= s["disk_total_bytes"]
    assert s["data_dir"] == str(tmp_path)
    assert seen == []  # 1 GB free is the default floor; this machine has more


def test_crossing_alerts_once_and_shows_in_metrics(tmp_path: Path) -> None:
    """A crossed threshold publishes one warning Notice (not one per sample) and its gauge."""
    monitor, seen = _monitor(tmp_path, min_free_disk_mb=1e12, max_open_files=1)
    monitor.sample()
    monitor.sample()
    assert [(n.code, n.level) for n in seen] == [("resource_threshold", "warning")] * 2
    assert {n.message.split()[0] for n in seen} == {"disk_free_bytes", "open_files"}
    families = {f.name: f for f in resource_metrics(monitor.stats())}
    crossed = {
        s.labels["resource"]: s.value
        for s in families["cryptomon_resource_threshold_crossed"].samples
    }
    assert crossed == {"disk_free_bytes": 1.0, "open_files": 1.0}
    assert families["cryptomon_resource_alerts"].samples[0].value == 2


def test_back_within_bounds_is_announced(tmp_path: Path) -> None:
    """When the value returns inside the bound an info Notice says so and the gauge clears."""
    monitor, seen = _monitor(tmp_path, max_rss_mb=1, min_free_disk_mb=0)
    monitor.sample()
    monitor.limits[0] = type(monitor.limits[0])("rss_bytes", 1e15, floor=False)
    monitor.sample()
    assert [n.level for n in seen] == ["warning", "info"]
    assert monitor.stats()["crossed"] == []
