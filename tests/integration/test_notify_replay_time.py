"""``crypto-monitor replay`` notifies as the live daemon would have on the recorded market: the
dedup window is measured on the recording's time, not on the seconds the replay took. A
synthetic Binance recording of three hours (the shared recording's symbol lists, websocket
trades written here) is replayed at full speed by the CLI into a real HTTP sink."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from tests.integration.notify_sinks import HttpSink

CLI = [sys.executable, "-m", "cryptomon"]
START = 1_633_998_600.0  # 2021-10-12, within the day the shared BINANCE.0 was recorded
DEDUP_S = 300.0


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[HttpSink]:
    web = await HttpSink().start()
    yield web
    await web.close()


def _trade(ts: float, ident: int, amount: float) -> str:
    ms = round(ts * 1000)
    data = {
        "e": "aggTrade",
        "E": ms,
        "s": "NKNUSDT",
        "a": ident,
        "p": "0.35000000",
        "q": f"{amount:.8f}",
        "f": ident,
        "l": ident,
        "T": ms,
        "m": False,
        "M": True,
    }
    return f"{ts:.6f}: " + json.dumps({"stream": "nknusdt@aggTrade", "data": data})


def synthetic_recording(shared_data: Path, out: Path, whales_at: list[float]) -> list[str]:
    """BINANCE.0 (the shared recording's symbol lists, subscribed to NKN-USDT trades only)
    and a websocket file of three hours of small trades, one a minute, with a 35,000 USDT
    trade ``whales_at`` seconds after the start."""
    out.mkdir()
    subscribed = "configuration: " + json.dumps({"trades": ["NKN-USDT"]})
    main = [
        subscribed if line.startswith("configuration:") else line
        for line in (shared_data / "BINANCE.0").read_text().splitlines()
    ]
    (out / "BINANCE.0").write_text("\n".join(main) + "\n")
    stream = "wss://stream.binance.com:9443/stream?streams=nknusdt@aggTrade"
    lines = [f"{stream} <-> {START - 1:.6f}"]
    trades = [(START + 60.0 * i, 10.0) for i in range(180)]
    trades += [(START + at, 100_000.0) for at in whales_at]
    for ident, (ts, amount) in enumerate(sorted(trades), start=1):
        lines.append(_trade(ts, ident, amount))
    (out / "BINANCE.ws.1.0").write_text("\n".join(lines) + "\n")
    return [str(out / "BINANCE.0"), str(out / "BINANCE.ws.1.0")]


def replay_config(path: Path, sink: HttpSink) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite+aiosqlite:///{path.parent / 'replay.db'}"},
                "api": {"enabled": False},
                "logging": {"level": "WARNING"},
                "anomaly_detection": {
                    "whale_notional": {"USDT": 20_000.0},
                    "cooldown_s": 0.0,
                },
                "alerts": {
                    "dedup_window_s": DEDUP_S,
                    "retries": 0,
                    "channels": [
                        {
                            "name": "ops",
                            "url": sink.url("ops"),
                            "events": ["anomaly"],
                            "kinds": ["whale"],
                            "min_severity": "low",
                        }
                    ],
                },
            }
        )
    )
    return path


async def replay(files: list[str], config: Path) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "replay",
        "--exchange",
        "binance",
        "--json",
        "--config",
        str(config),
        *files,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    summary: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return summary


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("gap_s", "notified"),
    [(2 * DEDUP_S, 2), (DEDUP_S / 2, 1)],
    ids=["after-the-window", "within-the-window"],
)
async def test_a_replayed_alert_recurring_after_the_dedup_window_of_recorded_time_is_sent_again(
    shared_data: Path, tmp_path: Path, sink: HttpSink, gap_s: float, notified: int
) -> None:
    """The same whale alert twice, ``gap_s`` of recorded time apart, replayed in about a
    second: sent twice when the gap is longer than dedup_window_s, once when within it, as the
    live daemon would have sent them on that market."""
    files = synthetic_recording(shared_data, tmp_path / "rec", [3600.0, 3600.0 + gap_s])
    summary = await replay(files, replay_config(tmp_path / "cfg.yaml", sink))
    assert summary["events"] == {"trades": 182}
    assert summary["anomalies"] >= 2  # the detector's own cooldown is off: both are found
    # the replay delivered what it routed before it exited (the notifier's stop drains)
    titles = sink.titles()
    assert titles == ["[P0] binance NKN-USDT: whale anomaly (critical)"] * notified, titles
    times = [m["message"] for m in sink.messages]
    assert "2021-10-12T01:30:00Z" in times[0]
