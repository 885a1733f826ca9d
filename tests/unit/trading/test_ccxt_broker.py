"""CcxtBroker construction and configuration: URL rewriting, exchange options as data,
secrets from the environment or files, clear errors for bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptomon.config import LiveTradingConfig, load_settings
from cryptomon.errors import ConfigError, TemporaryError
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.brokers.ccxt_client import EXCHANGE_OPTIONS, rewrite_origin


def test_rewrite_origin_keeps_the_path() -> None:
    """Only scheme and host change when pointing ccxt at the simulator."""
    assert (
        rewrite_origin("https://api.binance.com/api/v3", "http://127.0.0.1:9/")
        == "http://127.0.0.1:9/api/v3"
    )
    assert rewrite_origin("https://x.test", "http://h:1") == "http://h:1"


def test_build_points_every_api_url_at_the_base_url_and_applies_options() -> None:
    """url rewrites every API section; per-exchange options, then the user's, are applied;
    ccxt's own retries are off."""
    cfg = LiveTradingConfig(
        exchange="binance",
        api_key="k",
        secret="s",
        url="http://127.0.0.1:5555",
        options={"recvWindow": 7000, "adjustForTimeDifference": True},
    )
    ex = CcxtBroker(cfg)._build()
    api = ex.urls["api"]
    assert api["public"] == "http://127.0.0.1:5555/api/v3"
    assert api["private"] == "http://127.0.0.1:5555/api/v3"
    assert all(v.startswith("http://127.0.0.1:5555/") for v in api.values())
    assert ex.options["fetchCurrencies"] is EXCHANGE_OPTIONS["binance"]["fetchCurrencies"]
    assert ex.options["recvWindow"] == 7000
    assert ex.options["adjustForTimeDifference"] is True
    assert ex.options["maxRetriesOnFailure"] == 0
    assert ex.enableRateLimit is True
    assert (ex.apiKey, ex.secret) == ("k", "s")


def test_other_exchanges_build_without_name_branches() -> None:
    """Any ccxt exchange id builds; per-API url overrides are applied as given."""
    cfg = LiveTradingConfig(exchange="kraken", api_key="k", secret="czM=")
    broker = CcxtBroker(cfg, urls={"public": "http://127.0.0.1:1/public"})
    ex = broker._build()
    assert ex.id == "kraken"
    assert ex.urls["api"]["public"] == "http://127.0.0.1:1/public"
    assert broker.name == "ccxt:kraken"


def test_unknown_exchange_is_a_config_error_naming_the_key() -> None:
    """A typo in the exchange id is reported as a config problem, not a traceback."""
    with pytest.raises(ConfigError) as info:
        CcxtBroker(LiveTradingConfig(exchange="nosuchex"))._build()
    assert str(info.value) == (
        "trading.live.exchange: got 'nosuchex'; expected a ccxt exchange id such as binance, "
        "kraken or okx"
    )


def test_keys_come_from_files_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api_key_file / secret_file and CRYPTOMON_TRADING__LIVE__* fill the secrets."""
    (tmp_path / "key").write_text("file-key\n")
    monkeypatch.setenv("CRYPTOMON_TRADING__LIVE__SECRET", "env-secret")
    settings = load_settings(data={"trading": {"live": {"api_key_file": str(tmp_path / "key")}}})
    ex = CcxtBroker(settings.trading.live)._build()
    assert (ex.apiKey, ex.secret) == ("file-key", "env-secret")
    assert "file-key" in settings.secret_values()
    assert "env-secret" in settings.secret_values()


def test_from_config_labels_events_with_the_traded_exchange() -> None:
    """Fills and orders carry trading.exchange (the market data name), else the ccxt id."""
    settings = load_settings(data={"trading": {"exchange": "simulator"}})
    assert CcxtBroker.from_config(settings.trading).exchange_name == "simulator"
    plain = load_settings(data={})
    assert CcxtBroker.from_config(plain.trading).exchange_name == "binance"


@pytest.mark.asyncio
async def test_calls_before_start_are_temporary_errors() -> None:
    """Using the broker before start() raises a TemporaryError, not an AttributeError."""
    broker = CcxtBroker(LiveTradingConfig())
    with pytest.raises(TemporaryError, match="not started"):
        await broker.fetch_balances()


@pytest.mark.asyncio
async def test_an_injected_session_is_the_transport_and_stays_open() -> None:
    """The transport seam: ccxt sends through the session the caller gives (no session of its
    own) and the broker's stop leaves it open for its owner."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        broker = CcxtBroker(LiveTradingConfig(), session=session)
        broker.exchange = broker._build()
        assert broker.exchange.session is session
        assert broker.exchange.own_session is False
        await broker.stop()
        assert not session.closed
    assert CcxtBroker(LiveTradingConfig())._build().own_session is True


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    """Retry-After takes delta seconds or an HTTP date; garbage is None (the default applies)."""
    from cryptomon.trading.brokers.ccxt_gate import parse_retry_after

    now = 1_700_000_000.0
    assert parse_retry_after("10", now) == 10.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == pytest.approx(30.0)
    assert parse_retry_after("soon", now) is None


@pytest.mark.parametrize(
    ("exchange", "section", "market_type"),
    [
        ("binance", "private", "spot"),
        ("binanceusdm", "fapiPrivate", "linear"),
        ("binancecoinm", "dapiPrivate", "inverse"),
    ],
)
def test_a_rewritten_origin_classifies_errors_as_the_real_host(
    exchange: str, section: str, market_type: str
) -> None:
    """ccxt's Binance picks the error table of a request by its URL: with the origin
    rewritten to the simulator, the request URL is read as on the exchange's own host, so a
    venue code raises the same ccxt exception as in production (not a bare ExchangeError)."""
    ex = CcxtBroker(LiveTradingConfig(exchange=exchange, url="http://127.0.0.1:5555"))._build()
    url = ex.urls["api"][section] + "/order?symbol=X"
    assert url.startswith("http://127.0.0.1:5555/")
    assert ex.original_url(url).startswith("https://")
    assert (
        ex.get_exceptions_by_url(ex.original_url(url), "exact")
        == (ex.exceptions[market_type]["exact"])
    )
    assert ex.original_url("http://elsewhere:1/x") == "http://elsewhere:1/x"
    # fapiData and dapiData both become .../futures/data: which venue it is cannot be told
    assert ex.original_url(ex.urls["api"]["fapiData"] + "/x").startswith("http://127.0.0.1")


def test_the_exchange_own_hosts_keep_the_plain_ccxt_class() -> None:
    """Without a rewrite the client is ccxt's own class: production runs ccxt untouched."""
    import ccxt.async_support as ccxt_async

    ex = CcxtBroker(LiveTradingConfig(exchange="binanceusdm"))._build()
    assert type(ex) is ccxt_async.binanceusdm
    rewritten = CcxtBroker(LiveTradingConfig(exchange="binanceusdm", url="http://h:1"))._build()
    assert isinstance(rewritten, ccxt_async.binanceusdm)
