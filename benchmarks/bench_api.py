"""API throughput and latency (DESIGN.md section 6, target: ratio >= 0.5 and p99 < 20 ms).

``GET /api/v1/anomalies?limit=50`` with 10,000 anomalies in a SQLite store (written with the
store's own repository code), served by the real ``ApiServer`` with its default config
(bearer token auth, rate limiter, access log at INFO to a file, 0.5 s response cache that a
new anomaly clears), against the baseline: a bare aiohttp handler returning the same 50
anomalies with ``web.json_response``, in the same process and the same run.

The load comes from a SEPARATE process: 50 concurrent keep-alive connections (aiohttp
client), each sending requests back to back for ``--seconds``; it reports req/s and the
p50/p99 latency it saw. Runs alternate baseline / API ``--repeats`` times; medians are
reported. Also measured and reported: the API with the cache off (``cache_ttl_s: 0``),
i.e. one SQLite query per request.

Prints a final JSON line: value = API req/s, baseline = bare req/s.
Usage: python benchmarks/bench_api.py [--seconds S] [--repeats R] [--connections C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LOADGEN = r"""
import asyncio, json, sys, time
import aiohttp

async def main(url, token, conns, seconds):
    lat = []
    stop = time.perf_counter() + seconds
    warm = time.perf_counter() + min(0.5, seconds / 4)
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        async def worker():
            nonlocal errors
            while True:
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                async with http.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                t1 = time.perf_counter()
                if t0 >= warm:
                    lat.append(t1 - t0)
        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
    measured = time.perf_counter() - max(warm, t_start)
    lat.sort()
    print(json.dumps({
        "rps": len(lat) / measured,
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
        "requests": len(lat),
        "errors": errors,
    }))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""

TOKEN = "bench-read-token-0123456789"
PATH = "/api/v1/anomalies?limit=50"


def load(url: str, connections: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", LOADGEN, url, TOKEN, str(connections), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def seed(db: Any, n: int) -> None:
    from cryptomon.events import Anomaly, Severity
    from cryptomon.store.repos import insert_anomalies

    sev = list(Severity)
    events = [
        Anomaly(
            exchange=("binance", "okx", "bybit")[i % 3],
            symbol=("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")[i % 4],
            ts=1_700_000_000.0 + i,
            ts_recv=1_700_000_000.0 + i,
            kind=("volume", "price", "whale", "book")[i % 4],
            severity=sev[i % 4],
            value=float(i),
            threshold=3.0,
            confidence=0.7,
            z_score=3.5,
            reasons=(f"Z-score: {3 + i % 5}.00",),
            window_mean=1.0,
            window_std=0.5,
            samples=60,
            ts_detected=1_700_000_000.0 + i + 0.001,
            id=f"{i:032x}",
        )
        for i in range(n)
    ]
    async with db.sessionmaker() as session, session.begin():
        for k in range(0, n, 1000):
            await insert_anomalies(session, events[k : k + 1000])


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    from aiohttp import web

    from cryptomon import log
    from cryptomon.api import ApiServer
    from cryptomon.clock import LiveClock
    from cryptomon.config import ApiConfig, DatabaseConfig
    from cryptomon.hub import Hub
    from cryptomon.store.db import Database
    from cryptomon.store.queries import Queries

    tmp = Path(tempfile.mkdtemp(prefix="bench_api_"))
    with (tmp / "access.log").open("w") as log_file:
        log.configure(level="INFO", fmt="json", stream=log_file)
        db = Database(DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp / 'bench.db'}"))
        await db.start()
        await seed(db, args.anomalies)
        queries = Queries(db=db)
        rows, _ = await queries.anomalies(limit=50)

        async def bare(request: web.Request) -> web.Response:
            return web.json_response({"items": rows, "next_cursor": None})

        bare_app = web.Application()
        bare_app.router.add_get("/api/v1/anomalies", bare)
        bare_runner = web.AppRunner(bare_app, access_log=None)
        await bare_runner.setup()
        await web.TCPSite(bare_runner, "127.0.0.1", 0).start()
        bare_url = f"http://127.0.0.1:{bare_runner.addresses[0][1]}{PATH}"

        servers = {}
        for name, ttl in (("api", 0.5), ("api_nocache", 0.0)):
            cfg = ApiConfig.model_validate(
                {
                    "port": 0,
                    "tokens": [{"name": "bench", "token": TOKEN}],
                    "rate_limit_per_s": 1e6,
                    "rate_limit_burst": 1_000_000,
                    "cache_ttl_s": ttl,
                }
            )
            hub = Hub()
            server = ApiServer(config=cfg, hub=hub, clock=LiveClock(), queries=queries, db=db)
            await server.start()
            servers[name] = (server, f"{server.url}{PATH}")

        results: dict[str, list[dict[str, Any]]] = {"bare": [], "api": [], "api_nocache": []}
        for _ in range(args.repeats):
            for name, url in (
                ("bare", bare_url),
                ("api", servers["api"][1]),
                ("api_nocache", servers["api_nocache"][1]),
            ):
                res = await asyncio.to_thread(load, url, args.connections, args.seconds)
                results[name].append(res)
                print(f"{name:12s} {json.dumps(res)}", file=sys.stderr)
        for server, _ in servers.values():
            await server.stop()
        await bare_runner.cleanup()
        await db.stop()
    return results


def med(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--anomalies", type=int, default=10_000)
    args = p.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    t0 = time.perf_counter()
    results = runner(serve(args))
    api, base, nocache = (
        med(results["api"], "rps"),
        med(results["bare"], "rps"),
        med(results["api_nocache"], "rps"),
    )
    p99 = med(results["api"], "p99_ms")
    print(
        json.dumps(
            {
                "bench": "api",
                "value": round(api, 1),
                "unit": "req/s",
                "baseline": round(base, 1),
                "ratio": round(api / base, 3),
                "target": "ratio >= 0.5 and p99 < 20 ms",
                "p99_ms": round(p99, 2),
                "p50_ms": round(med(results["api"], "p50_ms"), 2),
                "baseline_p99_ms": round(med(results["bare"], "p99_ms"), 2),
                "nocache_value": round(nocache, 1),
                "nocache_ratio": round(nocache / base, 3),
                "nocache_p99_ms": round(med(results["api_nocache"], "p99_ms"), 2),
                "errors": sum(r["errors"] for rs in results.values() for r in rs),
                "store": "sqlite",
                "anomalies": args.anomalies,
                "connections": args.connections,
                "elapsed_s": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
