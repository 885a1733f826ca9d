"""Request and response models of the backtest routes (``api/rest/backtests.py``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cryptomon.api.models import Out, Query

MAX_RUN_ID = 2**63 - 1  # the id column is a 64-bit integer on both databases


class BacktestQuery(Query):
    limit: int = Field(default=50, ge=1, le=1000, description="runs per page, newest first")
    before: int | None = Field(
        default=None, ge=1, le=MAX_RUN_ID, description="runs with an id below this"
    )


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


class BacktestRunDetail(BacktestRunOut):
    params: dict[str, Any] = Field(description="everything needed to run it again")
    breakdown: dict[str, Any] = Field(
        description="by_symbol (per market, keyed `exchange symbol`) and by_source"
    )
    trades: list[dict[str, Any]]


class BacktestPage(Out):
    items: list[BacktestRunOut]
    next_before: int | None = Field(description="pass as before for the next page; null at end")
