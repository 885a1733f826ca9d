"""``crypto-monitor record``: raw exchange traffic in cryptofeed's raw-data format.

``record --config FILE --out DIR [--duration S]`` records the raw traffic of every enabled live
exchange of the config in cryptofeed's raw-data format (``EXCHANGE.0``, ``EXCHANGE.http.N.M``,
``EXCHANGE.ws.N.M``), until ``--duration`` seconds have passed or SIGINT/SIGTERM; then the
venues' instrument specs beside them (``instruments.EXCHANGE.json``), so a replay knows the
units of every market offline.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from cryptomon.commands.progress import ProgressBar
from cryptomon.commands.support import (
    EXIT_FAILURE,
    EXIT_OK,
    run_async,
    settings_from_args,
    setup_logging,
    usage_error,
)
from cryptomon.tasks import cancel_and_wait


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


def cmd_record(args: argparse.Namespace) -> int:
    if getattr(args, "config", None) is None:
        return usage_error("record needs --config FILE naming the exchanges to record")
    if args.duration is not None and not 0 < args.duration < math.inf:  # NaN too
        return usage_error(
            f"--duration: expected a positive, finite number of seconds, got {args.duration}"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return usage_error(f"--out: expected a directory, got the file {str(out)!r}")
    settings = settings_from_args(args)
    live = [e for e in settings.exchanges if e.enabled and e.source == "live"]
    if not live:
        return usage_error("record: the config has no enabled live exchange to record")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, a read-only or missing mount, ...
        return usage_error(f"--out: cannot create the directory {str(out)!r} ({exc.strerror})")
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
    from cryptomon.feeds.specs import save_recording_specs
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
    bar = ProgressBar("record")  # on a terminal only: elapsed (of --duration) and messages
    ticker = loop.create_task(_show(bar, sources, duration)) if bar.enabled else None
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration)
    finally:
        await cancel_and_wait(ticker)
        bar.close()
        await manager.stop()
        recorder.stop()
    await save_recording_specs(configs, out)  # units for the replay, offline
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


async def _show(bar: ProgressBar, sources: list[Any], duration: float | None) -> None:
    """Redraw the progress line twice a second: elapsed seconds and messages recorded."""
    import asyncio
    import time

    start = time.monotonic()
    while True:
        messages = sum(s.health.snapshot()["messages"] for s in sources)
        bar.update(time.monotonic() - start, duration, extra=f"{messages} messages")
        await asyncio.sleep(0.5)
