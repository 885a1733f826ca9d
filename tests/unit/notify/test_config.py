"""The alerts config section: defaults, bounds and clear errors for bad values."""

from __future__ import annotations

from typing import Any

import pytest

from cryptomon.config import load_settings
from cryptomon.errors import ConfigError

URL = "json://127.0.0.1:9/x"


def test_defaults() -> None:
    """Documented defaults: 6/min bucket, 60 s digests, 300 s dedup, 3 retries, all events."""
    s = load_settings(data={"alerts": {"channels": [{"name": "ops", "url": URL}]}})
    a, c = s.alerts, s.alerts.channels[0]
    assert (a.feed_down_after_s, a.dedup_window_s, a.retries, a.attempt_timeout_s) == (
        60.0,
        300.0,
        3,
        10.0,
    )
    assert (c.rate_limit_per_min, c.burst, c.digest_interval_s) == (6.0, 6, 60.0)
    assert (c.min_severity, c.events, c.format, c.quiet_hours) == (
        "medium",
        ["anomaly", "trading", "system"],
        "auto",
        None,
    )


@pytest.mark.parametrize(
    ("channel", "path", "expected"),
    [
        ({"rate_limit_per_min": 0}, "alerts.channels.0.rate_limit_per_min", "greater than 0"),
        ({"digest_max_items": 0}, "alerts.channels.0.digest_max_items", "greater than or equal"),
        ({"digest_max_items": 501}, "alerts.channels.0.digest_max_items", "less than or equal"),
        ({"quiet_hours": "10pm-7am"}, "alerts.channels.0.quiet_hours", "match pattern"),
        ({"quiet_hours_tz": "Moon/Base"}, "alerts.channels.0.quiet_hours_tz", "IANA time zone"),
        ({"events": ["trades"]}, "alerts.channels.0.events.0", "'anomaly', 'trading'"),
        ({"events": []}, "alerts.channels.0.events", "at least 1 item"),
        ({"min_severity": "urgent"}, "alerts.channels.0.min_severity", "'low', 'medium'"),
        ({"colour": "red"}, "alerts.channels.0.colour", "no such key (allowed: digest_interval_s"),
        ({"url": "not a url"}, "alerts.channels.0.url", "an apprise URL"),
    ],
)
def test_bad_channel_values_name_the_key(channel: dict[str, Any], path: str, expected: str) -> None:
    """Each bad channel value is reported with its key path and what was expected."""
    with pytest.raises(ConfigError) as err:
        load_settings(data={"alerts": {"channels": [{"name": "ops", "url": URL, **channel}]}})
    text = str(err.value)
    assert path in text
    assert expected in text
    assert "not a url" not in text  # URL values are never echoed


@pytest.mark.parametrize(
    ("alerts", "path", "expected"),
    [
        ({"retries": -1}, "alerts.retries", "greater than or equal to 0"),
        ({"attempt_timeout_s": 0}, "alerts.attempt_timeout_s", "greater than 0"),
        ({"api_base_url": "ftp://x"}, "alerts.api_base_url", "match pattern"),
        ({"templates": {"trade": {"title": "x"}}}, "alerts.templates.trade", "'anomaly', 'fill'"),
        (
            {"templates": {"fill": {"body": "{value}"}}},
            "alerts.templates.fill.body: got '{value}'",
            "unknown field {value}",
        ),
        (
            {"channels": [{"name": "a", "url": URL}, {"name": "a", "url": URL}]},
            "alerts.channels",
            "unique channel names; repeated: a",
        ),
    ],
)
def test_bad_alerts_values_name_the_key(alerts: dict[str, Any], path: str, expected: str) -> None:
    """Section-level problems are reported with their key path."""
    with pytest.raises(ConfigError) as err:
        load_settings(data={"alerts": alerts})
    assert path in str(err.value)
    assert expected in str(err.value)


def test_every_bad_template_is_reported_by_its_own_key() -> None:
    """Several bad template overrides: one problem each, named by its own key path with what
    is wrong (an unknown event type too); it was one problem for the whole alerts.templates
    dict, naming only the first bad template."""
    templates = {
        "anomaly": {"title": "{nope} x", "body": "{value:d}"},
        "signal": {"body": "{bad"},
        "fill": {"title": "filled {symbol}"},  # fine
        "trade": {"title": "x"},
    }
    with pytest.raises(ConfigError) as err:
        load_settings(data={"alerts": {"templates": templates}})
    problems = {p.path: p for p in err.value.problems}
    assert sorted(problems) == [
        "alerts.templates.anomaly.body",
        "alerts.templates.anomaly.title",
        "alerts.templates.signal.body",
        "alerts.templates.trade.[key]",
    ], problems
    assert problems["alerts.templates.anomaly.title"].value == "{nope} x"
    assert "unknown field {nope} for anomaly" in problems["alerts.templates.anomaly.title"].expected
    assert "formats with sample values" in problems["alerts.templates.anomaly.body"].expected
    assert "str.format template" in problems["alerts.templates.signal.body"].expected
    assert "'anomaly', 'fill'" in problems["alerts.templates.trade.[key]"].expected


def test_environment_overrides_alerts_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """CRYPTOMON_ALERTS__* environment variables win over the file."""
    monkeypatch.setenv("CRYPTOMON_ALERTS__RETRIES", "7")
    monkeypatch.setenv("CRYPTOMON_ALERTS__CHANNELS", f'[{{"name": "env", "url": "{URL}"}}]')
    s = load_settings(data={"alerts": {"retries": 1}})
    assert s.alerts.retries == 7
    assert [c.name for c in s.alerts.channels] == ["env"]
    assert s.redacted()["alerts"]["channels"][0]["url"] == "***"
