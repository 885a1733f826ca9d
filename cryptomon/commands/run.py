"""``crypto-monitor run`` (also what ``crypto-monitor`` without a subcommand does): the daemon.

``--role collector|brain`` runs one part of the pipeline over NATS JetStream (DESIGN.md
section 8); it overrides ``bus.role`` from the config. ``all`` (the default) is one process.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cryptomon.commands.support import (
    ignore_sighup_until_running,
    process_exits_after,
    run_daemon,
    settings_from_args,
    setup_logging,
)
from cryptomon.config import ROLES, Settings


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    run = subparsers.add_parser("run", parents=[parent], help="run the daemon (the default)")
    run.add_argument(
        "--role",
        choices=ROLES,
        default=None,
        help="all (one process, the default), collector (feeds -> NATS) or brain "
        "(NATS -> detection, trading, store, API); overrides bus.role",
    )
    run.set_defaults(handler=cmd_run)


def with_role(settings: Settings, role: str | None) -> Settings:
    """``settings`` with ``bus.role`` replaced by ``role`` (when given)."""
    if not role:
        return settings
    return settings.model_copy(update={"bus": settings.bus.model_copy(update={"role": role})})


def idle_warnings(settings: Settings) -> list[tuple[str, str]]:
    """``(event, hint)`` for a daemon that starts fine and does nothing useful: no exchange to
    watch (the built-in defaults, without --config, have none), or an API that refuses every
    request (no token and no public_read). A brain takes its market data from NATS; a
    collector serves no API. ``run`` logs them at start, ``check-config`` prints them."""
    out = []
    role = settings.bus.role
    if role != "brain" and not any(e.enabled for e in settings.exchanges):
        out.append(
            (
                "daemon.no_exchanges",
                "no enabled exchange: the daemon watches nothing; list them under exchanges "
                "(see config.example.yaml) and pass --config FILE, or try `crypto-monitor demo`",
            )
        )
    if role != "brain":
        out += _untraded(settings)
    api = settings.api
    if role != "collector" and api.enabled and not api.tokens and not api.public_read:
        out.append(
            (
                "api.no_access",
                "api.tokens is empty and api.public_read is off: the API answers /health and "
                "/ready only, every data route needs a token; make one with "
                "`crypto-monitor api token` and add it to api.tokens",
            )
        )
    return out


def _untraded(settings: Settings) -> list[tuple[str, str]]:
    """A traded exchange or symbols no enabled feed watches: no price, so every signal for
    them is dropped (the collectors of a brain are not in its config: not checked there)."""
    watched = {e.name: e.symbols for e in settings.exchanges if e.enabled}
    if not watched:
        return []  # said by daemon.no_exchanges
    trading = settings.trading
    if trading.exchange is not None and trading.exchange not in watched:
        hint = (
            f"trading.exchange {trading.exchange!r} is not an enabled exchange (enabled: "
            f"{', '.join(sorted(watched))}): nothing is traded"
        )
        return [("trading.exchange_not_watched", hint)]
    feeds = {trading.exchange: watched[trading.exchange]} if trading.exchange else watched
    if any(e.source == "replay" and not e.symbols for e in settings.exchanges if e.enabled):
        return []  # a recording's markets are known once it is read
    seen = {s for symbols in feeds.values() for s in symbols}
    missing = [s for s in trading.symbols if s not in seen]
    if not missing:
        return []
    listed = "; ".join(f"{name}: {', '.join(symbols)}" for name, symbols in sorted(feeds.items()))
    hint = (
        f"trading.symbols {', '.join(missing)}: no enabled exchange watches them ({listed}): "
        "they are never traded"
    )
    return [("trading.symbols_not_watched", hint)]


def cmd_run(args: argparse.Namespace) -> int:
    """Build the daemon from the config and run it until SIGTERM/SIGINT."""
    # a reload asked before daemon.running is logged is not done (ask again then)
    ignore_sighup_until_running(args)
    role = getattr(args, "role", None)
    settings = with_role(settings_from_args(args), role)
    setup_logging(settings)
    import structlog

    for event, hint in idle_warnings(settings):
        structlog.get_logger().warning(event, hint=hint)
    from cryptomon.app import build_app
    from cryptomon.log import Redactor
    from cryptomon.reload import Reloader

    async def main() -> int:
        app = build_app(settings)
        # SIGHUP (systemctl reload): the same file, loaded and validated as at start
        app.reloader = Reloader(
            load=lambda: with_role(settings_from_args(args), role),
            settings=settings,
            services=app.services,
        )
        code = await app.run()
        if app.start_failure is not None:  # the logs said it; a terminal gets one plain line
            first = Redactor(settings.secret_values()).scrub(app.start_failure.splitlines()[0])
            config = getattr(args, "config", None)
            if code == 2 and config:  # the operator's fix (`db upgrade`) needs the same config
                first += f" (with this daemon's --config {config} and environment)"
            sys.stderr.write(f"crypto-monitor: the daemon could not start: {first}\n")
        return code

    return run_daemon(main(), exiting=process_exits_after(args))
