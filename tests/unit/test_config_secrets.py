"""Secrets never appear in config errors: redaction by the schema (issue 14.6), via check-config."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from cryptomon.cli import main
from cryptomon.config import load_settings
from cryptomon.errors import ConfigError
from cryptomon.log import configure
from cryptomon.reload import Reloader

CASES = [
    pytest.param(
        "api: {tokens: [{name: ci, token: TOKSECRET1}]}\n",
        {},
        "TOKSECRET1",
        "api.tokens.0: got {'name': 'ci', 'token': '***'}; expected a token of at least 12",
        id="token-inside-short-object",
    ),
    pytest.param(
        "alerts: {channels: ['tgram://123456:BOTSECRET/999']}\n",
        {},
        "BOTSECRET",
        "alerts.channels.0: got '***'; expected a valid dictionary",
        id="alert-url-as-bare-string-in-list",
    ),
    pytest.param(
        "",
        {"CRYPTOMON_API__TOKENS": '[{"name": "ci", "token": "ENVTOK1"}]'},
        "ENVTOK1",
        "api.tokens.0: got {'name': 'ci', 'token': '***'}",
        id="token-from-environment",
    ),
    pytest.param(
        "",
        {"CRYPTOMON_API__TOKENS": '[{"name": "ci", "token": "ENVTOKEN-SECRET-2"'},
        "ENVTOKEN-SECRET-2",
        "CRYPTOMON_API__TOKENS: got '***'; expected JSON for api.tokens",
        id="token-in-environment-json-that-does-not-parse",
    ),
    pytest.param(
        "trading: {mode: live, live: {api_key: LIVEKEYSECRET}}\n",
        {},
        "LIVEKEYSECRET",
        "trading: got {'mode': 'live', 'live': {'api_key': '***'}}",
        id="exchange-key-inside-section-object",
    ),
    pytest.param(
        "api: {tokens: [{name: ci, tokn: MISSPELTSECRET}]}\n",
        {},
        "MISSPELTSECRET",
        "api.tokens.0.tokn: got '***'; expected no such key",
        id="secret-under-misspelt-key",
    ),
    pytest.param(
        "database: {url: 'mysql://bob:DBPASSWORD@db/x'}\n",
        {},
        "DBPASSWORD",
        "database.url: got 'mysql://bob:***@db/x'",
        id="database-password-in-rejected-url",
    ),
]


@pytest.mark.parametrize(("text", "env", "secret", "line"), CASES)
def test_check_config_never_echoes_a_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    env: dict[str, str],
    secret: str,
    line: str,
) -> None:
    """Each way a secret can land in a problem line is redacted; the key path is still named."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["check-config", "--config", str(cfg)]) == 2
    captured = capsys.readouterr()
    assert secret not in captured.err + captured.out
    assert line in captured.err


def test_secret_text_is_scrubbed_from_expected_messages() -> None:
    """A secret value is removed from the 'expected' part too, wherever a validator puts it."""
    with pytest.raises(ConfigError) as exc:
        load_settings(
            data={
                "alerts": {
                    "channels": [
                        {"name": "tgram://ab:SCRUBME/1", "url": "tgram://ab:SCRUBME/1"},
                        {"name": "tgram://ab:SCRUBME/1", "url": "tgram://ab:SCRUBME/1"},
                    ]
                }
            }
        )
    assert "SCRUBME" not in str(exc.value)
    assert "unique channel names" in str(exc.value)


def test_secret_model_given_the_wrong_shape_is_hidden_whole() -> None:
    """A channel (which holds a URL secret) given as a string where a list is expected is hidden."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"alerts": {"channels": "tgram://ab:HIDEME/1"}})
    assert "HIDEME" not in str(exc.value)
    assert "alerts.channels: got '***'" in str(exc.value)


@pytest.mark.parametrize("key", ["api_key", "secret", "password_file"])
def test_exchange_credentials_under_exchanges_point_to_trading_live(key: str) -> None:
    """The README's "exchange api_key/secret/password" put under exchanges[] got only "no such
    key" and the feed keys; the line now says where venue credentials go, value hidden."""
    value = "/run/secrets/venue" if key.endswith("_file") else "VENUESECRET"
    entry = {"name": "binance", "symbols": ["BTC-USDT"], key: value}
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"exchanges": [entry]})
    text = str(exc.value)
    shown = value if key.endswith("_file") else "***"  # a file's path is no secret
    assert f"exchanges.0.{key}: got '{shown}'; expected no such key here: " in text
    assert f"venue credentials go under trading.live (trading.live.{key})" in text
    assert "VENUESECRET" not in text


# (YAML added to a valid file, the problem the reload_rejected line must name)
UNKNOWN_KEYS = [
    pytest.param(
        {"trading": {"monkey_mode": 3}},
        "trading.monkey_mode: got 3; expected no such key",
        id="key-with-secret-letters-in-its-name",
    ),
    pytest.param(
        {"alerts": {"api_base_ur": "mon.example.com"}},
        "alerts.api_base_ur: got 'mon.example.com'; expected no such key",
        id="near-miss-of-a-field-that-is-no-secret",
    ),
    pytest.param(
        {"exchanges": [{"name": "binance", "symbols": ["BTC-USDT"], "urls": 5}]},
        "exchanges.0.urls: got 5; expected no such key",
        id="url-word-without-a-url",
    ),
    pytest.param(
        {"api": {"tokens": [{"name": "ci", "tokn": "MISSPELTSECRET"}]}},
        "api.tokens.0.tokn: got '***'; expected no such key",
        id="secret-near-miss",
    ),
    pytest.param(
        {"trading": {"live": {"exchange": "binance", "api_kee": "KEYSECRET"}}},
        "trading.live.api_kee: got '***'; expected no such key",
        id="secret-key-near-miss",
    ),
    pytest.param(
        {"trading": {"private_key": "PRIVSECRET"}},
        "trading.private_key: got '***'; expected no such key",
        id="secret-word-in-the-name",
    ),
    pytest.param(
        {"trading": {"webhook_url": "https://hooks.example.com/HOOKSECRET"}},
        "trading.webhook_url: got '***'; expected no such key",
        id="url-under-a-url-name",
    ),
    pytest.param(
        {"alerts": {"webhok": "https://hooks.example.com/services/T/B/HOOKSECRET"}},
        "alerts.webhok: got '***'; expected no such key",
        id="url-under-any-name",
    ),
    pytest.param(
        {"alerts": {"channel_list": ["mailto://user:MAILSECRET@example.com"]}},
        "alerts.channel_list: got '***'; expected no such key",
        id="a-list-holding-a-url",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("change", "problem"), UNKNOWN_KEYS)
async def test_reload_rejected_shows_what_is_no_secret(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    """A reload rejected for an unknown key logs (through the daemon's redacting log setup)
    the key's value unless it may be a secret: a name with a secret word, a near miss of a
    secret field, a value that is or holds a URL."""
    base: dict[str, object] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'cm.db'}"},
        "api": {"enabled": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base))
    settings = load_settings(path)
    out = io.StringIO()
    configure(level="INFO", fmt="json", stream=out)
    reloader = Reloader(load=lambda: load_settings(path), settings=settings, services=None)
    path.write_text(yaml.safe_dump({**base, **change}))
    assert not await reloader.reload()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    rejected = [e for e in lines if e["event"] == "config.reload_rejected"]
    assert len(rejected) == 1
    assert problem in rejected[0]["problems"]
    assert "SECRET" not in out.getvalue()
