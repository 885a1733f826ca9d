"""``crypto-monitor replay``: recorded exchange traffic through the full daemon.

``replay [--exchange NAME] FILE... [--speed max|1x|10x] [--json] [--config FILE]`` runs the
recording through the same adapter into the full daemon (``build_app``: whatever the config
enables). Without ``--exchange`` the exchange is the one the files' names say
(``BINANCE.ws.1.0``). Files that are not a recording, or a recording without its websocket
traffic, are refused before anything starts. Without ``--config`` the API is off and the
database is a temporary SQLite file.
``--json`` prints one JSON object as the last line:
``{"exchange", "messages", "events": {channel: callbacks}, "anomalies", "seconds"}``.
REST requests (book snapshots) the recording held no answer for are named on stderr.
Alerts are routed on the recording's time (dedup window, digest interval, quiet hours: as the
live daemon would have on that market), the channels' rate limits on the clock.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptomon.commands.support import (
    ignore_sighup_until_running,
    process_exits_after,
    run_daemon,
    settings_from_args,
    setup_logging,
    usage_error,
)


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    rep = subparsers.add_parser(
        "replay",
        parents=[parent],
        help="replay recorded exchange traffic through the full pipeline",
    )
    rep.add_argument(
        "--exchange",
        metavar="NAME",
        help="exchange of the recording (default: the one the files' names say, e.g. BINANCE.0)",
    )
    rep.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="EXCHANGE.0, EXCHANGE.http.*, EXCHANGE.ws.*, or a folder holding them",
    )
    rep.add_argument(
        "--speed", default="max", metavar="max|1x|10x", help="replay pace (default max)"
    )
    rep.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    rep.set_defaults(handler=cmd_replay)


def _progress_bar(done: int, total: int) -> None:
    width = 40
    frac = done / total if total else 1.0
    filled = int(frac * width)
    sys.stderr.write(f"\rreplay [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}%")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _recorded_exchange(files: list[str], feed_id: str) -> str | None:
    """The exchange whose recording ``files`` are when it is not the one of ``feed_id``: their
    names start with the recording exchange's id (``BINANCE.0``), and another exchange's
    files fail deep inside its parser. None when they match, or when the names are not a
    known exchange's (renamed files are taken as given)."""
    from cryptomon.errors import ConfigError
    from cryptomon.feeds.replay import replay_feed_class

    if any(Path(f).name.upper().startswith(f"{feed_id.upper()}.") for f in files):
        return None
    # instruments.EXCHANGE.json (the specs `record` saves beside them) says nothing here
    names = [Path(f).name for f in files if not Path(f).name.startswith("instruments.")]
    prefixes = {n.split(".")[0].lower() for n in names}
    if len(prefixes) != 1:
        return None
    (prefix,) = prefixes
    try:
        replay_feed_class(prefix)
    except ConfigError:
        return None
    return prefix


def _named_exchanges(files: list[str]) -> tuple[list[str], list[str]]:
    """The exchanges known to cryptofeed that ``files``' names say (``BINANCE.ws.1.0``: the
    prefix; a folder: its ``EXCHANGE.0`` files) and the names that say none."""
    from cryptomon.errors import ConfigError
    from cryptomon.feeds.replay import replay_feed_class

    names: list[str] = []
    for name in files:
        path = Path(name)
        if path.is_dir():
            names += sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix == ".0")
        elif not path.name.startswith("instruments."):  # the specs `record` saves beside them
            names.append(path.name)
    known: set[str] = set()
    unknown: list[str] = []
    for item in names:
        try:
            known.add(replay_feed_class(item.split(".")[0]).id)
        except ConfigError:
            unknown.append(item)
    return sorted(known), unknown


def _inferred_exchange(files: list[str]) -> str:
    """The exchange the files' names say; ValueError naming them when they say none, or
    several."""
    known, unknown = _named_exchanges(files)
    if len(known) == 1:
        return known[0].lower()
    if known:
        raise ValueError(
            f"the files are recordings of {len(known)} exchanges ({', '.join(known)}): "
            "give --exchange NAME to choose one"
        )
    problem = _not_a_recording([f for f in files if Path(f).is_file()])
    raise ValueError(
        problem
        or f"--exchange NAME is needed: the file names ({', '.join(unknown) or 'none'}) name no "
        "exchange known to cryptofeed (a recording's files are EXCHANGE.0, EXCHANGE.ws.N.M, "
        "EXCHANGE.http.N.M)"
    )


