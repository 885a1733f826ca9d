"""API read path, uncached (DESIGN.md section 6: throughput >= 0.5 of a bare aiohttp handler at
50 connections, p99 < 20 ms at an open-loop arrival rate of 500 req/s; SQLite and PostgreSQL).

``GET /api/v1/anomalies`` with varied filters (exchange, symbol, kind, min_severity, since,
until) and keyset cursors over 10,000 anomalies (written with the store's own repository code),
served by the real ``ApiServer`` with its default config (bearer token auth, rate limiter,
access log at INFO to a file) and the response cache OFF (``cache_ttl_s: 0``): every request is
one database query. Measured on SQLite (a temporary file) and on PostgreSQL (a temporary
database on ``--pg``, dropped at the end). Baseline in the same run: a bare aiohttp handler
returning 50 anomalies with ``web.json_response``. For reference only: the API with its 0.5 s
cache on one fixed URL.

The load comes from a SEPARATE process (aiohttp client, keep-alive):
- closed loop: ``--connections`` workers sending back to back for ``--seconds`` -> req/s;
- open loop: requests started at a fixed ``--rate`` whatever the answers, latency measured
  from the scheduled start (no coordinated omission) -> p50/p99.
Runs alternate the targets ``--repeats`` times; medians are reported. The machine is shared:
compare the ratio, measured in the same run, not absolute figures.

Prints a final JSON line: value = the lower uncached req/s of the two stores, baseline = bare.
Usage: python benchmarks/bench_api.py [--seconds S] [--repeats R] [--connections C] [--rate R]
       [--profile N] (cProfile of the server's loop during the SQLite closed loop, top N by
       own time, to stderr; the profiler slows that run) [--profile-store postgresql] (profile
       the PostgreSQL closed loop instead)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

LOADGEN = r"""
import asyncio, itertools, json, sys, time
import aiohttp

async def closed(http, paths, conns, seconds):
    lat, errors = [], 0
    stop = time.perf_counter() + seconds
    warm = time.perf_counter() + min(0.5, seconds / 4)
    async def worker(k):
        nonlocal errors
        for path in itertools.islice(itertools.cycle(paths), k, None):
            t0 = time.perf_counter()
            if t0 >= stop:
                return
            async with http.get(path) as r:
                await r.read()
                errors += r.status != 200
            if t0 >= warm:
                lat.append(time.perf_counter() - t0)
    t_start = time.perf_counter()
    await asyncio.gather(*(worker(k * 7) for k in range(conns)))
    return lat, errors, time.perf_counter() - max(warm, t_start)

async def opened(http, paths, rate, seconds):
    lat, errors = [], 0
    async def one(path, due):
        nonlocal errors
        async with http.get(path) as r:
            await r.read()
            errors += r.status != 200
        lat.append(time.perf_counter() - due)
    n = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], due)))
    await asyncio.gather(*tasks)
    return lat[len(lat) // 10:], errors, seconds * 0.9

async def main(base, token, mode, arg, seconds, paths):
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=500)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as http:
        if mode == "closed":
            lat, errors, measured = await closed(http, paths, int(arg), seconds)
        else:
            lat, errors, measured = await opened(http, paths, float(arg), seconds)
    lat.sort()
    print(json.dumps({
        "rps": len(lat) / measured,
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
        "requests": len(lat),
        "errors": errors,
    }))

