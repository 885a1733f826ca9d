"""One module per subcommand of ``crypto-monitor`` (DESIGN.md section 2).

Each subcommand module exposes ``register(subparsers, parent)`` and is discovered by
``cryptomon.cli``; a module without ``register`` (``support``: exit codes, settings from the
common options, logging setup, the loop runner) is skipped. This package sits above
``cryptomon.app`` (like ``evaluate/`` and ``backtest/``): nothing below it imports it.
"""
