"""Specs files beside a recording: exact round trip, clear errors naming entry and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryptomon.market.specs_file import SpecsFileError, load_specs, save_specs, specs_file
from cryptomon.market.venues import specs_from_recording


def test_recorded_specs_round_trip_exactly(shared_data: Path, tmp_path: Path) -> None:
    """HUOBI_SWAP and OKX specs (inverse, linear, dated) load back equal from the file."""
    specs = specs_from_recording(shared_data / "HUOBI_SWAP.0")
    specs += specs_from_recording(shared_data / "OKX.0")
    path = specs_file(tmp_path, "huobi_swap")
    assert path.name == "instruments.HUOBI_SWAP.json"
    assert save_specs(path, specs) == len(specs)
    assert load_specs(path) == specs


def test_bad_entries_are_named(tmp_path: Path) -> None:
    """A wrong kind, size or missing field names the entry index, field and expectation."""
    path = tmp_path / "instruments.OKX.json"
    good = {"exchange": "okx", "symbol": "A-B", "kind": "spot", "base": "A", "quote": "B"}
    cases = {
        "instruments[1].kind: got 'swap'; expected one of spot, perpetual": {"kind": "swap"},
        "instruments[1].tick_size: got 'x'; expected a decimal string": {"tick_size": "x"},
        "instruments[1].symbol: got None; expected a string": {"symbol": None},
        "instruments[1]: okx A-B: contract_size -1; expected a positive": {
            "kind": "perpetual",
            "contract_size": "-1",
        },
    }
    for message, change in cases.items():
        entries = [good, {**good, **change}]
        path.write_text(json.dumps({"version": 1, "instruments": entries}), encoding="utf-8")
        with pytest.raises(SpecsFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_specs(path)


def test_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    """A missing file, non-JSON text or another format is reported, never a traceback."""
    path = tmp_path / "instruments.X.json"
    with pytest.raises(SpecsFileError, match="no such file; expected an instruments file"):
        load_specs(path)
    path.write_text("{nope", encoding="utf-8")
    with pytest.raises(SpecsFileError, match="not JSON"):
        load_specs(path)
    path.write_text('{"version": 2}', encoding="utf-8")
    with pytest.raises(SpecsFileError, match="expected an object with version 1"):
        load_specs(path)
