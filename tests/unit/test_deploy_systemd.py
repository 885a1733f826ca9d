"""deploy/crypto-monitor.service read as systemd reads it: notify + watchdog, the install
path documented in it, umask, file limit, stop timeouts above the daemon's, and a sandbox
that ``systemd-analyze security --offline=true`` rates below 5."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from cryptomon.cli import build_parser
from cryptomon.config import Settings

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "crypto-monitor.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value (keys such as SystemCallFilter may repeat)."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line in [{section}]: {line!r}"
        out[section][key.strip()].append(value.strip())
    return out


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text())["Service"]


def one(service: dict[str, list[str]], key: str) -> str:
    values = service.get(key)
    assert values, f"{key}= missing from [Service]"
    return values[-1]


def test_notify_type_with_a_watchdog_longer_than_the_daemon_needs(
    service: dict[str, list[str]],
) -> None:
    """Type=notify with the main process notifying and a watchdog; stop timeout above the
    daemon's own shutdown budget; config errors (exit 2) are not restarted."""
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    defaults = Settings()
    assert int(one(service, "WatchdogSec")) >= 10
    assert int(one(service, "TimeoutStopSec")) > defaults.shutdown_timeout_s
    assert one(service, "RestartPreventExitStatus") == "2"


def test_umask_and_open_file_limit(service: dict[str, list[str]]) -> None:
    """Files created by the daemon are private; the file limit fits many connections."""
    assert one(service, "UMask") == "0077"
    assert int(one(service, "LimitNOFILE")) >= 4096


def test_exec_start_is_the_documented_venv_under_opt_and_its_arguments_parse(
    service: dict[str, list[str]],
) -> None:
    """ExecStart runs crypto-monitor from the /opt venv the unit's header tells how to make,
    with arguments the real CLI accepts."""
    argv = shlex.split(one(service, "ExecStart"))
    binary = Path(argv[0])
    assert binary.name == "crypto-monitor"
    venv = binary.parent.parent
    assert venv.parent == Path("/opt")
    assert f"python3 -m venv {venv}" in UNIT.read_text()
    assert f"{venv}/bin/pip install" in UNIT.read_text()
    args = build_parser().parse_args(argv[1:])
    assert Path(args.config) == Path("/etc/crypto-monitor/config.yaml")


def test_state_paths_agree(service: dict[str, list[str]]) -> None:
    """The working directory, data_dir, numba's cache and the writable path are the state
    directory systemd creates for the service."""
    state = Path("/var/lib") / one(service, "StateDirectory")
    assert Path(one(service, "WorkingDirectory")) == state
    assert str(state) in one(service, "ReadWritePaths").split()
    env = dict(v.split("=", 1) for v in service["Environment"])
    assert Path(env["CRYPTOMON_DATA_DIR"]) == state
    assert Path(env["NUMBA_CACHE_DIR"]).is_relative_to(state)
    assert "data_dir" in Settings.model_fields


def test_systemd_analyze_rates_the_sandbox_below_5(tmp_path: Path) -> None:
    """``systemd-analyze security --offline=true`` gives an overall exposure below 5."""
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze not found (apt-get install systemd) to rate the unit"
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text())
    proc = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout)
    assert found, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert float(found.group(1)) < 5.0


def test_every_readme_section_the_deploy_files_point_to_exists() -> None:
    """The unit's header sent readers to README "Running as a service" and its ExecReload
    comment to README "Operations": neither section exists (they are "Deployment / systemd"
    and "Reload (SIGHUP)"). Every `README "Section"` pointer in the deploy files, the
    Dockerfile and config.example.yaml names a heading of README.md (its start; "A / B" is
    heading B under heading A)."""
    headings = [
        (len(m.group(1)), m.group(2).strip())
        for m in re.finditer(r"^(#+) (.+)$", (REPO / "README.md").read_text(), re.M)
    ]

    def found(name: str) -> bool:
        *parents, last = [part.strip() for part in name.split(" / ")]
        for i, (level, text) in enumerate(headings):
            if not text.startswith(last):
                continue
            above = [t for lv, t in reversed(headings[:i]) if lv < level]
            if all(any(t.startswith(p) for t in above) for p in parents):
                return True
        return False

    files = [
        *(p for p in (REPO / "deploy").rglob("*") if p.is_file() and p.suffix != ".json"),
        REPO / "Dockerfile",
        REPO / "config.example.yaml",
    ]
    missing = [
        f"{path.relative_to(REPO)}: README {name!r}"
        for path in files
        for name in re.findall(r'README "([^"]+)"', path.read_text())
        if not found(name)
    ]
    assert not missing, missing
