"""A real ``crypto-monitor demo`` daemon in a subprocess, and Debian's chromium driven by
Playwright (``executable_path``; no browser download)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWER_TOKEN = "viewer-token-0123456789"  # read scope only, from the demo's --config file
ADMIN_TOKEN = "operator-token-0123456789"  # every scope, from the --config: survives a restart


@dataclass
class Demo:
    """A running demo: its dashboard URL, admin token and output lines."""

    proc: subprocess.Popen[str]
    url: str
    token: str
    link: str = ""  # the printed sign-in link (the token in the URL's fragment)
    lines: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)

    def get(self, path: str, token: str | None = None) -> Any:
        req = urllib.request.Request(self.url.rstrip("/") + path)
        req.add_header("Authorization", f"Bearer {token or self.token}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def relaunch(self) -> None:
        """Start the (stopped) daemon again on the same port with the same --config (the
        generated admin token changes: the config's tokens stay valid)."""
        assert self.proc.poll() is not None, "stop the demo before relaunching it"
        port = self.url.rstrip("/").rsplit(":", 1)[1]
        fresh = _launch([*self.command, "--port", port])
        if fresh.url != self.url:
            fresh.stop()
            raise AssertionError(f"restarted on {fresh.url}, expected {self.url}")
        self.proc, self.token, self.lines = fresh.proc, fresh.token, fresh.lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last})")


def _line_reader(
    proc: subprocess.Popen[str], prefix: str
) -> tuple[Callable[[], str | None], list[str]]:
    """A poll function returning the first output line starting with ``prefix`` (None until
    then; an early exit fails with the last lines), and the list of every line read."""
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
            seen.append(line)

    threading.Thread(target=pump, daemon=True).start()

    def poll() -> str | None:
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                if proc.poll() is not None:
                    raise AssertionError("demo exited early:\n" + "".join(seen[-40:])) from None
                return None
            if line.startswith(prefix):
                return line

    return poll, seen


def _launch(command: list[str]) -> Demo:
    """Run ``command`` (a demo) and wait for its dashboard line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    dashboard_line, seen = _line_reader(proc, "demo: dashboard ")
    try:
        line = wait_for(dashboard_line, 120, "the demo's dashboard line")
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    parts = line.split()
    return Demo(proc=proc, url=parts[2], token=parts[4], link=parts[7], lines=seen, command=command)


def start_demo(tmp: Path, *extra: str, markets: int = 2, yaml: str = "") -> Demo:
    """Start the demo on a free port with a --config adding a read-only token and a fixed
    admin token; wait until the dashboard line is printed and every market has data."""
    config = tmp / "demo.yaml"
    config.write_text(
        "api:\n  tokens:\n"
        f"    - {{name: viewer, token: {VIEWER_TOKEN}, scopes: [read]}}\n"
        f"    - {{name: operator, token: {ADMIN_TOKEN}, scopes: [read, trade, admin]}}\n" + yaml,
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "cryptomon", "demo", "--config", str(config)]
    command += ["--log-level", "WARNING", "--markets", str(markets), *extra]
    demo = _launch([*command, "--port", "0"])
    demo.command = command
    expected = markets + ("--perpetual" in extra)
    try:
        wait_for(
            lambda: len(demo.get("/api/v1/markets/overview")["markets"]) >= expected,
            60,
            "market data of every demo market",
        )
    except BaseException:
        demo.stop()
        raise
    return demo