a = sys.argv
asyncio.run(main(a[1], a[2], a[3], a[4], float(a[5]), json.loads(sys.stdin.read())))
"""

TOKEN = "bench-read-token-0123456789"
EXCHANGES = ("binance", "okx", "bybit")
SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "DOGE-USDT")
KINDS = ("volume", "price_change", "whale", "book_imbalance")  # the API refuses others
T0 = 1_700_000_000.0


def load(base: str, mode: str, arg: float, seconds: float, paths: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", LOADGEN, base, TOKEN, mode, str(arg), str(seconds)],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def anomalies(n: int) -> list[Any]:
    from cryptomon.events import Anomaly, Severity

    sev = list(Severity)
    return [
        Anomaly(
            exchange=EXCHANGES[i % 3],
            symbol=SYMBOLS[i % 5],
            ts=T0 + i,
            ts_recv=T0 + i,
            kind=KINDS[i % 4],
            severity=sev[(i * 7) % 4],
            value=float(i),
            threshold=3.0,
            confidence=0.7,
            z_score=3.5,
            reasons=(f"Z-score: {3 + i % 5}.00",),
            window_mean=1.0,
            window_std=0.5,
            samples=60,
            ts_detected=T0 + i + 0.001,
            id=f"{i:032x}",
        )
        for i in range(n)
    ]


def paths(n: int, count: int = 400) -> list[str]:
    """Request paths with varied filters (the documented combinations) and cursors."""
    from cryptomon.store.queries import encode_cursor
    from cryptomon.store.types import utc

    rnd = random.Random(7)
    combos: list[tuple[str, ...]] = [
        (),
        ("exchange",),
        ("exchange", "symbol"),
        ("symbol",),
        ("kind",),
        ("min_severity",),
        ("kind", "min_severity"),
        ("exchange", "symbol", "kind"),
        ("since",),
        ("since", "until"),
    ]
    out = []
    for k in range(count):
        q: dict[str, Any] = {"limit": 50}
        for name in combos[k % len(combos)]:
            if name == "exchange":
                q[name] = rnd.choice(EXCHANGES)
            elif name == "symbol":
                q[name] = rnd.choice(SYMBOLS)
            elif name == "kind":
                q[name] = rnd.choice(KINDS)
            elif name == "min_severity":
                q[name] = rnd.choice(("medium", "high", "critical"))
            elif name == "since":
                q[name] = T0 + rnd.randrange(n // 2)
            elif name == "until":
                q[name] = q["since"] + rnd.randrange(100, n // 2)
        if rnd.random() < 0.5:  # a later page: a cursor at a random row
            i = rnd.randrange(n)
            q["cursor"] = encode_cursor(utc(T0 + i + 0.001), f"{i:032x}")
        out.append(f"/api/v1/anomalies?{urlencode(q)}")
    return out


async def open_store(url: str, events: list[Any]) -> Any:
    from cryptomon.config import DatabaseConfig
    from cryptomon.store.db import Database
    from cryptomon.store.repos import insert_anomalies

    db = Database(DatabaseConfig(url=url, pool_size=10, max_overflow=10))
    await db.start()
    async with db.sessionmaker() as session, session.begin():
        for k in range(0, len(events), 1000):
            await insert_anomalies(session, events[k : k + 1000])
    if db.dialect == "postgresql":  # statistics, as autovacuum gives a daemon's tables
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE anomalies")
    return db


def pg_admin(pg: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(pg.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute(sql)


async def api_server(db: Any, ttl: float) -> Any:
    from cryptomon.api import ApiServer
    from cryptomon.clock import LiveClock
    from cryptomon.config import ApiConfig
    from cryptomon.hub import Hub
    from cryptomon.store.queries import Queries

    cfg = ApiConfig.model_validate(
        {
            "port": 0,
            "tokens": [{"name": "bench", "token": TOKEN}],
            "rate_limit_per_s": 1e6,
            "rate_limit_burst": 1_000_000,
            "max_inflight_per_ip": 100_000,  # every load client is 127.0.0.1
            "cache_ttl_s": ttl,
        }
    )
    server = ApiServer(config=cfg, hub=Hub(), clock=LiveClock(), queries=Queries(db=db), db=db)
    await server.start()
    return server


async def bare_server(db: Any) -> Any:
    from aiohttp import web

    from cryptomon.store.queries import Queries

    rows, _ = await Queries(db=db).anomalies(limit=50)

    async def bare(request: web.Request) -> web.Response:
        return web.json_response({"items": rows, "next_cursor": None})

    app = web.Application()
    app.router.add_get("/api/v1/anomalies", bare)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def serve(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    from cryptomon import log

    tmp = Path(tempfile.mkdtemp(prefix="bench_api_"))
    pg_name = f"bench_api_{int(time.time())}"
    events = anomalies(args.anomalies)
    varied = paths(args.anomalies)
    pg_admin(args.pg, f"CREATE DATABASE {pg_name}")
    with (tmp / "access.log").open("w") as log_file:
        log.configure(level="INFO", fmt="json", stream=log_file)
        dbs = {
            "sqlite": await open_store(f"sqlite+aiosqlite:///{tmp / 'bench.db'}", events),
            "postgresql": await open_store(f"{args.pg.rsplit('/', 1)[0]}/{pg_name}", events),
        }
        bare_runner, bare_url = await bare_server(dbs["sqlite"])
        servers = {name: await api_server(db, 0.0) for name, db in dbs.items()}
        cached = await api_server(dbs["sqlite"], 0.5)
        targets = [("bare", bare_url, "closed", args.connections, varied)]
        for name, server in servers.items():
            targets.append((name, server.url, "closed", args.connections, varied))
            targets.append((f"{name}_open", server.url, "open", args.rate, varied))
        targets.append(("cached", cached.url, "closed", args.connections, [varied[0]]))
        results: dict[str, list[dict[str, Any]]] = {t[0]: [] for t in targets}
        try:
            for _ in range(args.repeats):
                for name, base, mode, arg, urls in targets:
                    profiled = args.profile and name == args.profile_store
                    profiler = cProfile.Profile() if profiled else None
                    if profiler is not None:
                        profiler.enable()  # the loop thread: server, middleware, store calls
                    cpu = time.process_time()  # this process: the servers' loop and threads
                    res = await asyncio.to_thread(load, base, mode, arg, args.seconds, urls)
                    served = res["rps"] * args.seconds
                    res["server_cpu_ms"] = (time.process_time() - cpu) * 1000 / max(served, 1)
                    if profiler is not None:
                        profiler.disable()
                        stats = pstats.Stats(profiler, stream=sys.stderr)
                        stats.sort_stats("tottime").print_stats(args.profile)
                    results[name].append(res)
                    print(f"{name:16s} {json.dumps(res)}", file=sys.stderr)
        finally:
            for server in (*servers.values(), cached):
                await server.stop()
            await bare_runner.cleanup()
            for db in dbs.values():
                await db.stop()
            pg_admin(args.pg, f"DROP DATABASE IF EXISTS {pg_name}")
    return results


def med(runs: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(r[key] for r in runs)), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--rate", type=float, default=500.0, help="open-loop arrivals per second")
    p.add_argument("--anomalies", type=int, default=10_000)
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="cProfile the server's loop during the SQLite closed loop; print the top N",
    )
    p.add_argument(
        "--profile-store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the closed loop --profile profiles",
    )
    p.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    t0 = time.perf_counter()
    results = runner(serve(args))
    base = med(results["bare"], "rps")
    stores = {
        name: {
            "rps": med(results[name], "rps"),
            "ratio": round(med(results[name], "rps") / base, 3),
            "p50_ms_closed": med(results[name], "p50_ms"),
            "p99_ms_open": med(results[f"{name}_open"], "p99_ms"),
            "p50_ms_open": med(results[f"{name}_open"], "p50_ms"),
            "server_cpu_ms": med(results[name], "server_cpu_ms"),
        }
        for name in ("sqlite", "postgresql")
    }
    worst = min(s["rps"] for s in stores.values())
    print(json.dumps({**stores, "cached_rps": med(results["cached"], "rps")}), file=sys.stderr)
    print(
        json.dumps(
            {
                "bench": "api",
                "value": worst,
                "unit": "req/s",
                "baseline": base,
                "baseline_server_cpu_ms": med(results["bare"], "server_cpu_ms"),
                "ratio": round(worst / base, 3),
                "target": f"ratio >= 0.5 at {args.connections} conns; p99 < 20 ms at "
                f"{args.rate:g} req/s (open loop)",
                "p99_ms_open": max(s["p99_ms_open"] for s in stores.values()),
                "stores": stores,
                "cached_rps": med(results["cached"], "rps"),
                "errors": sum(r["errors"] for rs in results.values() for r in rs),
                "anomalies": args.anomalies,
                "elapsed_s": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
