"""REST + WebSocket API (DESIGN.md sections 1 and 5). Only ``cryptomon.app`` (and the ``api``
subcommand above it) imports this."""

from cryptomon.api.server import ApiServer

__all__ = ["ApiServer"]
