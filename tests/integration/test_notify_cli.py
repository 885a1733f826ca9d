"""``crypto-monitor notify-test`` as a real process against a loopback webhook sink."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from tests.integration.notify_sinks import HttpSink, closed_port


@pytest_asyncio.fixture
async def web_sink() -> AsyncIterator[HttpSink]:
    sink = await HttpSink().start()
    yield sink
    await sink.close()


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cryptomon",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _config(tmp_path: Path, channels: list[dict[str, str]]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump({"alerts": {"channels": channels, "attempt_timeout_s": 5}}),
        encoding="utf-8",
    )
    return str(path)


@pytest.mark.asyncio
async def test_notify_test_reports_each_channel(web_sink: HttpSink, tmp_path: Path) -> None:
    """One good and one unreachable channel: the good one gets the test message, the bad
    one is reported with a clear error, the exit status is 1."""
    cfg = _config(
        tmp_path,
        [
            {"name": "hook", "url": web_sink.url("hook")},
            {"name": "gone", "url": f"json://127.0.0.1:{closed_port()}/x"},
        ],
    )
    code, out, err = await _cli("notify-test", "--config", cfg, "--log-level", "ERROR")
    assert code == 1, err
    lines = out.splitlines()
    assert any(line.startswith("hook") and " ok " in line for line in lines)
    gone = next(line for line in lines if line.startswith("gone"))
    assert "FAILED" in gone
    assert "Connection error" in gone
    assert lines[-1] == "1/2 channel(s) reachable"
    assert web_sink.titles() == ["cryptomon test notification"]
    assert "Channel: hook" in web_sink.bodies()[0]


@pytest.mark.asyncio
async def test_notify_test_one_channel_succeeds(web_sink: HttpSink, tmp_path: Path) -> None:
    """--channel NAME tests only that channel; all good -> exit 0."""
    cfg = _config(
        tmp_path,
        [
            {"name": "hook", "url": web_sink.url("hook")},
            {"name": "gone", "url": f"json://127.0.0.1:{closed_port()}/x"},
        ],
    )
    code, out, err = await _cli("notify-test", "--config", cfg, "--channel", "hook")
    assert code == 0, err
    assert out.splitlines()[-1] == "1/1 channel(s) reachable"
    assert len(web_sink.messages) == 1


@pytest.mark.asyncio
async def test_notify_test_unknown_channel_exits_2(tmp_path: Path) -> None:
    """An unknown --channel exits 2 and lists the configured names."""
    cfg = _config(tmp_path, [{"name": "ops", "url": "json://127.0.0.1:9/x"}])
    code, out, err = await _cli("notify-test", "--config", cfg, "--channel", "nope")
    assert code == 2
    assert "unknown channel 'nope'; configured channels: ops" in err
    assert out == ""


@pytest.mark.asyncio
async def test_notify_test_without_channels_exits_2(tmp_path: Path) -> None:
    """No channels configured is a usage error with a clear message."""
    cfg = _config(tmp_path, [])
    code, _, err = await _cli("notify-test", "--config", cfg)
    assert code == 2
    assert "no channels configured under alerts.channels" in err


@pytest.mark.asyncio
async def test_notify_test_bad_template_is_a_config_error(tmp_path: Path) -> None:
    """A template override with an unknown field exits 2 naming the key and the fields."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "alerts": {
                    "channels": [{"name": "ops", "url": "json://127.0.0.1:9/x"}],
                    "templates": {"anomaly": {"title": "{exchange} {bogus}"}},
                }
            }
        ),
        encoding="utf-8",
    )
    code, _, err = await _cli("notify-test", "--config", str(path))
    assert code == 2
    assert "alerts.templates.anomaly.title: got '{exchange} {bogus}'" in err
    assert "unknown field {bogus} for anomaly" in err
    assert "Traceback" not in err


@pytest.mark.asyncio
async def test_notify_test_unsupported_url_is_a_config_error(tmp_path: Path) -> None:
    """A URL apprise cannot use exits 2 naming the channel's key, without echoing the URL."""
    cfg = _config(tmp_path, [{"name": "ops", "url": "nosuchservice://sekrit-token@host/x"}])
    code, _, err = await _cli("notify-test", "--config", cfg)
    assert code == 2
    assert "alerts.channels.0.url" in err
    assert "not a URL apprise supports" in err
    assert "sekrit-token" not in err


@pytest.mark.asyncio
async def test_a_mistyped_webhook_url_leaks_no_part_of_it(tmp_path: Path) -> None:
    """A Slack webhook URL with a typo in its scheme or host: apprise cannot parse it and logs
    it, shortening only the parts it takes for secrets; none of its path (the workspace and
    channel ids, the token) reaches the output."""
    urls = [
        "hxxps://hooks.slack.com/services/T03QAWSPC/B04QAWSPC/aBcDeFgHiJkLmNoPqRsTuVwX",
        "https://hooks.slak.com/services/T03QAWSPC/B04QAWSPC/aBcDeFgHiJkLmNoPqRsTuVwX",
    ]
    for url in urls:
        code, out, err = await _cli(
            "notify-test", "--config", _config(tmp_path, [{"name": "s", "url": url}])
        )
        assert code == 2
        assert "not a URL apprise supports" in err
        for part in ("T03QAWSPC", "B04QAWSPC", "aBcDeFgHiJkLmNoPqRsTuVwX"):
            assert part not in out + err


@pytest.mark.asyncio
async def test_a_malformed_url_of_a_known_service_says_what_apprise_found(tmp_path: Path) -> None:
    """``slack://x`` was refused as "not a URL apprise supports" (apprise supports Slack: the
    token was missing), and for an unknown scheme apprise's own JSON log line came before the
    error. The one line now carries apprise's reason, and apprise logs nothing beside it."""
    code, _, err = await _cli(
        "notify-test", "--config", _config(tmp_path, [{"name": "s", "url": "slack://x"}])
    )
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err  # the heading and the problem
    assert "slack://*** is not a URL apprise supports" in lines[1], err
    assert "(apprise: An invalid Slack (second) Token (None) was specified." in lines[1], err
    cfg = _config(tmp_path, [{"name": "n", "url": "nosuchservice://sekrit-token@host/x"}])
    code, _, err = await _cli("notify-test", "--config", cfg)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 2, err
    assert "sekrit-token" not in err
