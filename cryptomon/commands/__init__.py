"""One module per subcommand of ``crypto-monitor`` (DESIGN.md section 2).

Each module exposes ``register(subparsers, parent)`` and is discovered by ``cryptomon.cli``.
This package sits above ``cryptomon.app`` (like ``evaluate/`` and ``backtest/``): nothing
below it imports it.
"""
