"""Offline loopback exchange simulator: market model, Binance-protocol server, scenarios."""
