"""``crypto-monitor demo``: the simulator and the whole daemon in one process, offline.

Built-in demo settings: the ``simulator`` exchange (BTC-USDT, ETH-USDT) on a loopback
:class:`~cryptomon.sim.exchange.SimExchange` with a scenario injecting a market event every few
seconds, SQLite in a temporary directory, paper trading with auto trading on, detectors tuned
to warm up within seconds, and the API on 127.0.0.1:8080 (an ephemeral port if 8080 is taken,
or ``--port``). ``--json`` prints a summary as the last line: events by type, anomalies by
kind, orders, fills, notifications (counted from the hub).
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cryptomon.commands.demo_config import (
    DEMO_SYMBOLS,
    MORE_SYMBOLS,
    PERP_SYMBOL,
    demo_scenario,
    demo_settings,
    demo_symbols,
    user_config,
)
from cryptomon.commands.support import (
    EXIT_USAGE,
    ignore_sighup_until_running,
    process_exits_after,
    run_daemon,
    setup_logging,
)


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    demo = subparsers.add_parser(
        "demo",
        parents=[parent],
        help="run the simulator and the daemon together, offline, with a demo config",
    )
    demo.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    demo.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    demo.add_argument(
        "--port", type=int, default=None, metavar="PORT", help="API port (default 8080)"
    )
    demo.add_argument("--seed", type=int, default=42, help="market model seed")
    demo.add_argument(
        "--markets", type=int, default=2, metavar="N", help="simulated markets, 1..10 (default 2)"
    )
    demo.add_argument(
        "--event-every",
        type=float,
        default=4.0,
        metavar="S",
        help="seconds between injected market events (default 4; smaller = an accelerated demo)",
    )
    demo.add_argument(
        "--perpetual",
        action="store_true",
        help=f"also stream {PERP_SYMBOL}, a linear perpetual (paper futures at 5x, shorts "
        "allowed), to show the futures columns",
    )
    demo.set_defaults(handler=cmd_demo)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(requested: int | None) -> int:
    """``requested``; without one 8080 when free; 0 or a busy default: a free port now (alert
    links and the printed URL need the real number before the server starts)."""
    if requested:
        return int(requested)
    if requested is None and _port_free(8080):
        return 8080
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cmd_demo(args: argparse.Namespace) -> int:
    if args.duration is not None and not 0 < args.duration < math.inf:  # NaN too
        sys.stderr.write(
            "crypto-monitor: --duration: expected a positive, finite number of seconds, "
            f"got {args.duration}\n"
        )
        return EXIT_USAGE
    if args.port is not None and not 0 <= args.port <= 65535:
        sys.stderr.write(f"crypto-monitor: --port: expected 0..65535, got {args.port}\n")
        return EXIT_USAGE
    if not 1 <= args.markets <= len(DEMO_SYMBOLS + MORE_SYMBOLS):
        sys.stderr.write(f"crypto-monitor: --markets: expected 1..10, got {args.markets}\n")
        return EXIT_USAGE
    if not 0.05 <= args.event_every <= 3600:
        sys.stderr.write(
            f"crypto-monitor: --event-every: expected 0.05..3600 seconds, got {args.event_every}\n"
        )
        return EXIT_USAGE
    ignore_sighup_until_running(args)  # the running demo logs that it does not reload
    # the exit follows the stop (a first compile: not waited for)
    return run_daemon(_demo(args), exiting=process_exits_after(args))


class _Tally:
    """What the demo counts from the hub: market events by type, anomalies by kind, orders,
    fills and notification records."""

    def __init__(self, hub: Any) -> None:
        from cryptomon.events import (
            MARKET_DATA,
            Anomaly,
            Fill,
            NotificationRecord,
            OrderIntent,
            OrderUpdate,
        )

        self.events: Counter[str] = Counter()
        self.anomalies: Counter[str] = Counter()
        self.orders: set[str] = set()
        self.counts = {"fills": 0}
        # per outcome: the sink receives the sent ones; suppressed (cooldown, severity) and
        # digested ones are counted here but never delivered on their own
        self.notifications: dict[str, int] = {}
        hub.subscribe(list(MARKET_DATA), self._on_market, name="demo.events")
        hub.subscribe(Anomaly, self._on_anomaly, name="demo.anomalies")
        hub.subscribe((OrderIntent, OrderUpdate), self._on_order, name="demo.orders")
        hub.subscribe(Fill, self._counter("fills"), name="demo.fills")
        hub.subscribe(NotificationRecord, self._on_notification, name="demo.notifications")

    def _on_market(self, ev: Any) -> None:
        self.events[type(ev).__name__] += 1

    def _on_anomaly(self, ev: Any) -> None:
        self.anomalies[str(ev.kind)] += 1  # the plain name, never the enum's repr

    def _on_order(self, ev: Any) -> None:
        self.orders.add(ev.client_order_id)

    def _on_notification(self, ev: Any) -> None:
        self.notifications[ev.status] = self.notifications.get(ev.status, 0) + 1

    def _counter(self, key: str) -> Any:
        return lambda _ev: self.counts.__setitem__(key, self.counts[key] + 1)

    def summary(self) -> dict[str, Any]:
        return {
            "events": dict(sorted(self.events.items())),
            "anomalies": dict(sorted(self.anomalies.items())),
            "orders": len(self.orders),
            "fills": self.counts["fills"],
            "notifications": dict(sorted(self.notifications.items())),
        }


def _simulator(seed: int, symbols: tuple[str, ...]) -> tuple[Any, list[int]]:
    """The simulated exchange, with an offline notification sink counting its deliveries."""
    from dataclasses import replace

    from aiohttp import web

    from cryptomon.sim.exchange import SimExchange
    from cryptomon.sim.market import MarketModel, default_spec

    # a perpetual moves like its spot pair (same price, tick and sizes) on its own book
    specs = [
        replace(default_spec(s.removesuffix("-PERP")), symbol=s) if s.endswith("-PERP") else s
        for s in symbols
    ]
    sim = SimExchange(MarketModel(specs, seed=seed))
    received = [0]

    async def notify_sink(request: web.Request) -> web.Response:
        await request.read()
        received[0] += 1
        return web.json_response({"ok": True})

    # an offline notification channel: apprise posts JSON to the simulator's web server
    sim.add_routes([web.post("/demo/notify", notify_sink)])
    return sim, received


async def _demo(args: argparse.Namespace) -> int:
    import secrets

    from cryptomon.app import build_app
    from cryptomon.hub import Hub

    user = user_config(args)
    symbols = demo_symbols(args.markets, perpetual=args.perpetual)
    sim, received = _simulator(args.seed, symbols)
    await sim.start()
    # the injected events go round the spot markets (the perpetual only streams)
    spot = demo_symbols(args.markets)
    scenario = demo_scenario(every_s=args.event_every, symbols=spot).attach(sim)
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="cryptomon-demo-") as tmp:
        port = _pick_port(args.port if args.port is not None else _user_port(user))
        try:
            settings = demo_settings(
                args, sim=sim, db_path=Path(tmp) / "demo.db", port=port, token=token, user=user
            )
        except BaseException:
            await sim.stop()
            raise
        setup_logging(settings)
        hub = Hub()
        tally = _Tally(hub)
        app = build_app(settings, hub=hub)
        # where the API listens, once every component has started (`until` runs then); a
        # start cut short (Ctrl-C, a failure) leaves it empty: no URL that never listened
        api_url = [""]

        async def until() -> None:
            import asyncio

            api = next((c for c in app.started if c.name == "api"), None)
            api_url[0] = str(getattr(api, "url", "")) if api is not None else ""
            _announce(args, sim_url=sim.rest_url, api_url=api_url[0], token=token)
            if args.duration is None:
                await asyncio.Event().wait()
            await asyncio.sleep(args.duration)

        t0 = time.perf_counter()
        try:
            code = await app.run(until=until)
        finally:
            await sim.stop()
        summary = {
            "seconds": round(time.perf_counter() - t0, 3),
            **tally.summary(),
            "notifications_delivered": received[0],
            "injected": scenario.applied,
            "api": api_url[0],
            "exit_code": code,
        }
    _print_summary(summary, as_json=args.json)
    return int(code)


def _user_port(user: dict[str, Any]) -> int | None:
    api = user.get("api")
    return api.get("port") if isinstance(api, dict) else None


def _announce(args: argparse.Namespace, *, sim_url: str, api_url: str, token: str) -> None:
    """The dashboard URL, the admin token and a link that signs the browser tab in with it
    (the token in the URL's fragment, which never reaches the server) on stdout (also under
    --json: not the last line); where the simulator and the API listen on stderr."""
    if api_url:
        sys.stdout.write(
            f"demo: dashboard {api_url}/  token {token}  sign-in link {api_url}/#token={token}\n"
        )
        sys.stdout.flush()
    if not args.json:
        sys.stderr.write(
            f"demo: simulator at {sim_url}, API on {api_url or '(not running)'} (Ctrl-C to stop)\n"
        )


def _print_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        sys.stdout.write(
            "demo summary: "
            + ", ".join(f"{k}={v}" for k, v in summary.items() if k != "exit_code")
            + "\n"
        )
