"""Configuration: sources, precedence, normalization, secrets and error reporting."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from cryptomon.config import Settings, load_settings, normalize_symbol
from cryptomon.errors import ConfigError
from cryptomon.kinds import AnomalyKind, NotificationEventType, NotifyEventType

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return {p.path: str(p) for p in exc.value.problems}


def test_defaults_are_safe() -> None:
    """Without a file: paper trading, auto trading off, SQLite, API on loopback, no exchanges."""
    s = load_settings()
    assert s.trading.mode == "paper"
    assert s.trading.auto_trading_enabled is False
    assert s.database.url.startswith("sqlite+aiosqlite://")
    assert s.api.host == "127.0.0.1"
    assert s.exchanges == []
    assert s.shutdown_timeout_s == 10.0


def test_example_config_is_valid() -> None:
    """config.example.yaml loads without error."""
    s = load_settings(EXAMPLE)
    assert s.exchanges[0].name == "binance"


def _models_in(annotation: object) -> list[type[BaseModel]]:
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    found: list[type[BaseModel]] = [annotation] if is_model else []  # type: ignore[list-item]
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def test_example_config_documents_every_key() -> None:
    """Every key of the settings schema, nested sections and list items included, is named
    in config.example.yaml as ``key:`` (set, or in a comment); a secret may be shown only as
    its ``key_file:`` form (keys never go in the file). A key added to a section without a
    line in the example fails here, naming it."""
    text = EXAMPLE.read_text()
    named = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*:", text))
    missing: list[str] = []
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            if key not in named and f"{key}_file" not in named:
                missing.append(prefix + key)
            for sub in _models_in(field.annotation):
                walk(sub, f"{prefix}{key}.")

    walk(Settings, "")
    assert len(seen) > 20  # the walk reached the nested sections
    assert missing == []


@pytest.mark.parametrize(
    ("given", "expected"),
    [("BTC/USDT", "BTC-USDT"), ("btc-usdt", "BTC-USDT"), (" eth/btc ", "ETH-BTC")],
)
def test_symbols_accept_slash_or_dash(given: str, expected: str) -> None:
    """BTC/USDT and BTC-USDT are both accepted and normalized to cryptofeed's form."""
    assert normalize_symbol(given) == expected


def test_exchange_symbols_are_normalized_and_name_lowercased() -> None:
    """Exchange names are case-insensitive and symbols normalized at load time."""
    s = load_settings(data={"exchanges": [{"name": "Binance", "symbols": ["btc/usdt"]}]})
    assert s.exchanges[0].name == "binance"
    assert s.exchanges[0].symbols == ["BTC-USDT"]


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CRYPTOMON_<SECTION>__<KEY> wins over the YAML file; siblings from YAML are kept."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("api: {port: 9000, host: 127.0.0.1}\nlogging: {level: debug}\n")
    monkeypatch.setenv("CRYPTOMON_API__PORT", "9100")
    monkeypatch.setenv("CRYPTOMON_SHUTDOWN_TIMEOUT_S", "3")
    s = load_settings(cfg)
    assert s.api.port == 9100
    assert s.api.host == "127.0.0.1"
    assert s.logging.level == "DEBUG"
    assert s.shutdown_timeout_s == 3.0


def test_secret_from_file(tmp_path: Path) -> None:
    """A secret key given as <key>_file is read from that file, stripped."""
    secret = tmp_path / "tg"
    secret.write_text("tgram://123:ABC/456\n")
    s = load_settings(data={"alerts": {"channels": [{"name": "ops", "url_file": str(secret)}]}})
    assert s.alerts.channels[0].url.get_secret_value() == "tgram://123:ABC/456"
    assert "tgram://123:ABC/456" in s.secret_values()


