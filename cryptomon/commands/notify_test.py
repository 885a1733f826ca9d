"""``crypto-monitor notify-test``: send a test message to each configured channel."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cryptomon.commands.support import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    add_command,
    configured,
    run_async,
)


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    p = add_command(
        subparsers,
        parent,
        "notify-test",
        help="send a test notification to every alerts channel (or one) and report each result",
        handler=cmd_notify_test,
    )
    p.add_argument("--channel", metavar="NAME", default=None, help="only this channel")


def cmd_notify_test(args: argparse.Namespace) -> int:
    settings = configured(args)
    channels = [c.name for c in settings.alerts.channels]
    if not channels:
        sys.stderr.write(
            "crypto-monitor notify-test: no channels configured under alerts.channels\n"
        )
        return EXIT_USAGE
    if args.channel is not None and args.channel not in channels:
        sys.stderr.write(
            f"crypto-monitor notify-test: unknown channel {args.channel!r}; "
            f"configured channels: {', '.join(channels)}\n"
        )
        return EXIT_USAGE

    async def main() -> int:
        from cryptomon.clock import LiveClock
        from cryptomon.hub import Hub
        from cryptomon.notify.router import NotificationRouter

        router = NotificationRouter(hub=Hub(), clock=LiveClock(), config=settings.alerts)
        results = await router.send_test(args.channel)
        width = max(len(n) for n in results)
        for name, res in results.items():
            where = router.channels[name].sender.redacted_url
            if res["ok"]:
                sys.stdout.write(f"{name:<{width}}  ok      {where}\n")
            else:
                sys.stdout.write(f"{name:<{width}}  FAILED  {where}: {res['error']}\n")
        failed = sum(1 for r in results.values() if not r["ok"])
        sys.stdout.write(f"{len(results) - failed}/{len(results)} channel(s) reachable\n")
        return EXIT_OK if failed == 0 else EXIT_FAILURE

    return run_async(main())
