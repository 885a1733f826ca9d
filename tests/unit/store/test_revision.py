"""The packaged head read without alembic (cryptomon.store.revision)."""

from __future__ import annotations

from pathlib import Path

from cryptomon.store import migrate
from cryptomon.store.revision import packaged_head


def _script(folder: Path, name: str, revision: str, down: str) -> None:
    (folder / f"{name}.py").write_text(
        f'"""{name}"""\n\nrevision: str = {revision}\ndown_revision: str | None = {down}\n',
        encoding="utf-8",
    )


def test_packaged_head_is_alembics_head() -> None:
    """The head read from the scripts' text is the one alembic computes."""
    assert packaged_head() == migrate.head()


def test_a_chain_gives_its_last_revision(tmp_path: Path) -> None:
    """Scripts in any file order: the revision nobody builds on is the head."""
    _script(tmp_path, "b", '"0002"', '"0001"')
    _script(tmp_path, "a", '"0001"', "None")
    _script(tmp_path, "c", "'0003'", "'0002'")
    (tmp_path / "__init__.py").write_text("", encoding="utf-8")
    assert packaged_head(tmp_path) == "0003"


def test_branches_merges_and_computed_values_give_none(tmp_path: Path) -> None:
    """Two heads, a merge tuple or a non-literal value: unsure, so alembic decides."""
    _script(tmp_path, "a", '"0001"', "None")
    _script(tmp_path, "b", '"0002"', '"0001"')
    _script(tmp_path, "c", '"0003"', '"0001"')
    assert packaged_head(tmp_path) is None
    (tmp_path / "c.py").unlink()
    _script(tmp_path, "m", '"0003"', '("0001", "0002")')
    assert packaged_head(tmp_path) is None
    (tmp_path / "m.py").unlink()
    _script(tmp_path, "x", "NEXT", '"0002"')
    assert packaged_head(tmp_path) is None