_REST_LINE = re.compile(rb"\S+ -> \S+: ")  # URL -> TIMESTAMP: JSON


def _not_a_recording(files: list[str]) -> str | None:
    """What is wrong with the first of ``files``' ``EXCHANGE.0`` files (those neither
    ``.ws.``, ``.http.`` nor the specs) that is not one of a cryptofeed raw-data recording:
    its lines are ``URL -> TIMESTAMP: JSON`` (REST answers) and a ``configuration:`` line."""
    for name in files:
        path = Path(name)
        if not _is_main(path):
            continue
        data = path.read_bytes()
        first = data.split(b"\n", 1)[0]
        expected = (
            f"{name}: expected a cryptofeed raw-data recording's EXCHANGE.0 (lines "
            "'URL -> TIMESTAMP: JSON' and a 'configuration:' line)"
        )
        if not data.strip():
            return f"{expected}; the file is empty"
        if not (_REST_LINE.match(first) or first.startswith(b"configuration: ")):
            shown = first[:60].decode("utf-8", "replace")
            return f"{expected}; line 1 is not 'URL -> TIMESTAMP: JSON': {shown!r}"
        if not (data.startswith(b"configuration: ") or b"\nconfiguration: " in data):
            return f"{expected}; it has no 'configuration:' line"
    return None


def _is_main(path: Path) -> bool:
    """Whether ``path`` is taken as the recording's ``EXCHANGE.0`` (as the replay reads it:
    a renamed one too): neither websocket, REST nor the specs saved beside them."""
    name = path.name
    return not (".ws." in name or ".http." in name or name.startswith("instruments."))


def _part_left_out(files: list[str], feed_id: str) -> str | None:
    """What to say when the files hold no websocket traffic (``EXCHANGE.ws.*``: everything a
    replay replays) or no ``EXCHANGE.0`` (the recorded subscription), and which such files
    lie beside the given ones."""
    paths = [Path(f) for f in files]
    prefix = f"{feed_id.upper()}."
    if not any(".ws." in p.name for p in paths):
        part, wanted = f"{prefix}ws.*", f"{prefix}WS."
        missing = f"no websocket traffic given: the recording's {part} files are needed"
    elif not any(_is_main(p) for p in paths):
        part, wanted = f"{prefix}0", f"{prefix}0"
        missing = f"no {part} given: the recording's {part} (its subscription) is needed"
    else:
        return None
    beside = _siblings([p for p in paths if p.name.upper().startswith(prefix)], wanted)
    if beside:
        folders = sorted({str(p.parent) for p in beside})
        return (
            f"{missing}; beside the given files: {', '.join(str(p) for p in beside)}: add "
            f"them, or give the folder ({', '.join(folders)})"
        )
    return f"{missing} (none was given, none lies beside the given files)"


def _folders_expanded(files: list[str], feed_id: str) -> list[str]:
    """``files`` with each folder replaced by its recording files of ``feed_id``'s exchange
    (``BINANCE.0``, ``BINANCE.http.*``, ``BINANCE.ws.*``: what ``record --out`` wrote there);
    ValueError naming the recordings a folder holds when none is that exchange's."""
    prefix = f"{feed_id.upper()}."
    out: list[str] = []
    for name in files:
        folder = Path(name)
        if not folder.is_dir():
            out.append(name)
            continue
        inside = sorted(p for p in folder.iterdir() if p.is_file())
        mine = [str(p) for p in inside if p.name.upper().startswith(prefix)]
        if not mine:
            held = sorted({p.name.split(".")[0] for p in inside if p.name.endswith(".0")})
            raise ValueError(
                f"{name} holds no {prefix}* recording files (it holds: {', '.join(held) or 'none'})"
            )
        out.extend(mine)
    return out


def _http_files_left_out(files: list[str], feed_id: str) -> list[Path]:
    """The recording's ``EXCHANGE.http.*`` files (its REST answers: book snapshots) lying
    beside the given ``EXCHANGE.0`` when none was given: without them every book message
    that needs a snapshot is dropped."""
    paths = [Path(f) for f in files]
    if any(".http." in p.name for p in paths) or not any(".ws." in p.name for p in paths):
        return []  # given, or nothing replayed asks for them
    prefix = f"{feed_id.upper()}."
    return _siblings([p for p in paths if p.name.upper() == f"{prefix}0"], f"{prefix}HTTP.")