def test_a_secret_and_its_file_together_are_refused(tmp_path: Path) -> None:
    """A secret given both inline and as <key>_file is an error naming both keys, not a
    silent choice of one."""
    secret = tmp_path / "tg"
    secret.write_text("tgram://123:ABC/456\n")
    channel = {"name": "ops", "url": "json://127.0.0.1:9/x", "url_file": str(secret)}
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"alerts": {"channels": [channel]}})
    text = str(exc.value)
    assert "url or url_file, not both" in text
    assert "tgram://123:ABC/456" not in text


def test_missing_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    """A <key>_file that cannot be read names the key and the path."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"api": {"tokens": [{"name": "t", "token_file": "/nonexistent/x"}]}})
    text = str(exc.value)
    assert "token_file" in text
    assert "/nonexistent/x" in text


def test_redacted_hides_every_secret() -> None:
    """redacted() replaces secret values and database passwords with ***."""
    s = load_settings(
        data={
            "alerts": {"channels": [{"name": "ops", "url": "tgram://SECRET1/42"}]},
            "api": {"tokens": [{"name": "t", "token": "SECRET2-token"}]},
            "database": {"url": "postgresql+psycopg://u:SECRET3@db:5432/x"},
        }
    )
    text = repr(s.redacted())
    for secret in ("SECRET1", "SECRET2", "SECRET3"):
        assert secret not in text
    assert s.redacted()["database"]["url"] == "postgresql+psycopg://u:***@db:5432/x"


def test_nats_cluster_passwords_are_hidden_from_check_config_logs_and_errors() -> None:
    """bus.nats_url carries passwords (one per server of a cluster): `check-config` prints
    them as ***, the log redactor knows them, and an error line shows none of them."""
    url = "nats://alice:NATSPW1@h1:4222, tls://bob:NATSPW2@h2:4222"
    s = load_settings(data={"bus": {"nats_url": url}})
    shown = s.redacted()["bus"]["nats_url"]
    assert shown == "nats://alice:***@h1:4222, tls://bob:***@h2:4222"
    assert {"NATSPW1", "NATSPW2"} <= set(s.secret_values())
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"bus": {"nats_url": "nats://alice:NATSPW1@h1,nat://bob:NATSPW2@h2"}})
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "bus.nats_url" in text
    assert "NATSPW1" not in text
    assert "NATSPW2" not in text


def test_unknown_key_names_path_and_allowed_keys() -> None:
    """An unknown key is an error listing the allowed keys of that section."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"trading": {"max_postion_size": 5}})
    found = problems(exc)
    assert "trading.max_postion_size" in found
    assert "max_position_size" in found["trading.max_postion_size"]


def test_unknown_top_level_section_is_an_error() -> None:
    """A misspelled section is rejected, not ignored."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"anomaly_detecton": {}})
    assert "anomaly_detecton" in problems(exc)


def test_every_problem_is_reported_at_once() -> None:
    """Several bad values give one problem line each, with value and expectation."""
    with pytest.raises(ConfigError) as exc:
        load_settings(
            data={
                "api": {"port": 70000},
                "trading": {"mode": "yolo", "stop_loss_percentage": -1},
                "anomaly_detection": {"volume_threshold_multiplier": "lots"},
            }
        )
    found = problems(exc)
    assert set(found) == {
        "api.port",
        "trading.mode",
        "trading.stop_loss_percentage",
        "anomaly_detection.volume_threshold_multiplier",
    }
    assert "70000" in found["api.port"]
    assert "'paper' or 'live'" in found["trading.mode"]
    assert "greater than 0" in found["trading.stop_loss_percentage"]


def test_candle_buffer_must_hold_at_least_one_candle() -> None:
    """``storage.candle_buffer`` (closed candles held while the database is away) names the
    key, the value and the bound; the default holds 10,000."""
    assert load_settings(data={}).storage.candle_buffer == 10_000
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"storage": {"candle_buffer": 0}})
    found = problems(exc)
    assert set(found) == {"storage.candle_buffer"}
    assert "greater than or equal to 1" in found["storage.candle_buffer"]
    assert "0" in found["storage.candle_buffer"]


def test_bad_symbol_and_empty_symbols() -> None:
    """A malformed symbol and an enabled live exchange without symbols are errors."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"exchanges": [{"name": "binance", "symbols": ["BTC USDT"]}]})
    assert "BTC/USDT or BTC-USDT" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"exchanges": [{"name": "binance", "symbols": []}]})
    assert "at least one symbol" in str(exc.value)


