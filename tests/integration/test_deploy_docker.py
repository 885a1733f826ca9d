"""Dockerfile and deploy/docker-compose.yml, without a Docker engine: both are parsed and every
file, port, path and variable they reference is checked; the image's command then runs as a
process with the image's environment (paths of volumes and secrets mapped into a temporary
directory, as ``-v`` would), and the image's HEALTHCHECK command is run against it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from cryptomon.cli import build_parser
from cryptomon.config import DatabaseConfig
from tests.integration.api.test_tls import self_signed
from tests.util import wait_until

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TOKEN = "docker-test-token-0123456789abcdef"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def final_stage(text: str) -> list[tuple[str, str]]:
    ins = instructions(text)
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def exec_form(stage: list[tuple[str, str]], word: str) -> list[str]:
    (args,) = [a for w, a in stage if w == word]
    value = json.loads(args)
    assert isinstance(value, list), f"{word} must be the exec (JSON) form"
    return [str(v) for v in value]


@pytest.fixture(scope="module")
def stage() -> list[tuple[str, str]]:
    return final_stage((REPO / "Dockerfile").read_text())


def test_dockerfile_references_files_that_exist_and_are_not_ignored() -> None:
    """Every COPY source exists in the build context and .dockerignore keeps it."""
    ignored = [
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for word, args in instructions((REPO / "Dockerfile").read_text()):
        if word != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = shlex.split(args)
        for src in sources:
            assert (REPO / src).exists(), f"COPY {src}: not in the build context"
            assert src.rstrip("/") not in ignored, f"COPY {src} is excluded by .dockerignore"


def test_image_runs_as_a_user_with_data_dir_on_a_volume_and_a_health_check(
    stage: list[tuple[str, str]],
) -> None:
    """USER is not root; data_dir is the VOLUME and the working directory; EXPOSE is the
    API port; HEALTHCHECK asks /health; ENTRYPOINT + CMD parse with the real CLI."""
    env = image_env(stage)
    (user,) = [a for w, a in stage if w == "USER"]
    assert user not in {"root", "0"}
    (volume,) = [json.loads(a) for w, a in stage if w == "VOLUME"]
    assert volume == [env["CRYPTOMON_DATA_DIR"]]
    assert [a for w, a in stage if w == "WORKDIR"][-1] == env["CRYPTOMON_DATA_DIR"]
    assert env["NUMBA_CACHE_DIR"].startswith(env["CRYPTOMON_DATA_DIR"] + "/")
    (expose,) = [a for w, a in stage if w == "EXPOSE"]
    assert expose == env["CRYPTOMON_API__PORT"]
    (health,) = [a for w, a in stage if w == "HEALTHCHECK"]
    assert "CMD [" in health
    probe = _healthcheck_argv(stage)  # the subcommand that follows the config (TLS, API off)
    assert probe[3:5] == ["healthcheck", "--config"], probe
    assert build_parser().parse_args(probe[3:]).handler.__name__ == "cmd_healthcheck"
    argv = exec_form(stage, "ENTRYPOINT") + exec_form(stage, "CMD")
    assert argv[0] == "crypto-monitor"
    args = build_parser().parse_args(argv[1:])
    assert args.config == "/etc/crypto-monitor/config.yaml"


def _healthcheck_argv(stage: list[tuple[str, str]]) -> list[str]:
    """The image's HEALTHCHECK command as run here: ``crypto-monitor`` is this interpreter's
    ``-m cryptomon`` and the image's config path the repo's example (what the image copies)."""
    (check,) = [a for w, a in stage if w == "HEALTHCHECK"]
    probe = json.loads(check[check.index("CMD ") + 4 :])
    assert probe[0] == "crypto-monitor", probe
    config = str(REPO / "config.example.yaml")
    rest = [config if a == "/etc/crypto-monitor/config.yaml" else a for a in probe[1:]]
    return [sys.executable, "-m", "cryptomon", *rest]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_run(env: dict[str, str], tmp: Path, port: int) -> dict[str, str]:
    """The image's environment with its volume and secret paths mapped like ``-v`` would."""
    data = tmp / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    secrets = tmp / "secrets"
    secrets.mkdir(exist_ok=True)
    out = {k: v.replace("/run/secrets/", f"{secrets}/") for k, v in env.items()}
    out = {k: v.replace(env["CRYPTOMON_DATA_DIR"], str(data)) for k, v in out.items()}
    out["CRYPTOMON_API__PORT"] = str(port)  # -p 127.0.0.1:PORT:8080
    out["CRYPTOMON_EXCHANGES"] = "[]"  # no internet here; the example config lists binance
    keep = {k: os.environ[k] for k in ("PATH", "PYTHONPATH", "HOME") if k in os.environ}
    return {**keep, **out}


