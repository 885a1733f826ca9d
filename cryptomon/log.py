"""Logging: the only ``structlog.configure()`` call (DESIGN.md 3.9).

Console renderer on a TTY, JSON lines otherwise (``logging.format: auto``). Logs go to stderr so
commands that print results (``--json``) keep stdout clean. A redaction processor removes
secrets from every event: the config's secret values, ``key=``/``secret=``/``token=``/
``password=`` pairs, passwords inside URLs (``postgresql://user:pw@``) and the credential part of
notification URLs (``tgram://TOKEN/CHAT``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

REDACTED = "***"

_PAIR_RE = re.compile(
    r"(?i)\b((?:api[_-]?)?(?:key|secret|token|password|passwd|pwd|passphrase|apikey))"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}]+)"
)
# by the URL's shape, not by the password's text: a one-letter password is hidden without
# scrubbing that letter from the rest of the line; a ``/`` in the password hides it too
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/@:]*):((?:(?!://)[^\s@])*)@")
# apprise-style URLs whose first path segments are credentials
_NOTIFY_SCHEMES = (
    "tgram|telegram|wecombot|feishu|lark|dingtalk|slack|discord|twilio|json|jsons|xml|xmls|"
    "form|forms|pover|pbul|msteams|mmost|mmosts|rocket|rockets|gotify|gotifys|ntfy|ntfys|"
    "signal|signals|matrix|matrixs|mailto|mailtos|sns|bark|barks|line|zulip|kook|wxpusher|serverchan|schan"
)
_NOTIFY_RE = re.compile(rf"(?i)\b({_NOTIFY_SCHEMES})://[^\s\"']+")


def redact_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host`` URLs."""
    return _USERINFO_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", url)


def redact_notify_url(url: str) -> str:
    """``tgram://TOKEN/CHAT`` -> ``tgram://***``; any other URL loses its password only."""
    scheme, sep, _ = url.partition("://")
    if sep and re.fullmatch(_NOTIFY_SCHEMES, scheme.lower()):
        return f"{scheme}://{REDACTED}"
    return redact_url(url)


class Redactor:
    """structlog processor that scrubs secrets from every string in the event dict."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for s in secrets:
            if s and len(s) >= 4 and s not in self.secrets:
                self.secrets.append(s)
        # longest first so a secret containing another is replaced whole
        self.secrets.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        if "://" in text:
            text = _NOTIFY_RE.sub(lambda m: redact_notify_url(m.group(0)), text)
            text = redact_url(text)
        if "=" in text or ":" in text:
            text = _PAIR_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        return text

    def _value(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            if _SECRET_KEY_RE.search(key):
                return REDACTED
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._value(key, v) for v in value)
        return value

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if key == "exc_info":
                continue
            event_dict[key] = self._value(key, value)
        return event_dict


_SECRET_KEY_RE = re.compile(r"(?i)^(api_?key|secret|token|password|passphrase)$")


def _library_exc_to_error(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Library log records keep their exception as one ``error`` field, not a traceback.

    cryptofeed, ccxt and aiohttp log expected failures (an unreachable exchange, a dropped
    socket) with ``exc_info``; those are retried and must not flood the log with tracebacks.
    At DEBUG level the traceback is kept.
    """
    exc_info = event_dict.get("exc_info")
    if exc_info and logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        del event_dict["exc_info"]
        if isinstance(exc, BaseException):
            event_dict.setdefault("error", f"{type(exc).__name__}: {exc}"[:500])
    return event_dict