def test_overrides_apply_per_symbol_and_are_validated() -> None:
    """Per-market overrides change only that market and reject unknown or bad thresholds."""
    s = load_settings(
        data={
            "anomaly_detection": {
                "overrides": {"Binance:btc/usdt": {"price_change_percentage": 2.0}}
            }
        }
    )
    ad = s.anomaly_detection
    assert ad.for_symbol("binance", "BTC-USDT").price_change_percentage == 2.0
    assert ad.for_symbol("binance", "ETH-USDT").price_change_percentage == 5.0
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"anomaly_detection": {"overrides": {"binance:BTC/USDT": {"x": 1}}}})
    assert "unknown threshold" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"anomaly_detection": {"overrides": {"BTC/USDT": {"min_samples": 5}}}})
    assert "binance:BTC/USDT" in str(exc.value)
    with pytest.raises(ConfigError):
        load_settings(
            data={
                "anomaly_detection": {
                    "overrides": {"binance:BTC/USDT": {"price_change_percentage": -3}}
                }
            }
        )


def test_yaml_errors(tmp_path: Path) -> None:
    """Missing file, broken YAML and a non-mapping document are clear errors."""
    with pytest.raises(ConfigError, match="an existing YAML config file"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("api:\n  port: [1,\n")
    with pytest.raises(ConfigError, match="valid YAML"):
        load_settings(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(lst)


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    """An empty YAML file is the defaults."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_settings(empty).api.port == 8080


def test_secret_values_are_masked_in_problem_lines() -> None:
    """A bad secret is reported without echoing it."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"alerts": {"channels": [{"name": "a", "url": "SECRETVALUE"}]}})
    assert "SECRETVALUE" not in str(exc.value)
    assert "alerts.channels.0.url" in str(exc.value)


def test_config_imports_no_subsystem() -> None:
    """The config package is a base layer: importing it loads only errors and kinds besides."""
    code = (
        "import sys, cryptomon.config; "
        "print(sorted(m for m in sys.modules if m.startswith('cryptomon.') "
        "and not m.startswith('cryptomon.config')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "['cryptomon.errors', 'cryptomon.kinds']"


def test_sections_are_frozen() -> None:
    """Assigning to a loaded section fails; model_copy(update=...) makes a changed copy."""
    s = load_settings()
    with pytest.raises(ValidationError, match="frozen"):
        s.logging.level = "DEBUG"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        s.api = s.api  # type: ignore[misc]
    quiet = s.model_copy(update={"logging": s.logging.model_copy(update={"level": "ERROR"})})
    assert (quiet.logging.level, s.logging.level) == ("ERROR", "INFO")


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"signal_rules": [{"name": "r", "kinds": ["volumee"]}]}, "trading.signal_rules.0.kinds.0"),
        ({"channels": [{"name": "o", "url": "json://h/x", "kinds": ["sprd"]}]}, "alerts.channels"),
    ],
)
def test_anomaly_kind_typo_lists_the_valid_kinds(data: dict[str, Any], path: str) -> None:
    """Kinds named in signal rules and alert channels are AnomalyKind: a typo lists the kinds."""
    section = "trading" if "signal_rules" in data else "alerts"
    with pytest.raises(ConfigError) as exc:
        load_settings(data={section: data})
    text = str(exc.value)
    assert path in text
    assert ", ".join(repr(k.value) for k in list(AnomalyKind)[:-1]) in text


def test_the_notification_history_filters_by_every_event_type_and_digests() -> None:
    """The history's event types are the ones a channel subscribes to, plus the digest
    message: a type added to one and not the other would be refused (422) as a filter."""
    assert {e.value for e in NotificationEventType} == {e.value for e in NotifyEventType} | {
        "digest"
    }


