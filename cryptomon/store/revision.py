"""The packaged migrations' head revision, read without importing alembic.

alembic, its templates and the revision scripts cost the daemon ~8 MB that it keeps for good
once imported; a database already at head (every restart but the first after an upgrade) does
not need them. :func:`packaged_head` reads the ``revision``/``down_revision`` assignments of
the scripts in ``migrations/versions`` (one head, always: DESIGN.md section 2); a test checks
it names alembic's own head. Anything it does not understand (a merge, a branch, a computed
value) gives None, and the caller lets alembic decide.
"""

from __future__ import annotations

import re
from pathlib import Path

VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"

_ASSIGN = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)
_QUOTED = re.compile(r"""^(['"])([^'"]+)\1$""")


def _revision_pair(text: str) -> tuple[str, str | None] | None:
    """(revision, down_revision) of one script, or None when not a plain string pair."""
    found = {m.group(1): m.group(2) for m in _ASSIGN.finditer(text)}
    rev = _QUOTED.match(found.get("revision", ""))
    down = found.get("down_revision")
    if rev is None or down is None:
        return None
    if down == "None":
        return rev.group(2), None
    down_rev = _QUOTED.match(down)
    return None if down_rev is None else (rev.group(2), down_rev.group(2))


def packaged_head(versions: Path = VERSIONS_DIR) -> str | None:
    """The single head of the scripts in ``versions``; None when unsure (alembic decides)."""
    pairs = []
    for path in sorted(versions.glob("*.py")):
        if path.name.startswith("_"):
            continue
        pair = _revision_pair(path.read_text(encoding="utf-8"))
        if pair is None:
            return None
        pairs.append(pair)
    downs = {down for _, down in pairs}
    heads = [rev for rev, _ in pairs if rev not in downs]
    return heads[0] if len(heads) == 1 and len(downs) == len(pairs) else None
