"""``crypto-monitor api token [--name N] [--scopes read,trade]`` and ``crypto-monitor api
openapi [--output FILE]``.

``token`` prints a new random bearer token (give it to the client) and the config entry that
stores only its SHA-256 (put it in ``api.tokens``). ``openapi`` writes the OpenAPI 3.1 document
the server would serve.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cryptomon.commands.support import EXIT_OK, EXIT_USAGE

_SCOPES = ("read", "trade", "admin")


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    api = subparsers.add_parser(
        "api", parents=[parent], help="API helpers: new bearer token, OpenAPI document"
    )
    sub = api.add_subparsers(dest="api_command", metavar="ACTION")
    tok = sub.add_parser("token", parents=[parent], help="new bearer token + its config entry")
    tok.add_argument("--name", default="client", help="token name shown in logs and audit")
    tok.add_argument(
        "--scopes", default="read", help="comma-separated: read, trade, admin (default read)"
    )
    tok.set_defaults(handler=cmd_token)
    doc = sub.add_parser("openapi", parents=[parent], help="write the OpenAPI 3.1 document")
    doc.add_argument("--output", "-o", metavar="FILE", help="file to write (default stdout)")
    doc.set_defaults(handler=cmd_openapi)
    api.set_defaults(handler=_usage())


def _usage() -> Any:
    def handler(args: argparse.Namespace) -> int:
        sys.stderr.write(
            "crypto-monitor api: choose an action: token, openapi (see crypto-monitor api --help)\n"
        )
        return EXIT_USAGE

    return handler


def cmd_token(args: argparse.Namespace) -> int:
    import re
    import secrets

    import yaml

    from cryptomon.api.auth import hash_token

    scopes = [s.strip() for s in str(args.scopes).split(",") if s.strip()]
    bad = [s for s in scopes if s not in _SCOPES]
    if bad or not scopes:
        sys.stderr.write(
            f"crypto-monitor api token: --scopes {args.scopes!r}: expected a comma-separated "
            f"list of {', '.join(_SCOPES)}\n"
        )
        return EXIT_USAGE
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", args.name):
        sys.stderr.write(
            f"crypto-monitor api token: --name {args.name!r}: expected 1-64 letters, digits "
            "or _ . : -\n"
        )
        return EXIT_USAGE
    token = secrets.token_urlsafe(32)
    entry = {"name": args.name, "token_sha256": hash_token(token), "scopes": scopes}
    sys.stdout.write(f"token: {token}\n")
    sys.stdout.write("# add under api.tokens (only the hash is stored):\n")
    sys.stdout.write(yaml.safe_dump([entry], sort_keys=False))
    return EXIT_OK


def cmd_openapi(args: argparse.Namespace) -> int:
    import json

    from cryptomon import __version__
    from cryptomon.api.openapi import build_openapi
    from cryptomon.api.rest import all_routes
    from cryptomon.commands.support import settings_from_args

    # The document is the same for every config, but a --config given is read and checked
    # like every other command does (a bad file exits 2 naming the problem).
    settings_from_args(args)

    text = json.dumps(build_openapi(all_routes(), version=__version__), indent=2) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            sys.stderr.write(
                f"crypto-monitor api openapi: cannot write {args.output!r} ({exc.strerror})\n"
            )
            return EXIT_USAGE
    else:
        sys.stdout.write(text)
    return EXIT_OK
