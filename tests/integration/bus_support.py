"""Helpers of the scale-out tests: a private nats-server, configs, subprocess roles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from cryptomon.events import MARKET_DATA, FlaggedTrade
from cryptomon.hub import Hub

CLI = [sys.executable, "-m", "cryptomon"]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """``nats-server -js`` on a free port with its own storage directory (never the shared one)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.store = directory / "jetstream"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "nats-server",
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-sd",
            str(self.store),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("nats-server did not start") from None
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)
        self.proc = None


def bus_section(url: str, **extra: Any) -> dict[str, Any]:
    """A bus section with names of its own (tests never share streams or buckets)."""
    tag = uuid.uuid4().hex[:8]
    return {
        "nats_url": url,
        "subject_prefix": f"t{tag}",
        "stream": f"T{tag}",
        "durable": f"d{tag}",
        "lease_bucket": f"l{tag}",
        "health_interval_s": 0.2,
        **extra,
    }


def replay_exchange(data: Path, venue: str) -> dict[str, Any]:
    files = sorted(str(p) for p in data.iterdir() if p.name.split(".")[0] == venue)
    return {"name": venue.lower(), "source": "replay", "files": files}


def write_config(path: Path, **sections: Any) -> Path:
    base: dict[str, Any] = {"logging": {"level": "WARNING", "format": "json"}}
    base.update(sections)
    path.write_text(yaml.safe_dump(base))
    return path


async def spawn(config: Path, role: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        *CLI,
        "run",
        "--role",
        role,
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def terminate(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM and the exit code (the daemon stops gracefully)."""
    if proc.returncode is None:
        proc.terminate()
    err = b""
    with contextlib.suppress(Exception):
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    if proc.returncode:
        print(err.decode(errors="replace")[-3000:])  # shown by pytest when the test fails
    return proc.returncode


def count_kinds(hub: Hub) -> Counter[str]:
    """Market data events and flagged trades published on ``hub``, per kind (counted from
    now on)."""
    counts: Counter[str] = Counter()

    def seen(event: Any) -> None:
        counts[type(event).__name__] += 1

    hub.subscribe((*MARKET_DATA, FlaggedTrade), seen, name="test-count")
    return counts
