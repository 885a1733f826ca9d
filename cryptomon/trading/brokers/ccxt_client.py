"""Building the ccxt client of the live broker from ``trading.live``.

Exchange differences are data: :data:`EXCHANGE_OPTIONS` holds per-exchange ccxt options,
applied before the user's ``options``; ``url`` rewrites the origin of every ccxt API URL (the
loopback simulator) and ``urls`` overrides single API sections. ccxt's own retries are off.

A venue's refusal is classified by ccxt from the request URL (Binance maps ``-2022`` to
``InvalidOrder`` only for ``https://fapi.binance.com/...``): with a rewritten origin the client
is an :func:`origin_classified` subclass whose ``handle_errors`` sees the URL the request would
have had on the exchange's own host, so an error is the same ccxt exception as in production.
"""

from __future__ import annotations

import copy
import importlib.util
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import SecretStr

from cryptomon.errors import ConfigError, Problem

EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    # Spot only, and no private /sapi calls while loading markets; openOrders without a
    # symbol is allowed (reconciliation needs every open order).
    "binance": {
        "fetchCurrencies": False,
        "fetchMargins": False,
        "fetchMarkets": {"types": ["spot"]},
        "fetchOpenOrders": {"warnWithoutSymbol": False},
        "warnOnFetchOpenOrdersWithoutSymbol": False,
        "defaultType": "spot",
    },
    # USD-M futures: no /sapi wallet calls while loading markets
    "binanceusdm": {
        "fetchCurrencies": False,
        "fetchMargins": False,
        "fetchOpenOrders": {"warnWithoutSymbol": False},
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    },
}
"""ccxt options per exchange id, applied before the user's ``options``."""

CONTRACT_OPTIONS: dict[str, dict[str, Any]] = {
    # The configured symbols are perpetuals/futures: USD-M and COIN-M markets, not spot.
    "binance": {
        "fetchCurrencies": False,
        "fetchMargins": False,
        "fetchMarkets": {"types": ["linear", "inverse"]},
        "fetchOpenOrders": {"warnWithoutSymbol": False},
        "warnOnFetchOpenOrdersWithoutSymbol": False,
        "defaultType": "swap",
    },
}
"""Applied over :data:`EXCHANGE_OPTIONS` when the traded symbols are contracts."""


class LiveSettings(Protocol):
    """The fields of ``trading.live`` the broker reads (``LiveTradingConfig``)."""

    exchange: str
    api_key: SecretStr | None
    secret: SecretStr | None
    password: SecretStr | None
    sandbox: bool
    url: str | None
    timeout_ms: int
    enable_rate_limit: bool
    recv_window_ms: int
    max_clock_skew_ms: int
    options: dict[str, Any]
    native_stop_loss: bool
    proxy: SecretStr | None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def rewrite_origin(url: str, base: str) -> str:
    """``https://api.binance.com/api/v3`` + ``http://127.0.0.1:9`` -> ``http://127.0.0.1:9/api/v3``."""
    parts = urlsplit(url)
    rest = url[len(f"{parts.scheme}://{parts.netloc}") :] if parts.netloc else url
    return base.rstrip("/") + rest


def _rewrite_urls(api: Any, base: str) -> Any:
    if isinstance(api, str):
        return rewrite_origin(api, base)
    if isinstance(api, dict):
        return {k: _rewrite_urls(v, base) for k, v in api.items()}
    return api


def _flatten(api: Any, key: str = "") -> dict[str, str]:
    if isinstance(api, str):
        return {key: api}
    if isinstance(api, dict):
        return {k2: v2 for k, v in api.items() for k2, v2 in _flatten(v, f"{key}/{k}").items()}
    return {}


def origin_map(original: Any, rewritten: Any) -> dict[str, str]:
    """Rewritten API base URL -> the exchange's own one, for every section the rewrite or an
    override changed; a rewritten URL that two different hosts collapsed into (Binance's
    ``fapiData`` and ``dapiData`` both become ``.../futures/data``) is left out: which venue it
    stands for cannot be told."""
    before, after = _flatten(original), _flatten(rewritten)
    out: dict[str, str] = {}
    ambiguous: set[str] = set()
    for key, new in after.items():
        old = before.get(key)
        if old is None or old == new:
            continue
        if out.get(new, old) != old:
            ambiguous.add(new)
        out[new] = old
    return {k: v for k, v in out.items() if k not in ambiguous}


