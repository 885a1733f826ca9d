"""``crypto-monitor healthcheck`` against a real running daemon: /health over HTTPS when the
API has a certificate (a Host the API admits), the heartbeat file when the API is off (a
stopped event loop ages it), and one line with exit 0 or 1 (never Docker's reserved 2)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cryptomon.heartbeat import HEARTBEAT_FILE
from tests.integration.api.test_tls import self_signed
from tests.integration.bus_support import CLI, NatsServer, bus_section, free_port
from tests.util import LoggedProcess


def _healthcheck(cfg: Path, *extra: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "cryptomon", "healthcheck", "--config", str(cfg), *extra],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, lines[0]


def _wait_health(cfg: Path, rc: int, *extra: str, timeout: float = 60) -> str:
    """Run the check until it exits ``rc`` (the daemon's state changes by itself)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        got, seen = _healthcheck(cfg, *extra)
        if got == rc:
            return seen
    raise AssertionError(f"healthcheck did not exit {rc} within {timeout} s; last: {seen}")


def _daemon(cfg: Path, tmp_path: Path) -> LoggedProcess:
    argv = [sys.executable, "-m", "cryptomon", "--config", str(cfg), "--log-format", "json"]
    return LoggedProcess(argv, cwd=tmp_path)


def _stop(daemon: LoggedProcess) -> None:
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=60) == 0, daemon.log()


def test_https_api_with_allowed_hosts_is_probed_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/x.db'}}\ndata_dir: {tmp_path}\n"
        f"api: {{host: 127.0.0.1, port: {port}, tls_cert_file: '{cert}', "
        f"tls_key_file: '{key}', allowed_hosts: [monitor.example]}}\n"
    )
    url = f"https://127.0.0.1:{port}/health"
    rc, line = _healthcheck(cfg)
    assert rc == 1, line
    assert line.startswith(f"unhealthy: {url} did not answer"), line
    with _daemon(cfg, tmp_path) as daemon:
        daemon.wait_for("daemon.running")
        rc, line = _healthcheck(cfg)
        assert (rc, line) == (0, f"healthy: {url} answered 200 ok")
        assert not (tmp_path / HEARTBEAT_FILE).exists()  # the API is the signal
        _stop(daemon)
    rc, line = _healthcheck(cfg)
    assert rc == 1, line
    assert line.startswith(f"unhealthy: {url} did not answer"), line


def test_api_off_is_judged_by_the_heartbeat_a_stopped_loop_ages(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/x.db'}}\ndata_dir: {tmp_path}\n"
        "api: {enabled: false}\n"
    )
    rc, line = _healthcheck(cfg)
    assert rc == 1, line
    assert line.startswith(f"unhealthy: no heartbeat file at {tmp_path / HEARTBEAT_FILE}")
    assert "api.enabled is false" in line
    with _daemon(cfg, tmp_path) as daemon:
        daemon.wait_for("daemon.running")
        rc, line = _healthcheck(cfg)
        assert rc == 0, line
        assert line.startswith(f"healthy: heartbeat (pid {daemon.proc.pid}) "), line
        daemon.proc.send_signal(signal.SIGSTOP)  # the event loop no longer runs
        try:
            line = _wait_health(cfg, 1, "--max-age", "6")
            assert f"heartbeat (pid {daemon.proc.pid})" in line
            assert "its event loop is stuck or it stopped" in line
        finally:
            daemon.proc.send_signal(signal.SIGCONT)
        line = _wait_health(cfg, 0, "--max-age", "6")
        _stop(daemon)
    assert not (tmp_path / HEARTBEAT_FILE).exists()
    rc, line = _healthcheck(cfg)
    assert rc == 1, line
    assert "no heartbeat file" in line, line


def test_a_config_that_does_not_load_is_unhealthy_with_exit_1_not_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("api: {port: 70000}\n")
    rc, line = _healthcheck(cfg)
    assert rc == 1
    assert line.startswith("unhealthy: invalid configuration: api.port: got 70000"), line


@pytest.mark.asyncio
async def test_a_collector_is_probed_over_http_and_unhealthy_without_nats(
    tmp_path: Path,
) -> None:
    """``run --role collector`` on a file that names no role serves its own /health over
    plain HTTP even with a certificate configured for the brain's API: ``healthcheck --role
    collector`` asks there, and the collector's 503 without NATS is unhealthy. Without
    ``--role`` (no certificate) its answer is recognised as a collector's."""
    nats = NatsServer(tmp_path)
    await nats.start()
    port = free_port()
    cert, key = self_signed(tmp_path)
    with_tls = tmp_path / "tls.yaml"
    plain = tmp_path / "plain.yaml"
    base = {"bus": bus_section(nats.url), "data_dir": str(tmp_path)}
    with_tls.write_text(
        yaml.safe_dump(
            {**base, "api": {"port": port, "tls_cert_file": str(cert), "tls_key_file": str(key)}}
        )
    )
    plain.write_text(yaml.safe_dump({**base, "api": {"port": port}}))
    url = f"http://127.0.0.1:{port}/health"
    argv = [*CLI, "run", "--role", "collector", "--config", str(with_tls), "--log-format", "json"]
    try:
        with LoggedProcess(argv, cwd=tmp_path) as collector:
            await asyncio.to_thread(collector.wait_for, "daemon.running")
            rc, line = await asyncio.to_thread(_healthcheck, with_tls, "--role", "collector")
            assert (rc, line) == (0, f"healthy: {url} answered 200 (a collector, NATS connected)")
            rc, line = await asyncio.to_thread(_healthcheck, plain)
            assert (rc, line) == (0, f"healthy: {url} answered 200 (a collector, NATS connected)")
            await nats.stop()
            line = await asyncio.to_thread(_wait_health, plain, 1)
            assert line == f"unhealthy: {url} answered 503 Service Unavailable", line
            collector.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(collector.proc.wait, 60)
    finally:
        await nats.stop()


@pytest.mark.parametrize("bad", [["--timeout", "0"], ["--max-age", "-1"], ["--timeout", "nan"]])
def test_a_timeout_or_age_that_is_not_positive_is_named(tmp_path: Path, bad: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cryptomon", "healthcheck", *bad],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc
    assert proc.stderr.startswith(f"crypto-monitor healthcheck: {bad[0]}: expected a positive")
