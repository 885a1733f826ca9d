"""Logging: JSON/console output and secret redaction."""

from __future__ import annotations

import io
import json
import logging

import structlog

from cryptomon.log import Redactor, configure, redact_notify_url, redact_url


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
