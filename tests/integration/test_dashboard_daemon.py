"""The dashboard's side of a whole daemon fed by the loopback simulator: its static files and
plotly.js, the routes its views read, the process gauges, and the Grafana board's queries."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cryptomon.api import ApiServer
from cryptomon.app import App, build_app
from cryptomon.config import load_settings
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from tests.integration.api.conftest import READ, TRADE, bearer
from tests.util import wait_until

BOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "dashboards" / "cryptomon.json"
Daemon = tuple[App, ApiServer, aiohttp.ClientSession]


@pytest_asyncio.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    sim = SimExchange(MarketModel(["BTC-USDT", "ETH-USDT"], seed=7), interval=0.05)
    await sim.start()
    settings = load_settings(
        data={
            "exchanges": [
                {
                    "name": "simulator",
                    "url": sim.rest_url,
                    "symbols": ["BTC/USDT", "ETH/USDT"],
                    "subscriptions": ["trades", "orderbook", "ticker", "candles"],
                }
            ],
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"},
            "data_dir": str(tmp_path),
            "api": {
                "port": 0,
                "public_read": True,
                "tokens": [
                    {"name": "viewer", "token": READ},
                    {"name": "trader", "token": TRADE, "scopes": ["read", "trade"]},
                ],
            },
        }
    )
    app = build_app(settings)
    (api,) = [c for c in app.components if isinstance(c, ApiServer)]
    await app.start()
    http = aiohttp.ClientSession()
    try:
        yield app, api, http
    finally:
        await http.close()
        assert await app.stop()
        await sim.stop()


async def _json(http: aiohttp.ClientSession, url: str, token: str | None = READ) -> Any:
    async with http.get(url, headers=bearer(token) if token else {}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def _board_metrics() -> set[str]:
    board = json.loads(BOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    return {name for e in exprs for name in re.findall(r"\bcryptomon_[a-z0-9_]+", e)}


def _exported(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "counter":
                names.add(name.removesuffix("_total") + "_total")
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.mark.asyncio
async def test_every_metric_the_grafana_board_queries_is_exported(daemon: Daemon) -> None:
    """Each cryptomon_* name in the provisioned board's queries appears in /metrics."""
    _, api, http = daemon
    await wait_until(
        lambda: _has_trades(http, api.url), timeout=30, interval=0.1, message="market data"
    )
    async with http.get(api.url + "/metrics", headers=bearer(READ)) as r:
        text = await r.text()
    wanted = _board_metrics()
    assert len(wanted) >= 15
    assert wanted - _exported(text) == set()


async def _has_trades(http: aiohttp.ClientSession, url: str) -> bool:
    out = await _json(http, url + "/api/v1/markets/overview", token=None)
    return len(out["markets"]) == 2 and all(m["last"] for m in out["markets"])


@pytest.mark.asyncio
async def test_overview_session_and_resources_answer_for_the_dashboard(daemon: Daemon) -> None:
    """The overview lists both markets publicly; session names the token and its scopes;
    resources report RSS, open files and the free disk of data_dir."""
    _, api, http = daemon
    await wait_until(lambda: _has_trades(http, api.url), timeout=30, interval=0.1, message="data")
    overview = await _json(http, api.url + "/api/v1/markets/overview", token=None)
    row = overview["markets"][0]
    assert row["feed_state"] == "live"
    assert set(row["anomalies"]) == {"low", "medium", "high", "critical"}
    assert (await _json(http, api.url + "/api/v1/session", token=None))["anonymous"] is True
    me = await _json(http, api.url + "/api/v1/session", token=TRADE)
    assert (me["name"], me["scopes"]) == ("trader", ["read", "trade"])
    res = await _json(http, api.url + "/api/v1/system/resources")
    assert res["rss_bytes"] > 10e6
    assert res["open_files"] > 3
    assert res["disk_free_bytes"] > 0
    async with http.get(api.url + "/api/v1/system/resources") as r:
        assert r.status == 401  # process details are not public


@pytest.mark.asyncio
async def test_a_manual_order_shows_in_fills_levels_and_equity(daemon: Daemon) -> None:
    """A market buy with SL/TP fills; fills, the SL/TP levels and the equity curve show it."""
    _, api, http = daemon
    await wait_until(lambda: _has_trades(http, api.url), timeout=30, interval=0.1, message="data")
    trading = await _json(http, api.url + "/api/v1/trading/stats")
    await wait_until(
        lambda: _reconciled(http, api.url), timeout=30, interval=0.1, message="reconciled"
    )
    last = next(
        m["last"]
        for m in (await _json(http, api.url + "/api/v1/markets/overview"))["markets"]
        if m["symbol"] == "BTC-USDT"
    )
    body = {
        "exchange": "simulator",
        "symbol": "BTC-USDT",
        "side": "buy",
        "amount": "0.001",
        "stop_loss": f"{last * 0.9:.2f}",
        "take_profit": f"{last * 1.1:.2f}",
    }
    async with http.post(api.url + "/api/v1/trading/orders", json=body, headers=bearer(TRADE)) as r:
        assert r.status == 200, await r.text()
    url = api.url + "/api/v1/trading/fills?symbol=BTC-USDT"
    await wait_until(
        lambda: _nonempty(http, url, "fills"), timeout=30, interval=0.2, message="a stored fill"
    )
    levels_url = api.url + "/api/v1/trading/levels?symbol=BTC-USDT"
    await wait_until(
        lambda: _nonempty(http, levels_url, "levels"), timeout=30, interval=0.2, message="levels"
    )
    (level,) = (await _json(http, levels_url))["levels"]
    # compared as numbers: the API spells 53998.60 as 53998.6 (plain digits)
    assert (Decimal(level["stop_loss"]), Decimal(level["take_profit"])) == (
        Decimal(body["stop_loss"]),
        Decimal(body["take_profit"]),
    )
    equity = await _json(http, api.url + "/api/v1/trading/equity")
    assert equity["max_drawdown_pct"] >= 0
    assert trading["risk_state"] in {"active", "reducing"}


async def _reconciled(http: aiohttp.ClientSession, url: str) -> bool:
    return bool((await _json(http, url + "/api/v1/trading/stats"))["reconciled"])


async def _nonempty(http: aiohttp.ClientSession, url: str, key: str) -> bool:
    return bool((await _json(http, url))[key])


@pytest.mark.asyncio
async def test_static_files_and_plotly_are_served_with_the_right_headers(daemon: Daemon) -> None:
    """The page has a CSP; modules are JavaScript; plotly.js is gzipped, cacheable and
    revalidated by ETag (304); an unknown file is a JSON 404."""
    _, api, http = daemon
    async with http.get(api.url + "/") as r:
        assert r.status == 200
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert '<script type="module" src="/static/app.js">' in await r.text()
    async with http.get(api.url + "/static/views/market.js") as r:
        assert r.content_type == "text/javascript"
    async with http.get(api.url + "/static/../server.py") as r:
        assert r.status == 404
    async with http.get(api.url + "/static/nope.js") as r:
        assert r.status == 404
        assert "nope.js" in (await r.json())["error"]["message"]
    headers = {"Accept-Encoding": "gzip"}
    async with http.get(
        api.url + "/vendor/plotly.min.js", headers=headers, auto_decompress=False
    ) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        assert "max-age" in r.headers["Cache-Control"]
        etag = r.headers["ETag"]
        plain = gzip.decompress(await r.read())
    assert b"plotly" in plain[:2000].lower()
    async with http.get(api.url + "/vendor/plotly.min.js", headers={"If-None-Match": etag}) as r:
        assert r.status == 304
