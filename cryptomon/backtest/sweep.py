"""Parameter sweeps: ``--sweep key=v1,v2`` grids run in worker processes, ranked.

A key is a dotted config path (``trading.stop_loss_percentage``,
``anomaly_detection.volume_threshold_multiplier``, ``trading.indicators.rsi_oversold``); the
values are YAML scalars. Every variant is the config with its overrides applied and validated
like a config file, so a variant is reproducible from its parameters alone: one run with
``--set KEY=VALUE`` for each of its overrides (``session.override_args``, in the command stored
with it) is the same run. The candles are loaded once and sent to the workers; each worker
sends back the variant's whole document and the command stores it (the parent writes, one
transaction per variant: one writer, whatever the database).
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import yaml
from pydantic import ValidationError

from cryptomon.backtest.data import CandleSeries
from cryptomon.backtest.session import BacktestRequest, scalar_text
from cryptomon.config import Settings
from cryptomon.config.problems import problems_from
from cryptomon.errors import ConfigError
from cryptomon.market.datafiles import DataError

RANK_METRICS = (
    "pnl",
    "return_pct",
    "sharpe",
    "sortino",
    "calmar",
    "profit_factor",
    "win_rate",
    "expectancy",
    "max_drawdown_pct",
)


def parse_sweep(specs: list[str]) -> list[tuple[str, list[Any]]]:
    """``["a.b=1,2", ...]`` -> ``[("a.b", [1, 2]), ...]``; malformed specs raise DataError."""
    out: list[tuple[str, list[Any]]] = []
    for spec in specs:
        key, sep, raw = spec.partition("=")
        key = key.strip()
        parts = [p.strip() for p in raw.split(",")]
        if not sep or not key or not all(parts) or "." not in key:
            raise DataError(
                f"--sweep: expected SECTION.KEY=V1,V2 (e.g. trading.stop_loss_percentage=2,3), "
                f"got {spec!r}"
            )
        try:
            values = [yaml.safe_load(p) for p in parts]
        except yaml.YAMLError:
            raise DataError(f"--sweep {key}: values must be plain scalars, got {raw!r}") from None
        if any(key == k for k, _ in out):  # the product would keep the last axis's value
            raise DataError(
                f"--sweep {key}: given twice; list all its values in one --sweep ({key}=V1,V2,...)"
            )
        for n, value in enumerate(values):
            if value in values[:n]:
                raise DataError(f"--sweep {key}: {parts[n]} is listed twice (in {raw!r})")
        out.append((key, values))
    return out


def parse_sets(specs: list[str]) -> dict[str, Any]:
    """``--set`` options, ``["a.b=1", ...]`` -> ``{"a.b": 1}``; malformed ones raise
    DataError. One value each (a comma is part of the value, not a list)."""
    out: dict[str, Any] = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw or "." not in key:
            raise DataError(
                f"--set: expected SECTION.KEY=VALUE (e.g. trading.stop_loss_percentage=2), "
                f"got {spec!r}"
            )
        if key in out:
            raise DataError(f"--set {key}: given twice; give each key once")
        try:
            out[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise DataError(f"--set {key}: the value must be a plain scalar, got {raw!r}") from None
    return out


def grid(axes: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Every combination of the axes as ``{key: value}``."""
    keys = [k for k, _ in axes]
    return [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))
    ]


def apply_overrides(
    settings: Settings, overrides: dict[str, Any], *, option: str = "--sweep"
) -> Settings:
    """``settings`` with dotted-path overrides, validated like a config file; errors name
    ``option`` (``--sweep`` or ``--set``)."""
    data = settings.model_dump(mode="python")
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for name in parents:
            child = node.get(name) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                raise DataError(f"{option} {key}: {name!r} is not a config section")
            node = child
        if leaf not in node:
            raise DataError(f"{option} {key}: no such config key {leaf!r} in {'.'.join(parents)}")
        node[leaf] = value
    variant = " ".join(f"{k}={scalar_text(v)}" for k, v in overrides.items())
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        # the config file's wording (key path, value, expected), never pydantic's dump
        problems = problems_from(exc, secrets=settings.secret_values())
        raise DataError(f"{option} {variant}: invalid value: {problems[0]}") from None
    except ConfigError as exc:
        raise DataError(f"{option} {variant}: invalid value: {exc.problems[0]}") from None


def _run_variant(
    settings_json: str, series: list[CandleSeries], req: BacktestRequest
) -> dict[str, Any]:
    """Worker entry point: one variant (``req.overrides`` on the settings), its document."""
    from cryptomon import log
    from cryptomon.backtest.session import run_series

    settings = apply_overrides(Settings.model_validate_json(settings_json), req.overrides)
    log.configure(level="ERROR", fmt="json", secrets=settings.secret_values())
    _, document = asyncio.run(run_series(settings, series, req))
    return document


def rank_documents(rows: Sequence[dict[str, Any]], rank: str) -> list[dict[str, Any]]:
    """``rows`` (with a ``summary``) best first by ``rank``: highest first, lowest first for
    ``max_drawdown_pct``; a variant without the metric (no trades: no Sharpe) last; equal
    ones in their grid order."""
    lowest = rank == "max_drawdown_pct"

    def key(row: dict[str, Any]) -> float:
        value = row["summary"].get(rank)
        if value is None:
            return float("inf")
        return float(value) if lowest else -float(value)

    return sorted(rows, key=key)


def run_sweep(
    settings: Settings,
    series: list[CandleSeries],
    req: BacktestRequest,
    variants: list[dict[str, Any]],
    *,
    workers: int,
    rank: str,
) -> list[dict[str, Any]]:
    """Run every variant (``req`` with the variant's overrides) in ``workers`` processes;
    their documents ranked by ``rank`` (:func:`rank_documents`)."""
    for overrides in variants:  # a bad value fails here, before any worker starts
        apply_overrides(settings, overrides)
    payload = settings.model_dump_json()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
        futures = [
            pool.submit(_run_variant, payload, series, replace(req, overrides=v)) for v in variants
        ]
        rows = [f.result() for f in futures]
    return rank_documents(rows, rank)