def test_kinds_load_as_enum_members() -> None:
    """Valid kinds and template event types load as the shared enums."""
    s = load_settings(
        data={
            "trading": {"signal_rules": [{"name": "r", "kinds": ["whale", "spread"]}]},
            "alerts": {"templates": {"fill": {"title": "filled {symbol}"}}},
        }
    )
    assert s.trading.signal_rules[0].kinds == [AnomalyKind.WHALE, AnomalyKind.SPREAD]
    assert list(s.alerts.templates) == [NotifyEventType.FILL]


def test_notification_event_type_typo_lists_the_valid_types() -> None:
    """A template for an unknown event type is an error listing the event types."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"alerts": {"templates": {"fil": {"title": "x"}}}})
    assert "alerts.templates.fil" in str(exc.value)
    assert "'anomaly', 'fill', 'exit'" in str(exc.value)


@pytest.mark.parametrize(
    ("yaml_text", "path"),
    [
        ("trading: {max_position_size: .inf}\n", "trading.max_position_size"),
        ("anomaly_detection: {min_samples: .inf}\n", "anomaly_detection.min_samples"),
        ("api: {rate_limit_per_s: .nan}\n", "api.rate_limit_per_s"),
        ("exchanges: [{name: x, symbols: [A/B], stale_after_s: .inf}]\n", "exchanges.0.stale"),
        ("anomaly_detection: {whale_notional: {USDT: .inf}}\n", "whale_notional.USDT"),
        ("trading: {live: {options: {recv: .inf}}}\n", "trading.live.options"),
        (
            "anomaly_detection: {overrides: {'binance:BTC/USDT': {spread_z_threshold: .inf}}}\n",
            "overrides['binance:BTC-USDT'].spread_z_threshold",
        ),
    ],
)
def test_infinite_and_nan_numbers_are_rejected(tmp_path: Path, yaml_text: str, path: str) -> None:
    """.inf and .nan in YAML are a problem naming the key, wherever the number sits."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert path in str(exc.value)
    assert "finite number" in str(exc.value)


def test_infinite_number_from_environment_is_rejected() -> None:
    """'inf' in an environment variable is rejected like .inf in the file."""
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={"CRYPTOMON_TRADING__MAX_TOTAL_EXPOSURE": "inf"})
    assert "trading.max_total_exposure: got 'inf'; expected a finite number" in str(exc.value)


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("CRYPTOMON_API", '{"port": 8081, "host": "127.0.0.1", "port": 8082}', "port"),
        ("CRYPTOMON_API__TOKENS", '[{"name": "a", "name": "b", "token_sha256": "00"}]', "name"),
    ],
)
def test_a_key_repeated_in_env_json_is_rejected(name: str, value: str, key: str) -> None:
    """json.loads kept the last of a repeated key silently (the first value lost, config OK);
    now it is a problem naming the variable and the key, with the value redacted when the
    section holds secrets."""
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={name: value})
    text = str(exc.value)
    assert f"{name}: got '***'; expected JSON for" in text
    assert f"with each key once ({key!r} is given twice" in text
    assert value not in text


def test_trusted_proxies_are_addresses_or_networks() -> None:
    """api.trusted_proxies takes IPv4/IPv6 addresses and CIDR networks (also as JSON from the
    environment); a host name, a bad prefix or host bits set name the entry and what is
    expected (with the network meant, when there is one)."""
    s = load_settings(data={"api": {"trusted_proxies": ["127.0.0.1", "::1", "10.0.0.0/8"]}})
    assert s.api.trusted_proxies == ["127.0.0.1", "::1", "10.0.0.0/8"]
    assert s.api.trusted_proxy_header == "X-Forwarded-For"
    env = {"CRYPTOMON_API__TRUSTED_PROXIES": '["172.16.0.0/12"]'}
    assert load_settings(environ=env).api.trusted_proxies == ["172.16.0.0/12"]
    for entries, shown, hint in (
        (["127.0.0.1", "nginx"], "entry 1 'nginx' is neither", ""),
        (["10.0.0.0/33"], "entry 0 '10.0.0.0/33' is neither", ""),
        (["10.0.0.1/8"], "entry 0 '10.0.0.1/8' is neither", " (did you mean 10.0.0.0/8?)"),
    ):
        with pytest.raises(ConfigError) as exc:
            load_settings(data={"api": {"trusted_proxies": entries}})
        text = problems(exc)["api.trusted_proxies"]
        assert "expected each entry an IP address like 127.0.0.1" in text
        assert shown + hint in text
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"api": {"trusted_proxy_header": "X-Real-IP"}})
    assert "api.trusted_proxy_header" in problems(exc)


