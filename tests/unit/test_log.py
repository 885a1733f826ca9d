"""Logging: JSON/console output and secret redaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
import structlog
import structlog.testing

from cryptomon.log import Redactor, access_log, configure, redact_notify_url, redact_url


def test_redact_url_hides_password_only() -> None:
    """postgresql://user:pw@host keeps user and host, loses the password."""
    assert redact_url("postgresql+psycopg://bob:s3cr3t@db:5432/x") == (
        "postgresql+psycopg://bob:***@db:5432/x"
    )
    assert redact_url("sqlite+aiosqlite:///./x.db") == "sqlite+aiosqlite:///./x.db"


def test_redact_notify_url_hides_credentials() -> None:
    """Notification URLs lose everything after the scheme; http URLs only their password."""
    assert redact_notify_url("tgram://123456:ABCDEF/987") == "tgram://***"
    assert redact_notify_url("https://u:p@hooks.example/x") == "https://u:***@hooks.example/x"


def test_redactor_scrubs_pairs_urls_and_configured_secrets() -> None:
    """key=, token=, password= pairs, URL credentials and known secret values are removed."""
    r = Redactor(["MYSECRETVALUE"])
    event = {
        "event": "connect failed api_key=abc123 password: hunter2 token=xyz",
        "url": "postgresql://a:pw@h/db",
        "channel": "tgram://111:222/333",
        "detail": {"nested": "saw MYSECRETVALUE here"},
        "secret": "plain",
        "count": 3,
    }
    out = r(None, "info", dict(event))
    text = json.dumps(out)
    for leaked in ("abc123", "hunter2", "xyz", ":pw@", "111:222", "MYSECRETVALUE", "plain"):
        assert leaked not in text
    assert out["count"] == 3


def test_json_output_is_one_object_per_line_and_redacted() -> None:
    """format json writes JSON lines with level and timestamp, secrets redacted."""
    buf = io.StringIO()
    configure(level="INFO", fmt="json", secrets=["TOPSECRET"], stream=buf)
    try:
        structlog.get_logger().info("hello", token="TOPSECRET", where="x TOPSECRET y")
        structlog.get_logger().debug("hidden")
        logging.getLogger("somelib").warning("lib says password=abc")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    rec, lib = (json.loads(ln) for ln in lines)
    assert rec["event"] == "hello"
    assert rec["level"] == "info"
    assert "timestamp" in rec
    assert lib["logger"] == "somelib"
    assert lib["event"] == "lib says password=***"
    assert "TOPSECRET" not in buf.getvalue()


def test_library_exceptions_are_one_line_without_traceback() -> None:
    """A library logging an expected failure with exc_info gives one line with an error field."""
    buf = io.StringIO()
    configure(level="INFO", fmt="json", stream=buf)
    try:
        try:
            raise ConnectionError("exchange unreachable token=abc")
        except ConnectionError:
            logging.getLogger("feedhandler").exception("BINANCE: failed")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["event"] == "BINANCE: failed"
    assert rec["error"] == "ConnectionError: exchange unreachable token=***"
    assert "Traceback" not in buf.getvalue()


def test_access_line_matches_a_structlog_line_and_is_redacted() -> None:
    """The access log's direct JSON line has the keys, order and values of the same line
    through structlog (bound context included), with secrets scrubbed from its strings."""
    out = io.StringIO()
    configure(level="INFO", fmt="json", secrets=["TOKENVALUE1"], stream=out)
    fields = {
        "request_id": "TOKENVALUE1",
        "method": "GET",
        "path": "/api/v1/anomalies",
        "status": 200,
        "duration_ms": 1.5,
        "client": "::1",
        "principal": None,
    }
    try:
        with structlog.contextvars.bound_contextvars(component="api", request_id="ctx"):
            access_log(**fields)
            structlog.get_logger().info("api.request", **fields)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    access_log(request_id="after reset", status=200)  # not to the old stream
    fast, slow = (json.loads(line) for line in out.getvalue().splitlines())
    assert list(fast) == list(slow)
    fast.pop("timestamp")
    slow.pop("timestamp")
    assert fast == slow
    assert fast["request_id"] == "***"
    assert fast["component"] == "api"
    assert "TOKENVALUE1" not in out.getvalue()


def test_access_line_costs_nothing_below_its_level_and_is_captured_in_tests() -> None:
    """At WARNING the access log is disabled (the caller builds nothing); when a test
    captures structlog's chain the line goes to the capture like any other."""
    out = io.StringIO()
    configure(level="WARNING", fmt="json", stream=out)
    assert not access_log.enabled
    configure(level="INFO", fmt="json", stream=out)
    assert access_log.enabled
    try:
        with structlog.testing.capture_logs() as logs:
            access_log(request_id="r1", status=200)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert logs == [
        {"event": "api.request", "log_level": "info", "request_id": "r1", "status": 200}
    ]
    assert out.getvalue() == ""


@pytest.mark.asyncio
async def test_access_lines_of_a_loop_turn_are_written_together_at_its_end() -> None:
    """Within a running loop the access lines wait for the end of the turn, then are all
    written, in order, one JSON object per line."""
    out = io.StringIO()
    configure(level="INFO", fmt="json", stream=out)
    try:
        access_log(request_id="a", status=200)
        access_log(request_id="b", status=404)
        assert out.getvalue() == ""
        await asyncio.sleep(0)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["request_id"], e["status"]) for e in lines] == [("a", 200), ("b", 404)]


def test_info_enabled_follows_the_configured_level() -> None:
    """info_enabled reads the current configuration: ERROR filters info, INFO does not."""
    from cryptomon.log import info_enabled

    try:
        configure(level="ERROR", fmt="json", stream=io.StringIO())
        assert not info_enabled()
        configure(level="INFO", fmt="json", stream=io.StringIO())
        assert info_enabled()
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert info_enabled()  # structlog's defaults log everything


def test_flat_json_is_json_dumps_for_plain_values_and_declines_the_rest() -> None:
    """The access line's renderer gives ``json.dumps``' text (escapes, non-ASCII, float
    edges, NaN and infinities, big integers) for events of plain values, and declines
    (None) an event holding anything else, which then goes through structlog's renderer."""
    import enum
    import math
    import random
    from decimal import Decimal

    from cryptomon.log import flat_json

    edges: list[Any] = ["", 'a"b\\c', "\x00\x1f\x7f", "é€😀", "\ud800", "line\nbreak"]
    edges += [0, -1, 2**70, 0.0, -0.0, 1e300, 5e-324, 0.1, math.nan, math.inf, -math.inf]
    edges += [True, False, None]
    rnd = random.Random(16)
    edges += [rnd.random() * 10 ** rnd.randint(-300, 300) for _ in range(2000)]
    for value in edges:
        event = {"k": value, "é": "x", "event": "api.request"}
        assert flat_json(event) == json.dumps(event)

    class Code(enum.IntEnum):
        OK = 200

    for other in ([1], {"a": 1}, Decimal("1.5"), Code.OK, (1,)):
        assert flat_json({"event": "api.request", "k": other}) is None