class _OriginClassified:
    """Mixin over a ccxt exchange class: ``handle_errors`` (where ccxt turns a venue's error
    answer into an exception, by URL for Binance) sees the request's URL on the original host."""

    origin_urls: dict[str, str]

    def original_url(self, url: str) -> str:
        """``url`` with the longest matching rewritten base replaced by the original one."""
        best = ""
        for new in self.origin_urls:
            boundary = url[len(new) : len(new) + 1] in "/?"  # "" (the whole URL) too
            if len(new) > len(best) and url.startswith(new) and boundary:
                best = new
        return self.origin_urls[best] + url[len(best) :] if best else url

    def handle_errors(self, code: Any, reason: Any, url: str, *args: Any) -> Any:
        return super().handle_errors(code, reason, self.original_url(url), *args)  # type: ignore[misc]


_CLASSIFIED: dict[type, type] = {}


def origin_classified(cls: type) -> type:
    """The subclass of the ccxt exchange class ``cls`` that classifies errors as on the
    exchange's own host (one per class; ``isinstance(x, cls)`` still holds)."""
    if cls not in _CLASSIFIED:
        _CLASSIFIED[cls] = type(cls.__name__, (_OriginClassified, cls), {})
    return _CLASSIFIED[cls]


def proxy_params(proxy: SecretStr | None) -> dict[str, str]:
    """ccxt's proxy setting for ``trading.live.proxy``: ``httpProxy`` / ``httpsProxy`` (the
    protocol spoken to the proxy) or ``socksProxy`` (needs aiohttp_socks)."""
    if proxy is None:
        return {}
    url = proxy.get_secret_value()
    scheme = url.split("://", 1)[0].lower()
    if scheme.startswith("socks"):
        if importlib.util.find_spec("aiohttp_socks") is None:
            raise ConfigError(
                [
                    Problem(
                        "trading.live.proxy",
                        f"{scheme}://...",
                        "an http:// proxy, or install aiohttp_socks for SOCKS "
                        "(pip install 'cryptomon[socks]')",
                    )
                ]
            )
        return {"socksProxy": url}
    return {"httpsProxy" if scheme == "https" else "httpProxy": url}


def build_exchange(
    settings: LiveSettings,
    *,
    urls: dict[str, str] | None = None,
    contracts: bool = False,
    session: Any = None,
) -> Any:
    """The configured ccxt async exchange (not yet connected); ``contracts``: the traded
    symbols are perpetuals/futures (no spot-only options); ``session``: the transport, an
    ``aiohttp.ClientSession`` the caller owns (ccxt then neither creates nor closes one)."""
    import ccxt.async_support as ccxt_async

    cls = getattr(ccxt_async, settings.exchange, None)
    if cls is None or not isinstance(cls, type):
        raise ConfigError(
            [
                Problem(
                    "trading.live.exchange",
                    settings.exchange,
                    "a ccxt exchange id such as binance, kraken or okx",
                )
            ]
        )
    s = settings
    options: dict[str, Any] = {
        **EXCHANGE_OPTIONS.get(settings.exchange, {}),
        **(CONTRACT_OPTIONS.get(settings.exchange, {}) if contracts else {}),
        "recvWindow": s.recv_window_ms,
        "maxRetriesOnFailure": 0,  # never let ccxt resend anything, orders least of all
    }
    options.update(s.options)
    params: dict[str, Any] = {
        "enableRateLimit": s.enable_rate_limit,
        "timeout": s.timeout_ms,
        "options": options,
    }
    creds = {
        "apiKey": _secret(s.api_key),
        "secret": _secret(s.secret),
        "password": _secret(s.password),
    }
    params.update({k: v for k, v in creds.items() if v})
    params.update(proxy_params(s.proxy))
    if session is not None:
        params["session"] = session
    exchange = (origin_classified(cls) if s.url or urls else cls)(params)
    if s.sandbox:
        exchange.set_sandbox_mode(True)
    original = copy.deepcopy(exchange.urls.get("api"))
    if s.url:
        exchange.urls["api"] = _rewrite_urls(exchange.urls.get("api"), s.url)
    if urls:
        api = exchange.urls.get("api")
        if isinstance(api, dict):
            api.update(urls)
        else:
            exchange.urls["api"] = dict(urls)
    if s.url or urls:
        exchange.origin_urls = origin_map(original, exchange.urls.get("api"))
    return exchange