def test_a_body_deadline_past_the_request_deadline_is_refused() -> None:
    """api.body_timeout_s at or past api.request_timeout_s would answer a slow body 503 (the
    request deadline, which starts first, runs out first) instead of 408: refused at load
    naming both keys and their values, the default body_timeout_s (10 s) too; from the
    environment alike."""
    cases = [
        {"request_timeout_s": 15, "body_timeout_s": 20},
        {"request_timeout_s": 15, "body_timeout_s": 15},
        {"request_timeout_s": 5},  # the default body_timeout_s, 10 s
    ]
    for api in cases:
        with pytest.raises(ConfigError) as exc:
            load_settings(data={"api": api})
        text = problems(exc)["api"]
        body = api.get("body_timeout_s", 10)
        assert f"api.body_timeout_s ({body:g} s) less than api.request_timeout_s" in text
        assert f"({api['request_timeout_s']:g} s)" in text
        assert "503 instead of 408" in text
    env = {"CRYPTOMON_API__BODY_TIMEOUT_S": "30"}
    with pytest.raises(ConfigError, match=r"api\.body_timeout_s \(30 s\) less than"):
        load_settings(environ=env)
    ok = load_settings(data={"api": {"request_timeout_s": 5, "body_timeout_s": 4.5}}).api
    assert (ok.body_timeout_s, ok.request_timeout_s) == (4.5, 5)


def test_a_take_profit_of_100_percent_or_more_is_refused_with_shorts() -> None:
    """A short's take-profit 100 % below its entry is at a price of 0 (below it beyond):
    refused when shorts are allowed, accepted for longs only (a long's +150 % is a price)."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"trading": {"allow_short": True, "take_profit_percentage": 100}})
    assert "take_profit_percentage (100.0) < 100 with allow_short" in str(exc.value)
    ok = load_settings(data={"trading": {"take_profit_percentage": 150}})
    assert ok.trading.take_profit_percentage == 150


@pytest.mark.parametrize(
    ("data", "path", "expected"),
    [
        (
            {"trailing_stop_save_interval_s": -1},
            "trading.trailing_stop_save_interval_s",
            "got -1; expected greater than or equal to 0",
        ),
        (
            {"trailing_stop_save_interval_s": 7200},
            "trading.trailing_stop_save_interval_s",
            "got 7200; expected less than or equal to 3600",
        ),
        (
            {"paper": {"mid_max_spread": 0}},
            "trading.paper.mid_max_spread",
            "got 0; expected greater than 0",
        ),
        (
            {"paper": {"mid_max_spread": 2}},
            "trading.paper.mid_max_spread",
            "got 2; expected less than or equal to 1",
        ),
        (
            {"paper": {"mid_confirm_ms": -5}},
            "trading.paper.mid_confirm_ms",
            "got -5; expected greater than or equal to 0",
        ),
    ],
)
def test_the_trailing_save_and_paper_mid_keys_refuse_out_of_range_values(
    data: dict[str, Any], path: str, expected: str
) -> None:
    """Each new key's bad value is an error naming the key and what it expects."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"trading": data})
    found = problems(exc)
    assert path in found, found
    assert expected in found[path], found[path]


