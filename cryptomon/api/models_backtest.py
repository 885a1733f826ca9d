"""Request and response models of the backtest routes (``api/rest/backtests.py``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from cryptomon.api.models import Out, Query

MAX_RUN_ID = 2**63 - 1  # the id column is a 64-bit integer on both databases


class BacktestQuery(Query):
    limit: int = Field(default=50, ge=1, le=1000, description="runs per page, newest first")
    before: int | None = Field(
        default=None, ge=1, le=MAX_RUN_ID, description="runs with an id below this"
    )
    sweep: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RUN_ID,
        description="the variants of this sweep (its id: the run id of its best variant), "
        "ranked best first by the sweep's metric; page with after_rank",
    )
    after_rank: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="with sweep: the variants ranked after this (pass next_after_rank back)",
    )
    variants: bool = Field(
        default=True,
        description="false: a sweep is listed by its best variant alone (rank 1)",
    )

    @model_validator(mode="after")
    def _paging(self) -> BacktestQuery:
        if self.sweep is not None and self.before is not None:
            raise ValueError("before: pages the newest-first list; with sweep use after_rank")
        if self.sweep is None and self.after_rank is not None:
            raise ValueError("after_rank: pages a sweep's variants; give sweep too")
        if self.sweep is not None and not self.variants:
            raise ValueError("variants: false groups the whole list; with sweep leave it out")
        return self


class BacktestRunOut(Out):
    """One stored run; ``summary`` holds the statistics of ``crypto-monitor backtest``."""

    id: int
    created_at: str = Field(description="when the run was stored (ISO 8601, UTC)")
    source: str = Field(description="db or the input files")
    symbols: list[str]
    start: str
    end: str
    summary: dict[str, Any]
    digest: str = Field(description="sha256 of the orders and fills: equal runs, equal digest")
    has_report: bool = Field(description="the HTML report is at /api/v1/backtests/{id}/report")
    sweep_id: int | None = Field(
        description="a sweep's variant: the sweep (the run id of its best variant); null "
        "for a single run"
    )
    sweep_rank: int | None = Field(description="a sweep's variant: its rank (1: the best)")
    sweep_metric: str | None = Field(description="a sweep's variant: what the sweep ranked by")
    overrides: dict[str, Any] = Field(
        description="config keys set for this run (a sweep variant's, or --set's): "
        "dotted key -> value"
    )


class BacktestRunDetail(BacktestRunOut):
    params: dict[str, Any] = Field(
        description="everything needed to run it again; command: the crypto-monitor "
        "backtest command that does (its --set options are the overrides)"
    )
    breakdown: dict[str, Any] = Field(
        description="by_symbol (per market, keyed `exchange symbol`) and by_source"
    )
    trades: list[dict[str, Any]]


class BacktestPage(Out):
    items: list[BacktestRunOut]
    next_before: int | None = Field(description="pass as before for the next page; null at end")
    next_after_rank: int | None = Field(
        default=None,
        description="with sweep: pass as after_rank for the next page; null at end",
    )
