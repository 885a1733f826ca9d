"""Receipt of a trade to publication of its anomaly (DESIGN.md section 6, target: p99 < 2 ms;
absolute, no baseline).

Two processes, as in production (the exchange is not inside the daemon):

- the exchange: :class:`cryptomon.sim.exchange.SimExchange` in a child process (this script
  with ``--serve``), ``--background`` markets plus ``--triggers`` whale markets, stepped every
  ``--interval`` s (Binance's ``depth@100ms`` pace: every market's trades, depth diff and
  top change in one burst per step). A step hook prints one whale trade (a taker order of
  1.5M USDT against an iceberg at the best level, as the ``whale`` scenario does) every
  ``--trigger-every`` s, rotating over the whale markets, which trade normally otherwise.
- the daemon: ``build_app`` (store writer on a temporary SQLite file, detectors with
  ``cooldown_s: 0`` so every whale is reported and a warm-up of 5 trades and 5 s of 1 s
  buckets so they report within the run, notifier, paper trading, MarketState, feeds;
  API off) on uvloop, subscribed over loopback websockets to trades and order books of every
  market through the real cryptofeed Binance code (the ``simulator`` exchange).

Per anomaly after ``--warmup-s``:

- self-reported: ``ts_detected - ts_recv`` (both ``time.time()``: ``ts_recv`` is cryptofeed's
  receipt time of the websocket message, ``ts_detected`` the detector engine's clock when it
  built the anomaly, after the ``loop.call_soon`` micro-batch flush);
- independent: a hub subscriber to ``Anomaly`` takes ``time.perf_counter()`` when the anomaly
  is published and subtracts the ``perf_counter`` taken when the adapter's trade callback
  (``Converter.trade``) received the whale trade (matched by symbol and trade time).

Prints p50/p95/p99/max/count of both (the self-reported figure for trade-driven anomalies and
for all anomalies), the engine's own latency histogram, and a final JSON line whose value is
the self-reported p99 of trade-driven anomalies in ms.

The cryptofeed reader (websockets) hands every message already received to its callbacks
without giving the loop back, so the detectors' ``call_soon`` flush runs only after the rest
of a burst is parsed. ``--yield-every N`` is a what-if: the adapter's callbacks yield to the
loop every N messages (as a reader that yields would), to measure what that would change.

Usage: python benchmarks/bench_latency.py [--seconds 30] [--background 100] [--quick]
       [--yield-every N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WHALE_NOTIONAL = 1_500_000.0  # USDT; the detectors' absolute whale threshold is 1M
PRICE = 100.0
TRADE_KINDS = frozenset(
    {
        "whale",
        "whale_burst",
        "volume",
        "volume_imbalance",
        "price_change",
        "volatility",
        "ma_deviation",
    }
)


def market_names(background: int, triggers: int) -> tuple[list[str], list[str]]:
    """All markets (whale markets spread evenly among the others) and the whale markets."""
    bg = [f"BG{i:03d}-USDT" for i in range(background)]
    whales = [f"WHL{i:02d}-USDT" for i in range(triggers)]
    out = list(bg)
    step = max(1, len(bg) // max(1, triggers))
    for i, w in enumerate(whales):
        out.insert(min(len(out), i * (step + 1) + step // 2), w)
    return out, whales


# --------------------------------------------------------------------------- the exchange


async def serve(args: argparse.Namespace) -> None:
    from cryptomon.sim.exchange import SimExchange
    from cryptomon.sim.market import MarketModel, Side, SymbolSpec

    names, whales = market_names(args.background, args.triggers)
    specs = [SymbolSpec(n, price=PRICE, tick=0.01, trade_size=2.0, level_size=50.0) for n in names]
    sim = SimExchange(MarketModel(specs, seed=7, levels=args.levels), interval=args.interval)
    state = {"next": 0.0, "i": 0}

    def whale(s: SimExchange, now: float) -> None:
        if now < state["next"]:
            return
        state["next"] = now + args.trigger_every
        i = int(state["i"])
        state["i"] = i + 1
        sym = whales[i % len(whales)]
        m = s.market.market(sym)
        side: Side = "buy" if i % 2 == 0 else "sell"
        amount = round(WHALE_NOTIONAL / m.mid, 2)
        m.add_liquidity("ask" if side == "buy" else "bid", amount * 1.05)
        s.apply_trade(sym, side, amount)

    sim.add_step_hook(whale)
    await sim.start()
    print(json.dumps({"url": sim.rest_url}), flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await sim.stop()


# --------------------------------------------------------------------------- the daemon


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "p50": round(pct(ms, 50), 3),
        "p95": round(pct(ms, 95), 3),
        "p99": round(pct(ms, 99), 3),
        "max": round(max(ms), 3) if ms else float("nan"),
        "count": len(ms),
    }


async def daemon(args: argparse.Namespace, url: str, db: Path) -> dict[str, Any]:
    from cryptomon.app import build_app
    from cryptomon.config import load_settings
    from cryptomon.events import Anomaly
    from cryptomon.hub import Hub
    from cryptomon.log import configure as configure_logging

    names, _ = market_names(args.background, args.triggers)
    settings = load_settings(
        data={
            "exchanges": [
                {
                    "name": "simulator",
                    "url": url,
                    "symbols": names,
                    "subscriptions": ["trades", "orderbook"],
                }
            ],
            # the detectors' warm-up (min_samples trades and min_samples buckets of event
            # time; 30 minutes by default) must pass within the run: 5 trades and 5 s
            "anomaly_detection": {"cooldown_s": 0, "min_samples": 5, "bucket_seconds": 1},
            "database": {"url": f"sqlite+aiosqlite:///{db}"},
            "api": {"enabled": False},
            "logging": {"level": "ERROR"},
        }
    )
    configure_logging(level="ERROR", fmt="json")
    t_cb: dict[tuple[str, float], float] = {}
    perf = time.perf_counter
    loop = asyncio.get_running_loop()
    yielded: list[float] = []
    measuring = [False]
    self_trade: list[float] = []
    self_all: list[float] = []
    indep: list[float] = []
    kinds: dict[str, int] = {}

    def on_anomaly(a: Anomaly) -> None:
        now = perf()
        if not measuring[0]:
            return
        lat = a.ts_detected - a.ts_recv
        self_all.append(lat)
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
        if a.kind in TRADE_KINDS:
            self_trade.append(lat)
        if a.kind == "whale":
            t0 = t_cb.pop((a.symbol, a.ts), None)
            if t0 is not None:
                indep.append(now - t0)

    hub = Hub()
    # subscribed before the daemon's own subscribers: the time of publication, not of the
    # end of the other inline subscribers' work
    hub.subscribe(Anomaly, on_anomaly, name="bench.latency")
    app = build_app(settings, hub=hub)
    assert app.services.feeds is not None
    feed: Any = app.services.feeds.sources[0]
    conv = feed.converter
    adapter_trade = conv.trade

    def loop_turn(t0: float) -> None:
        if measuring[0]:
            yielded.append(perf() - t0)

    async def timed_trade(t: Any, receipt: float) -> None:
        # the adapter's callback, timed when it receives a whale trade (before converting it)
        t0 = 0.0
        if t.amount * t.price >= 1_000_000:
            key = (t.symbol, float(t.timestamp))
            if key not in t_cb:
                t_cb[key] = t0 = perf()
        await adapter_trade(t, receipt)
        if t0:
            # queued after the detectors' flush: runs when the feed's reader gives the loop back
            loop.call_soon(loop_turn, t0)

    conv.trade = timed_trade  # read by the feed's callbacks when it starts
    if args.yield_every > 0:
        # what-if: the feed's reader gives the loop back every N messages (not what the daemon
        # does today): the detectors' call_soon flush then runs within N messages
        every = args.yield_every
        count = [0]

        def yielding(cb: Any) -> Any:
            async def wrapped(obj: Any, receipt: float) -> None:
                await cb(obj, receipt)
                count[0] += 1
                if count[0] % every == 0:
                    await asyncio.sleep(0)

            return wrapped

        conv.trade = yielding(conv.trade)
        conv.book = yielding(conv.book)

    await app.start()
    try:
        health = app.services.feeds.health
        deadline = time.monotonic() + 30
        while health()["simulator"]["state"] != "live":
            if time.monotonic() > deadline:
                raise SystemExit(f"bench_latency: the feed did not go live: {health()}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(args.warmup_s)  # books snapshotted, caches warm
        t_cb.clear()
        measuring[0] = True
        await asyncio.sleep(args.seconds)
        measuring[0] = False
        stats = app.services.detectors.stats() if app.services.detectors else {}
        h = health()["simulator"]
    finally:
        await app.stop()
    return {
        "self_trade": summary(self_trade),
        "self_all": summary(self_all),
        "indep": summary(indep),
        "turn": summary(yielded),
        "kinds": kinds,
        "engine_hist": stats.get("latency_seconds", {}),
        "messages": h.get("messages"),
        "parse_errors": h.get("parse_errors"),
        "reconnects": h.get("reconnects"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0, help="measured time (default 30)")
    p.add_argument("--warmup-s", type=float, default=5.0)
    p.add_argument("--background", type=int, default=100, help="markets of background load")
    p.add_argument("--triggers", type=int, default=10, help="whale markets")
    p.add_argument("--trigger-every", type=float, default=0.05, help="s between whale trades")
    p.add_argument("--interval", type=float, default=0.1, help="exchange step, s")
    p.add_argument("--levels", type=int, default=20, help="book levels per side")
    p.add_argument(
        "--yield-every",
        type=int,
        default=0,
        help="what-if: yield to the loop every N feed callbacks (0 = as the daemon runs)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 8 s, 30 markets")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    import uvloop

    if args.serve:
        uvloop.run(serve(args))
        return 0
    if args.quick:
        args.seconds, args.warmup_s, args.background = 8.0, 3.0, 30
    if args.seconds <= 0 or args.background < 0 or args.triggers < 1 or args.interval <= 0:
        print("bench_latency: bad arguments (seconds > 0, triggers >= 1)", file=sys.stderr)
        return 2
    cmd = [sys.executable, __file__, "--serve"] + [
        f"--{k}={getattr(args, k.replace('-', '_'))}"
        for k in ("background", "triggers", "trigger-every", "interval", "levels")
    ]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            print("bench_latency: the simulator process did not start", file=sys.stderr)
            return 1
        url = json.loads(line)["url"]
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            res = uvloop.run(daemon(args, url, Path(tmp) / "daemon.sqlite"))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    n = args.background + args.triggers
    print(
        f"latency: {n} markets (trades + order books), a whale every {args.trigger_every} s, "
        f"{args.seconds:g} s measured; feed messages {res['messages']}, parse errors "
        f"{res['parse_errors']}, reconnects {res['reconnects']}"
    )
    if args.yield_every:
        print(f"  WHAT-IF run: the loop is yielded every {args.yield_every} feed callbacks")
    print(f"  anomalies by kind: {res['kinds']}")
    for label, key in (
        ("self-reported ts_detected - ts_recv, trade-driven", "self_trade"),
        ("self-reported ts_detected - ts_recv, all anomalies", "self_all"),
        ("independent perf_counter adapter callback -> publish, whale", "indep"),
        ("adapter callback -> next loop turn (after the flush), whale", "turn"),
    ):
        s = res[key]
        print(
            f"  {label}: p50 {s['p50']} ms, p95 {s['p95']} ms, p99 {s['p99']} ms, "
            f"max {s['max']} ms, n={s['count']}"
        )
    hist = res["engine_hist"]
    if hist:
        print(f"  engine histogram (whole run, cumulative, s): {hist.get('buckets')}")
    p99 = res["self_trade"]["p99"]
    print(
        json.dumps(
            {
                "bench": "latency",
                "value": p99,
                "unit": "ms",
                "baseline": None,
                "ratio": None,
                "target": "< 2",
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
