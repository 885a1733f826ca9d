"""cryptomon: a real-time crypto market monitor and risk-managed auto-trader."""

__version__ = "0.1.0"
