"""trading.grades, trading.webhooks, trading.indicators.scoring and anomaly_detection.arbitrage
in the config: defaults, clear errors naming the key, secrets redacted."""

from __future__ import annotations

import pytest

from cryptomon.app import build_app
from cryptomon.config import load_settings
from cryptomon.errors import ConfigError

HOOK = {"name": "tv", "secret": "tv-secret-0123456789", "symbols": ["btc/usdt"]}


def test_defaults() -> None:
    """Spec scoring, grade thresholds 0.8/0.65/0.5, no webhooks, arbitrage on at 5 bps."""
    s = load_settings(data={})
    assert s.trading.indicators.scoring == "spec"
    assert (s.trading.grades.strong, s.trading.grades.medium, s.trading.grades.weak) == (
        0.8,
        0.65,
        0.5,
    )
    assert s.trading.webhooks == []
    assert s.anomaly_detection.arbitrage.min_edge_bps == 5.0
    assert s.anomaly_detection.arbitrage.fee("kraken") == 0.001


@pytest.mark.parametrize(
    ("trading", "path", "expected"),
    [
        ({"webhooks": [{**HOOK, "secret": "short"}]}, "trading.webhooks.0.secret", "16"),
        ({"webhooks": [HOOK, HOOK]}, "trading.webhooks", "repeated: tv"),
        ({"webhooks": [{**HOOK, "name": "a b"}]}, "trading.webhooks.0.name", "pattern"),
        ({"webhooks": [{**HOOK, "symbols": ["nope"]}]}, "trading.webhooks.0.symbols", "BTC"),
        ({"webhooks": [{**HOOK, "max_per_minute": 0}]}, "max_per_minute", "1"),
        ({"grades": {"strong": 0.5, "medium": 0.6}}, "trading.grades", "weak"),
        ({"indicators": {"scoring": "magic"}}, "trading.indicators.scoring", "spec"),
    ],
)
def test_bad_values_name_the_key(trading: dict[str, object], path: str, expected: str) -> None:
    """Each bad value is a ConfigError naming its key path and what is expected."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"trading": trading})
    text = str(exc.value)
    assert path in text
    assert expected in text


def test_webhook_secret_is_redacted_and_a_known_secret() -> None:
    """The webhook secret never shows in redacted() and is a secret value for the log filter."""
    s = load_settings(data={"trading": {"webhooks": [HOOK]}})
    assert s.trading.webhooks[0].symbols == ["BTC-USDT"]
    assert "tv-secret-0123456789" not in repr(s.redacted())
    assert "tv-secret-0123456789" in s.secret_values()


def test_bad_arbitrage_fee_names_the_exchange() -> None:
    """A taker fee outside [0, 0.1) names the exchange."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"anomaly_detection": {"arbitrage": {"taker_fees": {"kraken": 0.26}}}})
    assert "taker_fees.kraken" in str(exc.value)


def test_app_builds_the_webhooks_only_when_configured() -> None:
    """build_app makes the webhook service (and hands it to the API) with trading.webhooks."""
    assert build_app(load_settings(data={})).services.webhooks is None
    app = build_app(load_settings(data={"trading": {"webhooks": [HOOK]}}))
    assert app.services.webhooks is not None
    assert app.services.webhooks.names() == ["tv"]
