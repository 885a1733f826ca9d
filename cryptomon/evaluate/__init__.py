"""Detection quality: labelled events through the real feed and detector code.

A library above the domain packages (DESIGN.md section 2, like ``backtest/``): it may import
``cryptomon.app``, ``cryptomon.sim`` and ``cryptomon.detect``; nothing below it imports it.
:mod:`cryptomon.evaluate.scorecard` scores the detectors on labelled simulator scenarios (CLI
``crypto-monitor scorecard``); :mod:`cryptomon.evaluate.evaluate` on real recordings and trade
series with injected events (CLI ``crypto-monitor evaluate``).
"""
