"""REST endpoints, one module per concern; each exposes a ``RouteTable`` named ``table``."""

from cryptomon.api.rest import (
    alerts,
    anomalies,
    backtests,
    dashboard,
    market,
    signals,
    system,
    trading,
)
from cryptomon.api.routing import Route


def all_routes() -> list[Route]:
    return [
        r
        for m in (system, market, anomalies, signals, trading, alerts, backtests, dashboard)
        for r in m.table.routes
    ]
