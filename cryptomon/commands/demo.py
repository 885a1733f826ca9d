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
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cryptomon.commands.support import EXIT_USAGE, run_async, setup_logging, with_logging

DEMO_SYMBOLS = ("BTC-USDT", "ETH-USDT")


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
    demo.set_defaults(handler=cmd_demo)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(requested: int | None) -> int:
    if requested is not None:
        return requested
    if _port_free(8080):
        return 8080
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_settings_data(
    *, sim_url: str, db_path: Path, port: int, notify_url: str | None = None
) -> dict[str, Any]:
    """The built-in demo configuration (only keys the installed sections know)."""
    from cryptomon.config import AnomalyDetectionConfig, TradingConfig

    def known(model: Any, values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k in model.model_fields}

    return {
        "exchanges": [
            {
                "name": "simulator",
                "url": sim_url,
                "symbols": list(DEMO_SYMBOLS),
                "subscriptions": ["trades", "orderbook", "ticker", "candles"],
                "depth": 20,
                "stale_after_s": 10.0,
            }
        ],
        "anomaly_detection": known(
            AnomalyDetectionConfig,
            {
                "price_change_percentage": 1.0,
                "lookback_window_minutes": 1.0,
                "bucket_seconds": 1.0,
                "min_samples": 5,
                "cooldown_s": 5.0,
            },
        ),
        "trading": known(TradingConfig, {"auto_trading_enabled": True, "mode": "paper"}),
        "alerts": {
            "channels": (
                [{"name": "demo", "url": notify_url, "min_severity": "low"}] if notify_url else []
            )
        },
        "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
        "api": {"host": "127.0.0.1", "port": port},
        "shutdown_timeout_s": 10.0,
    }


def demo_scenario(symbol: str = "BTC-USDT", warmup_s: float = 8.0) -> Any:
    """A market event every 4 seconds after a short warm-up, repeated for a long demo."""
    from cryptomon.sim.scenarios import Injection, Scenario

    cycle = [
        ("volume", 10.0, 3.0),
        ("price_change", 2.5, 2.0),
        ("whale", 150.0, 1.0),
        ("book_imbalance", 8.0, 3.0),
        ("spread", 60.0, 3.0),
        ("price_change", -2.5, 2.0),
    ]
    injections = [
        Injection(kind, symbol, warmup_s + n * 4.0, duration, magnitude)
        for n, (kind, magnitude, duration) in enumerate(cycle * 150)
    ]
    return Scenario("demo", injections)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        sys.stderr.write(
            "crypto-monitor: --duration: expected a positive number of seconds, "
            f"got {args.duration}\n"
        )
        return EXIT_USAGE
    if args.port is not None and not 0 <= args.port <= 65535:
        sys.stderr.write(f"crypto-monitor: --port: expected 0..65535, got {args.port}\n")
        return EXIT_USAGE
    return run_async(_demo(args))


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
        self.counts = {"fills": 0, "notifications": 0}
        hub.subscribe(list(MARKET_DATA), self._on_market, name="demo.events")
        hub.subscribe(Anomaly, self._on_anomaly, name="demo.anomalies")
        hub.subscribe((OrderIntent, OrderUpdate), self._on_order, name="demo.orders")
        hub.subscribe(Fill, self._counter("fills"), name="demo.fills")
        hub.subscribe(NotificationRecord, self._counter("notifications"), name="demo.notifications")

    def _on_market(self, ev: Any) -> None:
        self.events[type(ev).__name__] += 1

    def _on_anomaly(self, ev: Any) -> None:
        self.anomalies[ev.kind] += 1

    def _on_order(self, ev: Any) -> None:
        self.orders.add(ev.client_order_id)

    def _counter(self, key: str) -> Any:
        return lambda _ev: self.counts.__setitem__(key, self.counts[key] + 1)

    def summary(self) -> dict[str, Any]:
        return {
            "events": dict(sorted(self.events.items())),
            "anomalies": dict(sorted(self.anomalies.items())),
            "orders": len(self.orders),
            "fills": self.counts["fills"],
            "notifications": self.counts["notifications"],
        }


def _settings(args: argparse.Namespace, *, sim: Any, db_path: Path, port: int) -> Any:
    """The demo settings with the command line's logging overrides (quiet under --json)."""
    from cryptomon.config import load_settings

    data = demo_settings_data(
        sim_url=sim.rest_url,
        db_path=db_path,
        port=port,
        notify_url=f"json://127.0.0.1:{sim.port}/demo/notify",
    )
    return with_logging(
        load_settings(data=data),
        level=getattr(args, "log_level", None) or ("WARNING" if args.json else None),
        fmt=getattr(args, "log_format", None),
    )


def _simulator(seed: int) -> tuple[Any, list[int]]:
    """The simulated exchange, with an offline notification sink counting its deliveries."""
    from aiohttp import web

    from cryptomon.sim.exchange import SimExchange
    from cryptomon.sim.market import MarketModel

    sim = SimExchange(MarketModel(DEMO_SYMBOLS, seed=seed))
    received = [0]

    async def notify_sink(request: web.Request) -> web.Response:
        await request.read()
        received[0] += 1
        return web.json_response({"ok": True})

    # an offline notification channel: apprise posts JSON to the simulator's web server
    sim.add_routes([web.post("/demo/notify", notify_sink)])
    return sim, received


async def _demo(args: argparse.Namespace) -> int:
    from cryptomon.app import build_app
    from cryptomon.hub import Hub

    sim, received = _simulator(args.seed)
    await sim.start()
    scenario = demo_scenario().attach(sim)
    with tempfile.TemporaryDirectory(prefix="cryptomon-demo-") as tmp:
        port = _pick_port(args.port)
        settings = _settings(args, sim=sim, db_path=Path(tmp) / "demo.db", port=port)
        setup_logging(settings)
        hub = Hub()
        tally = _Tally(hub)
        app = build_app(settings, hub=hub)
        api_url = [f"http://127.0.0.1:{port}" if settings.api.enabled else ""]

        async def until() -> None:
            import asyncio

            api = next((c for c in app.started if c.name == "api"), None)
            api_url[0] = str(getattr(api, "url", "")) if api is not None else ""
            if not args.json:
                sys.stderr.write(
                    f"demo: simulator at {sim.rest_url}, API on {api_url[0] or '(not running)'}"
                    " (Ctrl-C to stop)\n"
                )
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


def _print_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        sys.stdout.write(
            "demo summary: "
            + ", ".join(f"{k}={v}" for k, v in summary.items() if k != "exit_code")
            + "\n"
        )
