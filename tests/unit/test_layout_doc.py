"""docs/layout.md lists every module of the package, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _listed() -> set[str]:
    """The module paths docs/layout.md names: a `### `pkg/`` heading, then `- `name.py``."""
    listed: set[str] = set()
    package = None
    for line in (ROOT / "docs" / "layout.md").read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"### `([\w/]+)/`", line)
        if heading:
            package = heading.group(1)
            continue
        item = re.match(r"- `(\w+\.py)`", line)
        if item and package is not None:
            listed.add(f"{package}/{item.group(1)}")
    return listed


def _modules() -> set[str]:
    package = ROOT / "cryptomon"
    return {
        path.relative_to(ROOT).as_posix()
        for path in package.rglob("*.py")
        if "migrations/versions" not in path.as_posix()
    }


def test_every_module_is_on_the_map() -> None:
    missing = sorted(_modules() - _listed())
    assert not missing, f"add these to docs/layout.md: {missing}"


def test_the_map_names_no_module_that_is_gone() -> None:
    gone = sorted(_listed() - _modules())
    assert not gone, f"remove these from docs/layout.md: {gone}"


def test_the_map_is_read_as_intended() -> None:
    listed = _listed()
    assert "cryptomon/tasks.py" in listed
    assert "cryptomon/trading/brokers/ccxt.py" in listed
    assert len(listed) > 250
