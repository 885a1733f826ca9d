"""Instrument specs as a JSON file beside a recording (``instruments.EXCHANGE.json``; the name
does not match the ``EXCHANGE.*`` glob of the recording's own files), so a replay knows the
units of every market offline.

Format: ``{"version": 1, "instruments": [{"exchange", "symbol", "kind", "base", "quote",
"settle", "contract_size", "inverse", "tick_size", "lot_size", "min_qty", "min_notional",
"expiry"}, ...]}``; sizes are decimal strings (exact), ``expiry`` epoch seconds or null.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cryptomon.market.instruments import InstrumentKind, InstrumentSpec

VERSION = 1
_SIZES = ("contract_size", "tick_size", "lot_size", "min_qty", "min_notional")
_TEXT = ("exchange", "symbol", "base", "quote")


class SpecsFileError(ValueError):
    """A specs file that cannot be read; the message names the entry and field."""


def specs_file(directory: Path, venue: str) -> Path:
    """Where the specs of ``venue``'s recording in ``directory`` are kept."""
    return directory / f"instruments.{venue.upper()}.json"


def spec_to_dict(spec: InstrumentSpec) -> dict[str, Any]:
    """The JSON object of one spec."""
    out: dict[str, Any] = {name: getattr(spec, name) for name in _TEXT}
    out["kind"] = spec.kind.value
    out["settle"] = spec.settle
    out["inverse"] = spec.inverse
    for name in _SIZES:
        value = getattr(spec, name)
        out[name] = None if value is None else str(value)
    out["expiry"] = spec.expiry
    return out


def _decimal(entry: dict[str, Any], name: str, where: str) -> Decimal | None:
    value = entry.get(name)
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise SpecsFileError(f"{where}.{name}: got {value!r}; expected a decimal string") from None


def spec_from_dict(entry: dict[str, Any], where: str = "instrument") -> InstrumentSpec:
    """One spec from its JSON object; a missing or bad field is named in the error."""
    for name in _TEXT:
        if not isinstance(entry.get(name), str) or not entry[name]:
            raise SpecsFileError(f"{where}.{name}: got {entry.get(name)!r}; expected a string")
    try:
        kind = InstrumentKind(str(entry.get("kind")))
    except ValueError:
        choices = ", ".join(k.value for k in InstrumentKind)
        raise SpecsFileError(
            f"{where}.kind: got {entry.get('kind')!r}; expected one of {choices}"
        ) from None
    sizes = {name: _decimal(entry, name, where) for name in _SIZES}
    try:
        return InstrumentSpec(
            exchange=entry["exchange"],
            symbol=entry["symbol"],
            kind=kind,
            base=entry["base"],
            quote=entry["quote"],
            settle=entry.get("settle"),
            contract_size=sizes.pop("contract_size") or Decimal(1),
            inverse=bool(entry.get("inverse", False)),
            expiry=float(entry["expiry"]) if entry.get("expiry") is not None else None,
            **sizes,
        )
    except (TypeError, ValueError) as exc:
        raise SpecsFileError(f"{where}: {exc}") from None


def save_specs(path: Path, specs: Iterable[InstrumentSpec]) -> int:
    """Write ``specs`` to ``path`` (replacing it); returns the count."""
    entries = [spec_to_dict(spec) for spec in specs]
    text = json.dumps({"version": VERSION, "instruments": entries}, indent=1)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
    return len(entries)


def load_specs(path: Path) -> list[InstrumentSpec]:
    """The specs of a file written by :func:`save_specs`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecsFileError(f"{path}: no such file; expected an instruments file") from None
    except json.JSONDecodeError as exc:
        raise SpecsFileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise SpecsFileError(
            f"{path}: expected an object with version {VERSION} and an instruments list"
        )
    entries = document.get("instruments")
    if not isinstance(entries, list):
        raise SpecsFileError(f"{path}: instruments: expected a list")
    return [
        spec_from_dict(entry if isinstance(entry, dict) else {}, f"{path.name}: instruments[{i}]")
        for i, entry in enumerate(entries)
    ]