def _siblings(given: list[Path], start: str) -> list[Path]:
    """The files beside ``given`` whose upper-cased names start with ``start``."""
    return sorted(
        {
            sibling
            for path in given
            for sibling in path.parent.iterdir()
            if sibling.name.upper().startswith(start) and sibling.is_file()
        }
    )


def cmd_replay(args: argparse.Namespace) -> int:
    ignore_sighup_until_running(args)  # the running replay logs that it does not reload
    from cryptomon.config import ExchangeConfig
    from cryptomon.errors import ConfigError
    from cryptomon.feeds.replay import parse_speed, replay_feed_class

    try:
        parse_speed(args.speed)
    except ConfigError:
        return usage_error(
            f"--speed: expected max or a positive multiple such as 1x or 10x, got {args.speed!r}"
        )
    if args.exchange is None:
        try:
            args.exchange = _inferred_exchange(args.files)
        except ValueError as exc:
            return usage_error(str(exc))
    name = args.exchange.strip().lower()
    try:
        feed_id = replay_feed_class(name).id
    except ConfigError as exc:
        expected = exc.problems[0].expected
        return usage_error(f"--exchange: expected {expected}; got {name!r}")
    try:
        args.files = _folders_expanded(args.files, feed_id)
    except ValueError as exc:
        return usage_error(str(exc))
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        return usage_error(f"recording file(s) not found: {', '.join(missing)}")
    problem = _not_a_recording(args.files)
    if problem is not None:
        return usage_error(problem)
    other = _recorded_exchange(args.files, feed_id)
    if other is not None:
        return usage_error(
            f"--exchange {name}: the files are a {other.upper()} recording "
            f"({Path(args.files[0]).name}, ...); give --exchange {other}"
        )
    left = _part_left_out(args.files, feed_id)
    if left is not None:
        return usage_error(left)
    left_out = _http_files_left_out(args.files, feed_id)
    if left_out:
        return usage_error(
            f"the recording's REST answers ({', '.join(str(p) for p in left_out)}) were not "
            "given: add them to the files; without them the book messages needing a "
            "snapshot are dropped"
        )
    settings = settings_from_args(args)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if getattr(args, "config", None) is None:
        tmp = tempfile.TemporaryDirectory(prefix="cryptomon-replay-")
        settings = settings.model_copy(
            update={
                "api": settings.api.model_copy(update={"enabled": False}),
                "database": settings.database.model_copy(
                    update={"url": f"sqlite+aiosqlite:///{Path(tmp.name) / 'replay.db'}"}
                ),
            }
        )
    base = next((e for e in settings.exchanges if e.name == name), None)
    fields = base.model_dump() if base is not None else {"name": name}
    fields.update(source="replay", files=list(args.files), replay_speed=args.speed, enabled=True)
    settings = settings.model_copy(update={"exchanges": [ExchangeConfig.model_validate(fields)]})
    setup_logging(settings)

    async def replay_then_clean() -> int:
        try:
            return await _replay(settings, name, args)
        finally:
            if tmp is not None:
                tmp.cleanup()

    # the exit follows the stop, as the daemon's: Ctrl-C during a first start's kernel
    # compile does not wait for the compile thread
    return run_daemon(replay_then_clean(), exiting=process_exits_after(args))


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
    if code and feed.messages == 0 and feed.error is None:
        # a component failed to start (a database that refuses connections): no summary of
        # a replay that never ran
        sys.stderr.write(
            "crypto-monitor replay: nothing was replayed: the pipeline did not start "
            "(daemon.start_failed in the log above says why)\n"
        )
        return int(code)
    if feed.error is not None:
        sys.stderr.write(f"crypto-monitor: replay failed: {feed.error}\n")
        code = code or 1
    missing_rest = feed.missing_rest_problem()
    if missing_rest is not None:
        sys.stderr.write(f"crypto-monitor replay: warning: {missing_rest}\n")
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
            + f"; anomalies={anomalies[0]}; parse errors={feed.health.parse_errors}"
            + (
                f" ({feed.missing_rest} without a recorded REST answer: see above)"
                if feed.missing_rest
                else ""
            )
            + "\n"
        )
    return int(code)
