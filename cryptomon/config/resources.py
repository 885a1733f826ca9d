"""The ``resources`` section: process and disk gauges (``/metrics``, the dashboard's system
view) and the thresholds whose crossing raises an alert."""

from __future__ import annotations

from pydantic import Field

from cryptomon.config.base import Section


class ResourcesConfig(Section):
    """Process CPU, RSS, open files and the free disk of ``data_dir``; 0 = no threshold."""

    sample_interval_s: float = Field(
        default=10.0, gt=0, le=3600, description="how often the process and disk are sampled"
    )
    min_free_disk_mb: float = Field(
        default=1024.0, ge=0, description="alert when data_dir's disk has less free space (MB)"
    )
    max_rss_mb: float = Field(default=0.0, ge=0, description="alert above this RSS (MB)")
    max_open_files: int = Field(default=0, ge=0, description="alert above this many open files")
    max_cpu_percent: float = Field(
        default=0.0, ge=0, description="alert above this CPU use (% of one core, per sample)"
    )
