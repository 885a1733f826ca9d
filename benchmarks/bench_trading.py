"""Trading hot paths: the indicator strategy's kernels and the pure risk check.

1. Indicators: RSI(14), MACD(12,26,9), Bollinger(20,2), SMA(20/50), EMA(12/26) over N closes
   with the numba kernels vs the same with pandas (rolling/ewm) in the same run.
2. Risk: ``risk.check`` decisions per second for a realistic intent (no baseline; printed).

The last line is JSON: value = indicator closes/s (numba), baseline = pandas closes/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from decimal import Decimal

import numpy as np
import pandas as pd

from cryptomon.events import OrderIntent
from cryptomon.trading.brokers.base import MarketInfo
from cryptomon.trading.indicators_nb import bollinger_nb, ema_nb, macd_nb, rsi_nb, sma_nb
from cryptomon.trading.risk import Limits, MarketView, PortfolioView, check


def numba_all(x: np.ndarray) -> float:
    t = time.perf_counter()
    rsi_nb(x, 14)
    macd_nb(x, 12, 26, 9)
    bollinger_nb(x, 20, 2.0)
    sma_nb(x, 20)
    sma_nb(x, 50)
    ema_nb(x, 12)
    ema_nb(x, 26)
    return time.perf_counter() - t


def pandas_all(x: np.ndarray) -> float:
    t = time.perf_counter()
    s = pd.Series(x)
    d = s.diff()
    g = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    lo = (-d.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    _ = 100 - 100 / (1 + g / lo)
    e12 = s.ewm(span=12, adjust=False).mean()
    e26 = s.ewm(span=26, adjust=False).mean()
    line = e12 - e26
    _ = line - line.ewm(span=9, adjust=False).mean()
    r = s.rolling(20)
    m, sd = r.mean(), r.std(ddof=0)
    _ = (m + 2 * sd, m - 2 * sd)
    _ = s.rolling(50).mean()
    return time.perf_counter() - t


def risk_rate(n: int) -> float:
    d = Decimal
    intent = OrderIntent(
        exchange="binance",
        symbol="BTC-USDT",
        ts=0.0,
        ts_recv=0.0,
        client_order_id="cms",
        side="buy",
        type="limit",
        amount=d("0.01"),
        price=d("60000.00"),
    )
    pv = PortfolioView(
        equity=d(10000),
        positions={("binance", "ETH-USDT"): d(1)},
        marks={("binance", "ETH-USDT"): d(3000)},
    )
    info = MarketInfo(
        symbol="BTC-USDT",
        base="BTC",
        quote="USDT",
        tick_size=d("0.01"),
        lot_size=d("0.00001"),
        min_notional=d(5),
    )
    mv = MarketView(mid=d("60010.00"), info=info)
    limits = Limits(auto_trading_enabled=True, max_total_exposure=d(5000))
    t = time.perf_counter()
    for _ in range(n):
        check(intent, pv, mv, limits)
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--closes", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--risk-checks", type=int, default=20_000)
    args = parser.parse_args()
    x = 100 + np.cumsum(np.random.default_rng(1).normal(0, 0.1, args.closes))
    numba_all(x[:100])  # compile / load the cache
    nb = statistics.median(numba_all(x) for _ in range(args.repeats))
    pdt = statistics.median(pandas_all(x) for _ in range(args.repeats))
    rr = statistics.median(risk_rate(args.risk_checks) for _ in range(args.repeats))
    nb_rate, pd_rate = args.closes / nb, args.closes / pdt
    print(f"indicators, numba : {nb_rate:>14,.0f} closes/s")
    print(f"indicators, pandas: {pd_rate:>14,.0f} closes/s")
    print(f"risk checks       : {rr:>14,.0f} decisions/s ({1e6 / rr:.1f} us each)")
    print(
        json.dumps(
            {
                "bench": "trading",
                "value": round(nb_rate),
                "unit": "closes/s",
                "baseline": round(pd_rate),
                "ratio": round(nb_rate / pd_rate, 3),
                "target": ">= 1x pandas",
                "risk_checks_per_s": round(rr),
            }
        )
    )


if __name__ == "__main__":
    main()