_PLAIN = frozenset({str, int, float, bool, type(None)})
# json.dumps' own C encoder with its default options (ASCII escapes, NaN allowed, ", " and
# ": "), built once instead of per line; no circular-reference bookkeeping, which values
# without containers never need. None where the interpreter has no C encoder.
_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_ENCODE = (
    None
    if _make_encoder is None
    else _make_encoder(
        None, repr, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
)


def flat_json(event: dict[str, Any]) -> str | None:
    """``json.dumps(event)`` for an event whose values are all plain ``str``, ``int``,
    ``float``, ``bool`` or ``None`` (exact types, so no ``default`` is ever called); None for
    any other event, or without json's C encoder (the caller renders it the usual way)."""
    if _ENCODE is None:
        return None
    plain = _PLAIN
    for value in event.values():
        if value.__class__ not in plain:
            return None
    return "".join(_ENCODE(event, 0))


def _plain_json_renderer(renderer: Any) -> bool:
    """Whether ``renderer`` is structlog's ``JSONRenderer`` on ``json.dumps`` with no option
    but its fallback ``default`` (never called for plain values): :func:`flat_json` writes
    its text."""
    return (
        isinstance(renderer, structlog.processors.JSONRenderer)
        and getattr(renderer, "_dumps", None) is json.dumps
        and set(getattr(renderer, "_dumps_kw", {"?": 0})) == {"default"}
    )


class AccessLog:
    """The API's access log line (``api.request``), cheap: one per request.

    :attr:`enabled` is False when the level filters INFO out, so the caller builds nothing.
    While the processor chain is the one :func:`configure` installed (JSON lines), the line is
    made directly: the fields given, ``event``, ``level`` and ``timestamp`` (the same keys,
    order and rendering as a structlog line), its strings scrubbed by the same redactor, and
    written by one PrintLogger made at configuration (structlog's lock per file): no bound
    logger, PrintLogger or event-dict copy per request, and (structlog's plain JSON renderer)
    the line's text written by :func:`flat_json`. The lines of one event-loop turn are
    written together at its end (``loop.call_soon``; at once outside a loop): a write and a
    flush are system calls that give up the GIL, and taking it back from a busy thread (the
    SQLite readers) cost ~0.7 ms per request under load. Otherwise (console
    format, a chain replaced in place such as ``structlog.testing.capture_logs``, structlog
    configured since) the line goes through structlog as any other.
    """

    def __init__(self) -> None:
        self.enabled = True
        self._fast: tuple[list[Any], int, Any, Redactor, Any] | None = None
        self._flat = False  # the renderer's text is flat_json's for plain events
        self._pending: list[str] = []

    def setup(
        self, level: int, chain: list[Any], renderer: Any, redactor: Redactor, out: TextIO
    ) -> None:
        """Called by :func:`configure`: the level, and the chain the fast path stands for
        (``renderer`` None: no fast path)."""
        self.flush()
        self.enabled = level <= logging.INFO
        fast = (chain, len(chain), renderer, redactor, structlog.PrintLogger(out))
        self._fast = None if renderer is None else fast
        self._flat = _plain_json_renderer(renderer)

    def __call__(self, **fields: Any) -> None:
        """Log one ``api.request`` line with ``fields`` (strings, numbers, None)."""
        fast = self._fast
        if (
            fast is None
            or _processors() is not fast[0]  # configured since
            or len(fast[0]) != fast[1]
            or fast[0][-1] is not fast[2]  # the chain was replaced in place (capture_logs)
        ):
            structlog.get_logger().info("api.request", **fields)
            return
        _chain, _n, renderer, redactor, _printer = fast
        scrub = redactor.scrub
        event = {k: scrub(v) if v.__class__ is str else v for k, v in fields.items()}
        event["event"] = "api.request"
        for key, value in structlog.contextvars.get_contextvars().items():
            if key not in event:  # as merge_contextvars: the line's own keys win
                event[key] = redactor._value(key, value)
        event["level"] = "info"
        event["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        line = flat_json(event) if self._flat else None
        pending = self._pending
        pending.append(renderer(None, "info", event) if line is None else line)
        if len(pending) > 1:
            return  # a write of this turn's lines is scheduled
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no loop: write now
            return
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the pending lines (one write and flush for a loop turn's requests)."""
        pending = self._pending
        if not pending or self._fast is None:
            return
        self._pending = []
        self._fast[4].msg("\n".join(pending))


access_log = AccessLog()


# structlog's live configuration (what get_config copies into a new dict on every call)
_STRUCTLOG = getattr(structlog._config, "_CONFIG", None)


def _processors() -> Any:
    """structlog's configured processor chain (without get_config's copy of the whole
    configuration, where structlog keeps it as this version does)."""
    chain = getattr(_STRUCTLOG, "default_processors", None)
    return structlog.get_config()["processors"] if chain is None else chain


_info_seen: list[Any] = [None, True]  # [wrapper class, whether it writes info lines]


def info_enabled() -> bool:
    """Whether an info line would be written: the configured filtering logger's level
    (checked per call, so a reconfiguration applies); unknown wrappers say yes. Hot paths
    ask first: a filtered ``log.info`` still costs a logger bind (the loggers are not
    cached, so a reconfiguration reaches them) and its arguments' formatting. The answer
    is remembered per wrapper class (a class's level is fixed)."""
    wrapper = getattr(_STRUCTLOG, "default_wrapper_class", None)
    if wrapper is None:
        wrapper = structlog.get_config()["wrapper_class"]
    seen = _info_seen
    if seen[0] is wrapper:
        return bool(seen[1])
    check = getattr(wrapper, "is_enabled_for", None)
    enabled = True if check is None else bool(check(None, logging.INFO))
    seen[:] = (wrapper, enabled)
    return enabled


def configure(
    *,
    level: str = "INFO",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Configure structlog (and the stdlib loggers of libraries) once for the process."""
    out = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    redactor = Redactor(secrets)
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redactor,
    ]
    if fmt == "json":
        processors.append(structlog.processors.format_exc_info)
    processors.append(renderer)
    access_log.setup(
        logging.getLevelName(level.upper()),
        processors,
        renderer if fmt == "json" else None,
        redactor,
        out,
    )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries (cryptofeed, ccxt, aiohttp, sqlalchemy) log through the stdlib; their records
    # are rendered by the same processors (same format, same redaction).
    handler = logging.StreamHandler(out)
    foreign_chain: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _library_exc_to_error,
        redactor,
    ]
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        final.append(structlog.processors.format_exc_info)
    final.append(renderer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=foreign_chain, processors=final)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.getLevelName(level.upper()), logging.WARNING))
    return redactor