async def _run(argv: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _cli(stage: list[tuple[str, str]]) -> list[str]:
    argv = exec_form(stage, "ENTRYPOINT") + exec_form(stage, "CMD")
    config = str(REPO / "config.example.yaml")  # what the image copies to that path
    argv = [config if a == "/etc/crypto-monitor/config.yaml" else a for a in argv]
    return [sys.executable, "-m", "cryptomon", *argv[1:]]


@pytest.mark.asyncio
async def test_image_command_with_image_env_serves_health_and_metrics_with_the_secret(
    stage: list[tuple[str, str]], tmp_path: Path
) -> None:
    """The documented run (token in /run/secrets/api_token, data on /data) starts, passes
    its HEALTHCHECK, serves /metrics to the token only, keeps its database in data_dir and
    stops with 0 on SIGTERM."""
    port = _free_port()
    env = _as_run(image_env(stage), tmp_path, port)
    (tmp_path / "secrets" / "api_token").write_text(TOKEN + "\n")
    workdir = tmp_path / "data"
    daemon = await _run(_cli(stage), env, workdir)
    try:
        probe = _healthcheck_argv(stage)

        async def healthy() -> bool:
            proc = await _run(probe, env, workdir)
            return await proc.wait() == 0

        await wait_until(healthy, timeout=60, interval=1.0, message="HEALTHCHECK passing")
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/metrics"
            async with http.get(url) as r:
                assert r.status == 401
            async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200
        assert (workdir / "cryptomon.db").exists()
        daemon.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(daemon.communicate(), 30)
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
    assert daemon.returncode == 0, err.decode()[-2000:]


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", ["tls", "api-off"])
async def test_image_healthcheck_follows_tls_and_an_api_that_is_off(
    stage: list[tuple[str, str]], tmp_path: Path, variant: str
) -> None:
    """The image's HEALTHCHECK with the API on HTTPS (a certificate by variables) or turned
    off: it passes while the daemon runs and fails, in one line, once it has stopped. The
    old probe asked http://127.0.0.1:PORT/health whatever the config: unhealthy forever."""
    port = _free_port()
    env = _as_run(image_env(stage), tmp_path, port)
    (tmp_path / "secrets" / "api_token").write_text(TOKEN + "\n")
    # not what is tested here: the detectors' numba compile took minutes on a loaded machine
    env["CRYPTOMON_ANOMALY_DETECTION__ENABLED"] = "false"
    if variant == "tls":
        cert, key = self_signed(tmp_path)
        env["CRYPTOMON_API__TLS_CERT_FILE"] = str(cert)
        env["CRYPTOMON_API__TLS_KEY_FILE"] = str(key)
        expected = f"healthy: https://127.0.0.1:{port}/health answered 200 ok"
    else:
        env["CRYPTOMON_API__ENABLED"] = "false"
        expected = "healthy: heartbeat (pid "
    workdir = tmp_path / "data"
    probe = _healthcheck_argv(stage)

    async def check() -> tuple[int, str]:
        proc = await _run(probe, env, workdir)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return int(proc.returncode or 0), out.decode()

    daemon = await _run(_cli(stage), env, workdir)
    try:

        async def healthy() -> bool:
            return (await check())[0] == 0

        await wait_until(healthy, timeout=60, interval=1.0, message="HEALTHCHECK passing")
        rc, out = await check()
        assert rc == 0, out
        assert out.startswith(expected), out
        daemon.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(daemon.communicate(), 30)
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
    assert daemon.returncode == 0, err.decode()[-2000:]
    rc, out = await check()
    assert rc == 1, out
    assert out.startswith("unhealthy: "), out
    assert len(out.splitlines()) == 1, out


@pytest.mark.asyncio
async def test_image_without_a_token_exits_2_naming_the_missing_secret(
    stage: list[tuple[str, str]], tmp_path: Path
) -> None:
    """Run without the secret: exit 2 and a line naming api.tokens and the missing file,
    not a traceback."""
    env = _as_run(image_env(stage), tmp_path, _free_port())
    proc = await _run(_cli(stage), env, tmp_path / "data")
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 2, text[-2000:]
    assert "api.tokens" in text
    assert "api_token" in text
    assert "Traceback" not in text


# ---------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+)", text))


def _env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _interpolate(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}", lambda m: env[m.group(1)], value)


def test_compose_profiles_daemon_with_postgres_and_monitoring(compose: dict[str, Any]) -> None:
    """Default profile: the daemon and PostgreSQL; ``monitoring`` adds Prometheus and Grafana;
    ``scale`` adds NATS and 2 collectors; dependencies name existing services; named volumes
    are declared."""
    services = compose["services"]
    default = {n for n, s in services.items() if not s.get("profiles")}
    assert default == {"crypto-monitor", "postgres"}
    assert {n for n, s in services.items() if s.get("profiles") == ["monitoring"]} == {
        "prometheus",
        "grafana",
    }
    assert {n for n, s in services.items() if s.get("profiles") == ["scale"]} == {
        "nats",
        "collector-1",
        "collector-2",
    }
    assert not (DEPLOY / "docker-compose.scale.yml").exists()  # one compose file
    for svc in services.values():
        for dep in svc.get("depends_on", []):
            assert dep in services
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if not src.startswith((".", "/", "$")):
                assert src in compose["volumes"], f"volume {src} not declared"


def test_every_compose_variable_is_documented_and_every_file_exists(
    compose: dict[str, Any],
) -> None:
    """Each ${VAR} has a line in deploy/.env.example; each bind-mounted path and the build
    context exist (the token secret is created by the user, as the header says)."""
    text = (DEPLOY / "docker-compose.yml").read_text()
    env = _env_example()
    assert _variables(text) <= set(env)
    for svc in compose["services"].values():
        for vol in svc.get("volumes", []):
            src = _interpolate(vol, env).split(":", 1)[0]
            if src.startswith((".", "/")):
                assert (DEPLOY / src).exists(), f"bind mount source {src} does not exist"
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
        assert f"> {secret['file'][2:]}" in text  # the header tells how to create it
    assert "/deploy/secrets/" in (REPO / ".gitignore").read_text()


def test_compose_ports_urls_and_secrets_agree_with_the_image(
    compose: dict[str, Any], stage: list[tuple[str, str]]
) -> None:
    """The daemon's published port is the image's API port; Prometheus scrapes that service
    and port with the secret the image reads; Grafana's datasource is that Prometheus; the
    database URL is one the daemon accepts."""
    services = compose["services"]
    env = image_env(stage)
    daemon = services["crypto-monitor"]
    assert daemon["ports"][0].rsplit(":", 1)[1] == env["CRYPTOMON_API__PORT"]
    assert all(p.startswith("127.0.0.1:") for s in services.values() for p in s.get("ports", []))
    token_file = json.loads(env["CRYPTOMON_API__TOKENS"])[0]["token_file"]
    assert token_file == f"/run/secrets/{daemon['secrets'][0]}"
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"crypto-monitor:{env['CRYPTOMON_API__PORT']}"]
    assert job["authorization"]["credentials_file"] == token_file
    assert "api_token" in services["prometheus"]["secrets"]
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    prom_port = services["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert ds["datasources"][0]["url"] == f"http://prometheus:{prom_port}"
    url = _interpolate(daemon["environment"]["CRYPTOMON_DATABASE__URL"], _env_example())
    assert DatabaseConfig(url=url).url.endswith("@postgres:5432/cryptomon")
    pg = services["postgres"]["environment"]
    assert f"{pg['POSTGRES_USER']}:" in url
    assert url.endswith(f"/{pg['POSTGRES_DB']}")


def test_compose_scale_profile_turns_the_daemon_into_the_brain_of_two_collectors(
    compose: dict[str, Any],
) -> None:
    """``scale``: the daemon service itself becomes the brain (CRYPTOMON_ROLE, so a single
    process and a brain never run together), waits for NATS only when NATS is in the profile,
    and with the collectors points at the NATS service's JetStream port; each collector runs
    ``run --role collector`` with its own id and exchanges that the config accepts."""
    from cryptomon.config import load_settings

    services = compose["services"]
    env = _env_example()
    daemon = services["crypto-monitor"]
    nats = services["nats"]
    assert "-js" in nats["command"]
    nats_port = nats["ports"][0].rsplit(":", 1)[1]
    assert daemon["depends_on"]["nats"] == {"condition": "service_healthy", "required": False}
    role = daemon["environment"]["CRYPTOMON_BUS__ROLE"]
    assert role == "${CRYPTOMON_ROLE:-all}"
    assert _interpolate(role, env) == "all"  # the default .env: one process
    brain = load_settings(
        None,
        environ={
            **{k: _interpolate(str(v), env) for k, v in daemon["environment"].items()},
            "CRYPTOMON_BUS__ROLE": "brain",
        },
    )
    assert brain.bus.role == "brain"
    assert brain.bus.nats_url == f"nats://nats:{nats_port}"
    ids = set()
    for name in ("collector-1", "collector-2"):
        svc = services[name]
        assert svc["command"][:3] == ["run", "--role", "collector"]
        assert build_parser().parse_args(svc["command"]).role == "collector"
        assert svc["depends_on"] == {"nats": {"condition": "service_healthy"}}
        assert svc["image"] == daemon["image"]
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        values = {k: _interpolate(str(v), env) for k, v in svc["environment"].items()}
        settings = load_settings(None, environ=values)
        assert settings.bus.nats_url == f"nats://nats:{nats_port}"
        assert settings.exchanges, f"{name}: no exchanges"
        ids.add(settings.bus.collector_id)
    assert ids == {"collector-1", "collector-2"}
    assert "nats-data" in compose["volumes"]


def test_compose_collectors_load_their_config_with_the_image_environment(
    compose: dict[str, Any], stage: list[tuple[str, str]], tmp_path: Path
) -> None:
    """A collector container has the image's environment too, whose CRYPTOMON_API__TOKENS
    reads /run/secrets/api_token: each collector must be given that secret, or it exits 2
    on every start (and `restart: unless-stopped` loops on it)."""
    from cryptomon.config import load_settings

    env = _env_example()
    for name in ("collector-1", "collector-2"):
        svc = compose["services"][name]
        secrets = tmp_path / name / "secrets"
        secrets.mkdir(parents=True)
        for secret in svc.get("secrets", []):  # what compose mounts in /run/secrets
            source = DEPLOY / compose["secrets"][secret]["file"]
            assert source.parent.name == "secrets"
            (secrets / secret).write_text(TOKEN + "\n")
        environ = {
            **{k: v.replace("/run/secrets/", f"{secrets}/") for k, v in image_env(stage).items()},
            **{k: _interpolate(str(v), env) for k, v in svc["environment"].items()},
        }
        (mount,) = [v for v in svc["volumes"] if v.endswith(":/etc/crypto-monitor/config.yaml:ro")]
        host = _interpolate(mount, {"CRYPTOMON_CONFIG": "../config.example.yaml"}).split(":")[0]
        settings = load_settings(DEPLOY / host, environ=environ)
        assert [t.name for t in settings.api.tokens] == ["docker"], name
        assert settings.api.host == "127.0.0.1"


@pytest.mark.asyncio
async def test_compose_prometheus_scrape_of_the_daemon_is_answered(
    compose: dict[str, Any], stage: list[tuple[str, str]], tmp_path: Path
) -> None:
    """Prometheus asks the daemon's container by its service name (its target in
    prometheus.yml, so ``Host: crypto-monitor:8080``) with the token secret: the daemon, run
    with the image's environment and the compose service's, answers /metrics 200. Its
    DNS-rebinding guard allowed only the bind address and the loopback names by default, so
    every scrape got 421 and the target stayed down."""
    services = compose["services"]
    port = _free_port()
    env = _as_run(image_env(stage), tmp_path, port)
    values = {
        k: _interpolate(str(v), _env_example())
        for k, v in services["crypto-monitor"]["environment"].items()
    }
    values.pop("CRYPTOMON_DATABASE__URL")  # the postgres service: the image's SQLite here
    env.update(values)
    (tmp_path / "secrets" / "api_token").write_text(TOKEN + "\n")
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (target,) = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    daemon = await _run(_cli(stage), env, tmp_path / "data")
    try:
        async with aiohttp.ClientSession() as http:

            async def scraped() -> bool:
                try:
                    async with http.get(
                        f"http://127.0.0.1:{port}/metrics",
                        headers={"Host": target, "Authorization": f"Bearer {TOKEN}"},
                    ) as r:
                        if r.status == 421:
                            raise AssertionError(f"scrape of {target}: 421 {await r.text()}")
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    assert daemon.returncode is None, "the daemon exited"
                    return False  # still starting

            await wait_until(scraped, timeout=60, interval=0.2, message="/metrics scraped")
        daemon.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(daemon.communicate(), 30)
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
    assert daemon.returncode == 0, err.decode()[-2000:]
