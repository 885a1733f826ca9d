"""Detection quality: labelled events through the real feed and detector code.

A library above the domain packages (DESIGN.md section 2, like ``backtest/``): it may import
``cryptomon.app``, ``cryptomon.sim`` and ``cryptomon.detect``; nothing below it imports it.
:mod:`cryptomon.evaluate.scorecard` scores the detectors on labelled simulator scenarios; its
CLI is ``crypto-monitor scorecard`` (:mod:`cryptomon.commands.scorecard`).
"""
