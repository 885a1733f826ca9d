"""``crypto-monitor record`` and ``crypto-monitor replay``.

``record --config FILE --out DIR [--duration S]`` records the raw traffic of every enabled live
exchange of the config in cryptofeed's raw-data format (``EXCHANGE.0``, ``EXCHANGE.http.N.M``,
``EXCHANGE.ws.N.M``), until ``--duration`` seconds have passed or SIGINT/SIGTERM.

``replay --exchange NAME FILE... [--speed max|1x|10x] [--json] [--config FILE]`` runs the
recording through the same adapter into the full daemon (``build_app``: whatever the config
enables). Without ``--config`` the API is off and the database is a temporary SQLite file.
``--json`` prints one JSON object as the last line:
``{"exchange", "messages", "events": {channel: callbacks}, "anomalies", "seconds"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptomon.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    run_async,
    settings_from_args,
    setup_logging,
)


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    rec = subparsers.add_parser(
        "record",
        parents=[parent],
        help="record raw exchange traffic in cryptofeed's raw-data format",
    )
    rec.add_argument("--out", required=True, metavar="DIR", help="directory for the recording")
    rec.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    rec.set_defaults(handler=cmd_record)
    rep = subparsers.add_parser(
        "replay",
        parents=[parent],
        help="replay recorded exchange traffic through the full pipeline",
    )
    rep.add_argument("--exchange", required=True, metavar="NAME", help="exchange of the recording")
    rep.add_argument(
        "files", nargs="+", metavar="FILE", help="EXCHANGE.0, EXCHANGE.http.*, EXCHANGE.ws.*"
    )
    rep.add_argument(
        "--speed", default="max", metavar="max|1x|10x", help="replay pace (default max)"
    )
    rep.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    rep.set_defaults(handler=cmd_replay)


def _usage(message: str) -> int:
    sys.stderr.write(f"crypto-monitor: {message}\n")
    return EXIT_USAGE


# --------------------------------------------------------------------------- replay


def _progress_bar(done: int, total: int) -> None:
    width = 40
    frac = done / total if total else 1.0
    filled = int(frac * width)
    sys.stderr.write(f"\rreplay [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}%")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_replay(args: argparse.Namespace) -> int:
    from cryptomon.config import ExchangeConfig
    from cryptomon.errors import ConfigError
    from cryptomon.feeds.replay import parse_speed, replay_feed_class

    try:
        parse_speed(args.speed)
    except ConfigError:
        return _usage(
            f"--speed: expected max or a positive multiple such as 1x or 10x, got {args.speed!r}"
        )
    name = args.exchange.strip().lower()
    try:
        replay_feed_class(name)
    except ConfigError as exc:
        expected = exc.problems[0].expected
        return _usage(f"--exchange: expected {expected}; got {name!r}")
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        return _usage(f"recording file(s) not found: {', '.join(missing)}")
    settings = settings_from_args(args)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if getattr(args, "config", None) is None:
        tmp = tempfile.TemporaryDirectory(prefix="cryptomon-replay-")
        settings.api.enabled = False
        settings.database.url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'replay.db'}"
    base = next((e for e in settings.exchanges if e.name == name), None)
    fields = base.model_dump() if base is not None else {"name": name}
    fields.update(source="replay", files=list(args.files), replay_speed=args.speed, enabled=True)
    settings.exchanges = [ExchangeConfig.model_validate(fields)]
    setup_logging(settings)
    try:
        return run_async(_replay(settings, name, args))
    finally:
        if tmp is not None:
            tmp.cleanup()


async def _replay(settings: Any, name: str, args: argparse.Namespace) -> int:
    from cryptomon.app import build_app
    from cryptomon.events import Anomaly
    from cryptomon.hub import Hub

    hub = Hub()
    anomalies = [0]
    hub.subscribe(
        Anomaly, lambda _e: anomalies.__setitem__(0, anomalies[0] + 1), name="replay.count"
    )
    app = build_app(settings, hub=hub)
    manager = app.services.feeds
    assert manager is not None
    feed: Any = manager.source(name)
    if sys.stderr.isatty() and not args.json:
        feed.progress = _progress_bar
    t0 = time.perf_counter()
    code = await app.run(until=manager.wait_replays)
    seconds = time.perf_counter() - t0
    if feed.error is not None:
        sys.stderr.write(f"crypto-monitor: replay failed: {feed.error}\n")
        code = code or 1
    summary = {
        "exchange": name,
        "messages": feed.messages,
        "events": feed.counts(),
        "anomalies": anomalies[0],
        "seconds": round(seconds, 3),
    }
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        sys.stdout.write(
            f"replayed {feed.messages} messages of {name} in {summary['seconds']}s: "
            + ", ".join(f"{k}={v}" for k, v in summary["events"].items())
            + f"; anomalies={anomalies[0]}; parse errors={feed.health.parse_errors}\n"
        )
    return int(code)


# --------------------------------------------------------------------------- record


def cmd_record(args: argparse.Namespace) -> int:
    if getattr(args, "config", None) is None:
        return _usage("record needs --config FILE naming the exchanges to record")
    if args.duration is not None and args.duration <= 0:
        return _usage(f"--duration: expected a positive number of seconds, got {args.duration}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _usage(f"--out: expected a directory, got the file {str(out)!r}")
    settings = settings_from_args(args)
    live = [e for e in settings.exchanges if e.enabled and e.source == "live"]
    if not live:
        return _usage("record: the config has no enabled live exchange to record")
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(settings)
    return run_async(_record(live, out, args.duration))


async def _record(configs: list[Any], out: Path, duration: float | None) -> int:
    import asyncio
    import contextlib
    import signal

    from cryptofeed.raw_data_collection import AsyncFileCallback

    from cryptomon.clock import LiveClock
    from cryptomon.feeds.manager import FeedManager
    from cryptomon.feeds.registry import load_plugins, plugin_for
    from cryptomon.hub import Hub

    hub, clock = Hub(), LiveClock()
    recorder = AsyncFileCallback(str(out))
    plugins = load_plugins()
    sources = []
    for cfg in configs:
        plugin: Any = plugin_for(cfg, plugins)
        plugin.validate(cfg)
        from cryptomon.feeds.cryptofeed import CryptofeedFeed

        sources.append(
            CryptofeedFeed(
                cfg, feed_class=plugin.feed_class(cfg), hub=hub, clock=clock, raw_data=recorder
            )
        )
    manager = FeedManager(list(sources), hub=hub, clock=clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await manager.start()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration)
    finally:
        await manager.stop()
        recorder.stop()
    files = sorted(p.name for p in await asyncio.to_thread(lambda: list(out.iterdir())))
    total = sum(s.health.snapshot()["messages"] for s in sources)
    if total == 0:
        names = ", ".join(c.name for c in configs)
        sys.stderr.write(
            f"crypto-monitor: record captured nothing from {names}: is the exchange reachable "
            "and are the symbols listed there? (see the log above)\n"
        )
        return EXIT_FAILURE
    sys.stdout.write(f"recorded {total} callbacks into {out}: {', '.join(files)}\n")
    return EXIT_OK
