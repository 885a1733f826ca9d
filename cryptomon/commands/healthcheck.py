"""``crypto-monitor healthcheck``: is the daemon of this config alive? (Docker's HEALTHCHECK)

It follows the config the daemon runs with (the same file and ``CRYPTOMON_*`` variables):
with the API on a fixed port it asks ``GET /health`` there, over HTTPS when
``api.tls_cert_file`` is set (the certificate is not verified: the probe sends nothing
secret and only asks whether this host's own daemon answers), at ``api.host`` (a wildcard
bind is asked on loopback) with a ``Host`` header ``api.allowed_hosts`` admits. A collector
(``bus.role: collector``, or ``--role collector`` as given to ``run``) answers ``/health``
over plain HTTP, 503 while NATS is away. With
``api.enabled: false`` or ``api.port: 0`` it reads the heartbeat the daemon's event loop
writes in ``data_dir`` instead (:mod:`cryptomon.heartbeat`).

One line on stdout, ``healthy: ...`` or ``unhealthy: ...``; exit 0 or 1, never 2 (Docker
reserves it): a config that does not load is unhealthy too, with its first problem.
"""

from __future__ import annotations

import argparse
import json
import math
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

from cryptomon.commands.support import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, settings_from_args
from cryptomon.config import ROLES, ApiConfig, Settings
from cryptomon.errors import ConfigError

# a wildcard bind is asked on loopback
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - not a bind


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    from cryptomon.heartbeat import HEARTBEAT_MAX_AGE_S

    check = subparsers.add_parser(
        "healthcheck",
        parents=[parent],
        help="exit 0 if the daemon of this config answers (its /health, or its heartbeat "
        "file when the API is off), else 1; one line saying why (Docker's HEALTHCHECK)",
        description="Probe the running daemon the way its config says: GET /health over "
        "http or https (api.tls_cert_file; the certificate is not verified) at api.host and "
        "api.port, or, with api.enabled false or api.port 0, the heartbeat file the daemon "
        "rewrites in data_dir every few seconds. Exit 0 healthy, 1 unhealthy.",
    )
    check.add_argument(
        "--role",
        choices=ROLES,
        default=None,
        help="the daemon's `run --role` when it was given one (a collector answers over "
        "plain HTTP); default bus.role",
    )
    check.add_argument(
        "--timeout",
        type=float,
        default=4.0,
        metavar="S",
        help="seconds to wait for /health (default 4)",
    )
    check.add_argument(
        "--max-age",
        type=float,
        default=HEARTBEAT_MAX_AGE_S,
        metavar="S",
        help=f"oldest heartbeat still healthy, in seconds (default {HEARTBEAT_MAX_AGE_S:g})",
    )
    check.set_defaults(handler=cmd_healthcheck)


def cmd_healthcheck(args: argparse.Namespace) -> int:
    for flag, value in (("--timeout", args.timeout), ("--max-age", args.max_age)):
        if not (math.isfinite(value) and value > 0):
            sys.stderr.write(
                f"crypto-monitor healthcheck: {flag}: expected a positive, finite number of "
                f"seconds, got {value:g}\n"
            )
            return EXIT_USAGE  # the command line itself, as argparse's own errors
    from cryptomon.commands.run import with_role

    try:
        settings = with_role(settings_from_args(args, offline=True), args.role)
    except ConfigError as exc:
        return _say(False, f"invalid configuration: {str(exc).splitlines()[0]}")
    from cryptomon.heartbeat import api_probed

    if api_probed(settings.api):
        return _probe(settings, timeout_s=args.timeout)
    return _heartbeat(settings, max_age_s=args.max_age)


def _say(healthy: bool, reason: str) -> int:
    sys.stdout.write(f"{'healthy' if healthy else 'unhealthy'}: {reason}\n")
    return EXIT_OK if healthy else EXIT_FAILURE


def probe_url(settings: Settings) -> str:
    """``http(s)://HOST:PORT/health`` of the daemon of ``settings`` (the API on a port)."""
    api = settings.api
    tls = settings.bus.role != "collector" and api.tls_cert_file is not None
    host = _WILDCARDS.get(api.host, api.host)
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{api.port}/health"


def _host_header(api: ApiConfig) -> str | None:
    """A ``Host`` the API admits (its DNS-rebinding check): the first of
    ``api.allowed_hosts`` when they do not admit the probed address; None otherwise."""
    allowed = [h.strip().strip("[]").lower() for h in api.allowed_hosts]
    host = _WILDCARDS.get(api.host, api.host).lower()
    if not allowed or "*" in allowed or host in allowed:
        return None
    name = allowed[0]
    return f"[{name}]:{api.port}" if ":" in name else f"{name}:{api.port}"


def _probe(settings: Settings, *, timeout_s: float) -> int:
    url = probe_url(settings)
    # the URL is built above: http:// or https:// only
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    host = _host_header(settings.api)
    if host is not None:
        request.add_header("Host", host)
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as resp:  # noqa: S310
            body = resp.read(65_536)
            status = resp.status
    except urllib.error.HTTPError as exc:
        return _say(False, f"{url} answered {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or exc
        return _say(False, f"{url} did not answer: {why}")
    try:
        answer = json.loads(body)
    except ValueError:
        return _say(False, f"{url} answered {status} with a body that is not JSON")
    if not isinstance(answer, dict):
        return _say(False, f"{url} answered {status} with {type(answer).__name__} JSON")
    if answer.get("role") == "collector":  # its own /health: 503 while NATS is away
        return _say(True, f"{url} answered {status} (a collector, NATS connected)")
    if answer.get("status") != "ok":
        return _say(False, f"{url} answered {status} with status {answer.get('status')!r}")
    return _say(True, f"{url} answered {status} ok")


def _heartbeat(settings: Settings, *, max_age_s: float) -> int:
    from cryptomon.heartbeat import HEARTBEAT_FILE, read_beat

    path = settings.data_dir / HEARTBEAT_FILE
    why = "api.enabled is false" if not settings.api.enabled else "api.port is 0"
    try:
        beat = read_beat(settings.data_dir)
    except (OSError, ValueError) as exc:
        return _say(False, f"cannot read the heartbeat ({why}): {exc}")
    if beat is None:
        return _say(
            False,
            f"no heartbeat file at {path} ({why}): the daemon is not running, or has not "
            "finished starting",
        )
    pid = f" (pid {beat.pid})" if beat.pid is not None else ""
    if beat.age_s > max_age_s:
        return _say(
            False,
            f"the daemon's heartbeat{pid} at {path} is {beat.age_s:.0f} s old (at most "
            f"{max_age_s:g} s expected): its event loop is stuck or it stopped",
        )
    return _say(True, f"heartbeat{pid} {beat.age_s:.1f} s old at {path} ({why})")
