"""The ``backtest`` section: the execution model of ``crypto-monitor backtest``."""

from __future__ import annotations

from pydantic import Field

from cryptomon.config.base import Section


class BacktestConfig(Section):
    """Slippage and instrument assumptions of a backtest on candles (fees: ``trading.paper``).

    On candles the quotes are the candle's prices widened by a half spread of
    ``max(price * slippage_bps / 10_000, slippage_range_fraction * (high - low))``; with a
    recorded book the book itself is used.
    """

    slippage_bps: float = Field(
        default=5.0, ge=0, le=1000, description="half spread around candle prices, bps"
    )
    slippage_range_fraction: float = Field(
        default=0.0, ge=0, le=1, description="or this fraction of the candle's high-low range"
    )
    replay_step_s: float = Field(
        default=0.1, gt=0, le=60, description="recordings: clock step between settles, s"
    )
    infer_instrument: bool = Field(
        default=True, description="tick and lot from the data (else trading.paper's)"
    )
    fast_path: bool = Field(
        default=True,
        description="candles: enter the trading path only where a signal or an exit can happen",
    )
