"""``systemctl reload`` (SIGHUP): read the config file again and apply what may change.

:class:`Reloader` loads the file (the same loader and validation as at start). An invalid
file is rejected with one log line and the running config stays. A valid one is applied
section by section, each to the component that owns it:

- ``trading``: the shared :class:`~cryptomon.trading.runtime.TradingRuntime` takes the file's
  settings whole (risk limits, signal gates and rules); changes made through the API since
  are reset to the file's values, audited as ``reloaded``;
- ``anomaly_detection``: the detector engine re-reads its thresholds (per market);
- ``alerts``: the routing of channels that keep their name and URL, the templates, the dedup
  window, the delivery settings and the link base (a channel added, removed or given another
  URL, and ``alerts.enabled``, need a restart: logged at every reload until then);
- ``exchanges``: a changed entry restarts that feed only; the others keep streaming.

Everything else (database, API, logging, ...) needs a restart: a change there, and a channel
or exchange added or removed, is logged by every reload until the restart
(``config.reload_needs_restart``, against what the daemon started with).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from cryptomon.config import Settings
from cryptomon.errors import ConfigError

log = structlog.get_logger()
LIVE_SECTIONS = ("trading", "anomaly_detection", "alerts", "exchanges")


class Reloader:
    """Applies a re-read config to the running components (see the module docstring)."""

    def __init__(self, *, load: Callable[[], Settings], settings: Settings, services: Any) -> None:
        self.load = load
        self.settings = settings
        self.started_with = settings  # what the sections that need a restart still run with
        self.services = services
        self.reloads = 0
        self.rejected = 0

    async def reload(self) -> bool:
        """Re-read and apply; False (running config kept) when the new file is invalid."""
        old = self.settings
        try:
            new = self.load()
            feeds = self._build_feeds(old, new)  # what only building a feed checks
        except ConfigError as exc:
            self.rejected += 1
            problems = "; ".join(str(p) for p in exc.problems)
            log.error("config.reload_rejected", problems=problems)
            return False
        self.settings = new
        applied = []
        try:
            if new.trading != old.trading:
                self._trading(new)
                applied.append("trading")
            if new.anomaly_detection != old.anomaly_detection:
                self._detectors(new)
                applied.append("anomaly_detection")
            if new.alerts != old.alerts:
                self._alerts(new)
                applied.append("alerts")
            if new.exchanges != old.exchanges and new.bus.role != "brain":
                await self._feeds(old, new, feeds)
                applied.append("exchanges")
        except Exception as exc:  # never an unretrieved task exception (a traceback)
            self.rejected += 1
            log.error("config.reload_failed", applied=applied, error=repr(exc))
            return False
        rest = [  # against the start: a change a restart still has to apply is said each time
            name
            for name in type(new).model_fields
            if name not in LIVE_SECTIONS and getattr(new, name) != getattr(self.started_with, name)
        ]
        channels = self._channels_to_restart(new)
        exchanges = self._exchanges_to_restart(new)
        enabled = ["enabled"] if new.alerts.enabled != self.started_with.alerts.enabled else []
        if channels or enabled:
            rest.append("alerts")
        if exchanges:
            rest.append("exchanges")
        pending = {"channels": channels, "exchanges": exchanges, "alerts": enabled}
        if rest:
            log.warning(
                "config.reload_needs_restart",
                sections=rest,
                **{key: val for key, val in pending.items() if val},
            )
        self.reloads += 1
        log.info("config.reloaded", applied=applied)
        return True

    def _trading(self, new: Settings) -> None:
        trading = self.services.trading
        if trading is not None:
            trading.runtime.reload(new.trading)

    def _detectors(self, new: Settings) -> None:
        detectors = self.services.detectors
        if detectors is not None:
            detectors.reconfigure(new.anomaly_detection)

    def _alerts(self, new: Settings) -> None:
        notifier = self.services.notifier
        if notifier is not None:
            notifier.reload(new.alerts)

    def _channels_to_restart(self, new: Settings) -> list[str]:
        """Alert channels added, removed or given another URL since the start: the notifier
        still runs the start's channels (the API changes routing, never a name or URL)."""
        running = {ch.name: ch.url for ch in self.started_with.alerts.channels}
        wanted = {ch.name: ch.url for ch in new.alerts.channels}
        return sorted(n for n in running.keys() | wanted.keys() if running.get(n) != wanted.get(n))

    def _exchanges_to_restart(self, new: Settings) -> list[str]:
        """Exchange entries added or removed since the start (a changed one is restarted)."""
        if new.bus.role == "brain":  # the collectors run the exchange feeds, not this process
            return []
        running = {ex.name for ex in self.started_with.exchanges}
        return sorted(running ^ {ex.name for ex in new.exchanges})

    def _changed_exchanges(self, old: Settings, new: Settings) -> list[Any]:
        if new.bus.role == "brain":  # the collectors run the exchange feeds, not this process
            return []
        before = {ex.name: ex for ex in old.exchanges}
        return [cfg for cfg in new.exchanges if cfg.name in before and before[cfg.name] != cfg]

    def _build_feeds(self, old: Settings, new: Settings) -> dict[str, Any]:
        """The feeds of the changed exchange entries, built (not started) before anything is
        applied: a symbol, plugin or proxy only a feed's builder checks rejects the reload
        whole (``ConfigError``) instead of stopping the running feed first."""
        feeds = self.services.feeds
        if feeds is None:
            return {}
        return {cfg.name: feeds.build(cfg) for cfg in self._changed_exchanges(old, new)}

    async def _feeds(self, old: Settings, new: Settings, built: dict[str, Any]) -> None:
        feeds = self.services.feeds
        if feeds is None:
            return
        for cfg in self._changed_exchanges(old, new):
            await feeds.replace(cfg, built.get(cfg.name))
