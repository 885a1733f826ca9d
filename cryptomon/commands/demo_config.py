"""The demo's settings: its markets (``--markets``, ``--perpetual``), the built-in daemon
settings for the simulator, its scenario, and the user's ``--config`` merged over them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptomon.commands.support import with_logging

DEMO_SYMBOLS = ("BTC-USDT", "ETH-USDT")
MORE_SYMBOLS = (
    "SOL-USDT",
    "BNB-USDT",
    "XRP-USDT",
    "ADA-USDT",
    "DOGE-USDT",
    "LTC-USDT",
    "DOT-USDT",
    "LINK-USDT",
)
DEMO_ADMIN_NAME = "demo-admin"
PERP_SYMBOL = "BTC-USDT-PERP"  # the simulator's linear perpetual (priced like BTC-USDT)
PERP_LEVERAGE = 5.0


def demo_symbols(markets: int = 2, *, perpetual: bool = False) -> tuple[str, ...]:
    """The first ``markets`` demo symbols (BTC-USDT, ETH-USDT, then eight more), and with
    ``perpetual`` the BTC-USDT perpetual after them."""
    return (DEMO_SYMBOLS + MORE_SYMBOLS)[:markets] + ((PERP_SYMBOL,) if perpetual else ())


def perpetual_trading() -> dict[str, Any]:
    """The trading settings of a demo with the perpetual: 5x isolated on it, shorts allowed."""
    return {
        "max_leverage": PERP_LEVERAGE,
        "allow_short": True,
        "overrides": {PERP_SYMBOL: {"leverage": PERP_LEVERAGE, "margin_mode": "isolated"}},
    }


def demo_settings_data(
    *,
    sim_url: str,
    db_path: Path,
    port: int,
    notify_url: str | None = None,
    token: str | None = None,
    symbols: tuple[str, ...] = DEMO_SYMBOLS,
) -> dict[str, Any]:
    """The built-in demo configuration (only keys the installed sections know): reads open
    to anyone on loopback (``api.public_read``) and, with ``token``, an admin token."""
    from cryptomon.config import AnomalyDetectionConfig, TradingConfig

    def known(model: Any, values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k in model.model_fields}

    return {
        "exchanges": [
            {
                "name": "simulator",
                "url": sim_url,
                "symbols": list(symbols),
                "subscriptions": ["trades", "orderbook", "ticker", "candles"],
                "depth": 20,
                "stale_after_s": 10.0,
            }
        ],
        "anomaly_detection": known(
            AnomalyDetectionConfig,
            {
                "price_change_percentage": 1.0,
                "lookback_window_minutes": 1.0,
                "bucket_seconds": 1.0,
                "min_samples": 5,
                "cooldown_s": 5.0,
            },
        ),
        "trading": known(TradingConfig, {"auto_trading_enabled": True, "mode": "paper"}),
        "alerts": {
            "channels": (
                [{"name": "demo", "url": notify_url, "min_severity": "low"}] if notify_url else []
            ),
            "api_base_url": f"http://127.0.0.1:{port}",  # alert links use the real port
        },
        "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
        "data_dir": str(db_path.parent),
        "api": {
            "host": "127.0.0.1",
            "port": port,
            "public_read": True,
            "tokens": (
                [{"name": DEMO_ADMIN_NAME, "token": token, "scopes": ["read", "trade", "admin"]}]
                if token
                else []
            ),
        },
        "shutdown_timeout_s": 10.0,
    }


def demo_scenario(
    symbol: str = "BTC-USDT",
    warmup_s: float = 8.0,
    *,
    every_s: float = 4.0,
    symbols: tuple[str, ...] | None = None,
) -> Any:
    """A market event every ``every_s`` seconds after a short warm-up, repeated for a long
    demo; with ``symbols``, the events go round the markets in turn."""
    from cryptomon.sim.scenarios import Injection, Scenario

    cycle = [
        ("volume", 10.0, 3.0),
        ("price_change", 2.5, 2.0),
        ("whale", 150.0, 1.0),
        ("book_imbalance", 8.0, 3.0),
        ("spread", 60.0, 3.0),
        ("price_change", -2.5, 2.0),
    ]
    targets = symbols or (symbol,)
    repeats = max(150, int(3600 / (every_s * len(cycle))))
    injections = []
    jumps: dict[str, int] = {}  # per market: its price jumps so far
    for n, (kind, size, duration) in enumerate(cycle * repeats):
        target = targets[n % len(targets)]
        magnitude = size
        if kind == "price_change":  # each market's jumps alternate up and down, the way
            # down undoing the way up (with the events going round the markets, one market
            # could get every jump up; +2.5 % then -2.5 % also drifted down)
            count = jumps[target] = jumps.get(target, 0) + 1
            up = abs(size)
            magnitude = up if count % 2 else -100.0 * up / (100.0 + up)
        injections.append(Injection(kind, target, warmup_s + n * every_s, duration, magnitude))
    return Scenario("demo", injections)


def user_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--config`` file (raises ConfigError naming the problem); {} without one."""
    from cryptomon.config import read_yaml

    path = getattr(args, "config", None)
    return read_yaml(path) if path else {}


def demo_settings(
    args: argparse.Namespace,
    *,
    sim: Any,
    db_path: Path,
    port: int,
    token: str,
    user: dict[str, Any],
) -> Any:
    """The demo settings under the ``--config`` file (which wins, except for the simulated
    exchanges), the environment, and the command line's logging overrides."""
    from cryptomon.config import load_settings
    from cryptomon.config.loader import deep_merge

    data = demo_settings_data(
        sim_url=sim.rest_url,
        db_path=db_path,
        port=port,
        notify_url=f"json://127.0.0.1:{sim.port}/demo/notify",
        token=token,
        symbols=demo_symbols(args.markets, perpetual=getattr(args, "perpetual", False)),
    )
    if getattr(args, "perpetual", False):
        data["trading"] = {**data["trading"], **perpetual_trading()}
    user = {k: v for k, v in user.items() if k != "exchanges"}  # the demo's feed is the simulator
    merged = deep_merge(data, user)
    user_api = user.get("api") if isinstance(user.get("api"), dict) else {}
    if isinstance(user_api, dict) and isinstance(user_api.get("tokens"), list):
        merged["api"]["tokens"] = [*user_api["tokens"], *data["api"]["tokens"]]
    merged["api"]["port"] = port
    return with_logging(
        load_settings(data=merged),
        level=getattr(args, "log_level", None) or ("WARNING" if args.json else None),
        fmt=getattr(args, "log_format", None),
    )
