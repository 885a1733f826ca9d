"""Feed plugins, discovered through the entry-point group ``cryptomon.feeds``.

A plugin is a :class:`FeedPlugin` subclass registered under a name, e.g. in a third-party
package's ``pyproject.toml``::

    [project.entry-points."cryptomon.feeds"]
    myexchange = "mypkg.feed:MyExchangePlugin"

The built-ins are registered the same way: ``cryptofeed`` (every cryptofeed exchange by name),
``simulator`` (the loopback simulator through cryptofeed's Binance code), ``simulator_futures``
(the simulator's USD-M venue through cryptofeed's BinanceFutures code) and ``replay``
(recordings). An exchange config picks its plugin: ``source: replay`` -> ``replay``; its
``plugin`` key -> that plugin; an exchange ``name`` equal to a plugin's name -> that plugin;
anything else -> ``cryptofeed``.

Duplicate names and entry points that are not ``FeedPlugin`` subclasses are rejected with a
:class:`~cryptomon.errors.ConfigError` naming the offender.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from cryptomon.errors import ConfigError, Problem

if TYPE_CHECKING:
    from cryptomon.clock import Clock
    from cryptomon.config import ExchangeConfig
    from cryptomon.feeds.health import FeedHealth
    from cryptomon.hub import Hub
    from cryptomon.market.inputs import MarketInputs

GROUP = "cryptomon.feeds"
_GENERIC = ("cryptofeed", "replay")


class FeedSource(Protocol):
    """What a plugin creates: one exchange feed component."""

    name: str
    exchange: str
    health: FeedHealth

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class FeedPlugin(ABC):
    """Creates feed components for exchange configs."""

    name: ClassVar[str] = ""

    def validate(self, config: ExchangeConfig) -> None:  # noqa: B027 - optional hook
        """Raise ConfigError for a config this plugin cannot serve (no network here)."""

    @abstractmethod
    def create(
        self, config: ExchangeConfig, *, hub: Hub, clock: Clock, market: MarketInputs | None = None
    ) -> FeedSource:
        """A component that publishes this exchange's events on ``hub``; ``market`` gives
        its events units and its guard (None: raw venue quantities, no quality checks)."""


# The built-in plugins (also registered as entry points in pyproject.toml): found even when
# the installed package metadata predates one of them (an editable install not refreshed).
BUILTIN = {
    "cryptofeed": "cryptomon.feeds.cryptofeed:CryptofeedPlugin",
    "replay": "cryptomon.feeds.replay:ReplayPlugin",
    "simulator": "cryptomon.feeds.cryptofeed:SimulatorPlugin",
    "simulator_futures": "cryptomon.feeds.simulator_futures:SimulatorFuturesPlugin",
}


def _with_builtins(found: list[EntryPoint]) -> list[EntryPoint]:
    """``found`` plus the built-ins its metadata does not list."""
    names = {entry_point.name for entry_point in found}
    missing = [
        EntryPoint(name, value, GROUP) for name, value in BUILTIN.items() if name not in names
    ]
    return found + missing


def load_plugins(eps: Iterable[EntryPoint] | None = None) -> dict[str, type[FeedPlugin]]:
    """Every registered plugin class by name (the installed entry points and the built-ins;
    ``eps`` replaces both); bad registrations raise ConfigError."""
    found = _with_builtins(list(entry_points(group=GROUP))) if eps is None else list(eps)
    out: dict[str, type[FeedPlugin]] = {}
    origin: dict[str, str] = {}
    problems: list[Problem] = []
    for entry_point in found:
        where = f"entry point {GROUP}:{entry_point.name} = {entry_point.value}"
        if entry_point.name in out:
            problems.append(
                Problem(
                    where,
                    entry_point.name,
                    f"a unique feed name (also registered by {origin[entry_point.name]})",
                )
            )
            continue
        try:
            obj: Any = entry_point.load()
        except Exception as exc:
            problems.append(Problem(where, entry_point.value, f"an importable object ({exc!r})"))
            continue
        if not (isinstance(obj, type) and issubclass(obj, FeedPlugin)):
            problems.append(
                Problem(where, obj, "a subclass of cryptomon.feeds.registry.FeedPlugin")
            )
            continue
        out[entry_point.name] = obj
        origin[entry_point.name] = entry_point.value
    if problems:
        raise ConfigError(problems)
    return out


def plugin_for(config: ExchangeConfig, plugins: dict[str, type[FeedPlugin]]) -> FeedPlugin:
    """The plugin (instance) that serves ``config``."""
    if config.source == "replay":
        key = "replay"
    elif config.plugin:
        key = config.plugin
    elif config.name in plugins and config.name not in _GENERIC:
        key = config.name
    else:
        key = "cryptofeed"
    cls = plugins.get(key)
    if cls is None:
        raise ConfigError(
            [Problem(f"exchanges[{config.name}]", config.name, f"an installed '{key}' feed plugin")]
        )
    return cls()