@pytest.mark.parametrize(
    "url",
    [
        "nats://",
        "nats://127.0.0.1:99999",
        "nats://127.0.0.1:abc",
        "nats://a b:4222",
        "nats://h1:4222,,nats://h2:4222",
        "nats://:4222",
    ],
)
def test_a_nats_url_without_a_usable_host_or_port_is_a_config_error(url: str) -> None:
    """A NATS URL that names no host or an impossible port is refused by the config (exit 2,
    naming bus.nats_url), not found out by a collector or brain at its first connection
    (exit 1, restarted forever by systemd)."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"bus": {"nats_url": url}})
    found = problems(exc)
    assert "bus.nats_url" in found
    assert "host" in found["bus.nats_url"]


def test_a_missing_nats_credentials_file_names_its_key(tmp_path: Path) -> None:
    """bus.credentials_file that is not a file: the error names that key (it named `bus`)."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"bus": {"credentials_file": str(tmp_path / "none.creds")}})
    found = problems(exc)
    assert "bus.credentials_file" in found
    assert "none.creds" in found["bus.credentials_file"]


def test_a_bad_nats_url_from_the_environment_exits_2(tmp_path: Path) -> None:
    """``CRYPTOMON_BUS__NATS_URL`` with a bad port: `run --role collector` exits 2 with one
    line naming bus.nats_url, before connecting anywhere."""
    env = {"CRYPTOMON_BUS__NATS_URL": "nats://127.0.0.1:99999", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "cryptomon", "run", "--role", "collector"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONPATH": str(EXAMPLE.parent)},
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert "bus.nats_url" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_nats_duplicate_window_longer_than_the_streams_keep_data_is_a_config_error() -> None:
    """bus.duplicate_window_s beyond bus.max_age_s (or events_max_age_s): NATS refuses the
    stream, which a collector or brain found out at start (exit 1, restarted for ever, an
    error naming no key); now the config names both keys."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"bus": {"duplicate_window_s": 7200, "max_age_s": 3600}})
    found = problems(exc)
    assert "bus.duplicate_window_s" in found
    assert "bus.max_age_s" in found["bus.duplicate_window_s"]
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"bus": {"duplicate_window_s": 120, "events_max_age_s": 60}})
    assert "bus.events_max_age_s" in problems(exc)["bus.duplicate_window_s"]
    load_settings(data={"bus": {"duplicate_window_s": 3600, "max_age_s": 3600}})


def test_a_brain_ack_wait_under_a_second_is_a_config_error() -> None:
    """bus.ack_wait_s is how long NATS waits for the brain's acknowledgement of a fetched
    batch before delivering it again: under a second, a batch still going through the hub
    and the store writer would be delivered again and again."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"bus": {"ack_wait_s": 0.05}})
    assert "bus.ack_wait_s" in problems(exc)
    assert load_settings(data={"bus": {"ack_wait_s": 1}}).bus.ack_wait_s == 1.0


def test_a_brain_ack_wait_shorter_than_the_store_batch_age_is_a_config_error() -> None:
    """A brain acknowledges a message once the store committed its rows, up to
    storage.batch_max_age_s later plus the write: a bus.ack_wait_s below that + 10 s would have
    NATS deliver again what the store still holds. One problem naming both keys and the
    least value; another role never acknowledges, so it is not checked."""
    data: dict[str, Any] = {
        "bus": {"role": "brain", "ack_wait_s": 30},
        "storage": {"batch_max_age_s": 25},
    }
    with pytest.raises(ConfigError) as exc:
        load_settings(data=data)
    found = problems(exc)
    assert list(found) == ["bus.ack_wait_s"]
    assert "storage.batch_max_age_s" in found["bus.ack_wait_s"]
    assert "35" in found["bus.ack_wait_s"]
    data["bus"]["ack_wait_s"] = 35
    assert load_settings(data=data).bus.ack_wait_s == 35.0
    assert load_settings(data={**data, "bus": {"role": "all", "ack_wait_s": 30}})
