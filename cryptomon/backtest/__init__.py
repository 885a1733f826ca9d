"""Backtesting: stored candles, imported files or recordings through the live pipeline
(detectors, signal generator, risk checks, order engine, paper broker) on a ManualClock.

- :mod:`cryptomon.backtest.data`: candle series (numpy columns), file parsing, tick/lot inference;
- :mod:`cryptomon.backtest.runner`: the pipeline and the candle driver (slippage, SL/TP path),
  with :mod:`~cryptomon.backtest.candlepath` (the whole path) and
  :mod:`~cryptomon.backtest.fastlanes` (the fast path); the result in
  :mod:`~cryptomon.backtest.result`;
- :mod:`cryptomon.backtest.ledger`: fills -> round-trip trades;
- :mod:`cryptomon.backtest.stats`: the summary and breakdowns;
- :mod:`cryptomon.backtest.report`: the self-contained HTML report (plotly);
- :mod:`cryptomon.backtest.sweep`: parameter grids in worker processes.

Like :mod:`cryptomon.evaluate`, this package sits above the subsystems; nothing below imports it.
"""
