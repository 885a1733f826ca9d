"""An in-process notification destination behind the notifier's MockTransport: apprise builds
and checks the channel's plugin as in production; the message stops here instead of a socket."""

from __future__ import annotations

import asyncio
from typing import Any

from cryptomon.notify.transport import MockTransport, NotifyRequest


class Inbox:
    """Records delivered messages like a JSON webhook would receive them.

    ``fail_next`` answers that many requests with an error; ``fail_always`` answers every one so;
    ``hang`` makes requests wait, unanswered, until ``release()`` (a hung endpoint).
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.requests = 0
        self.fail_next = 0
        self.fail_always = False
        self.hang = False
        self.waiting = 0
        self._released = asyncio.Event()
        self.transport = MockTransport(self._handle)

    async def _handle(self, request: NotifyRequest) -> str | None:
        self.requests += 1
        if self.hang:
            self.waiting += 1
            await self._released.wait()
            self.waiting -= 1
        if self.fail_always or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            return f"HTTP 500 from {request.channel}: try later"
        self.messages.append(
            {
                "title": request.title,
                "message": request.body,
                "type": request.notify_type,
                "format": request.body_format,
            }
        )
        self.paths.append(str(getattr(request.plugin, "fullpath", "")))
        return None

    def release(self) -> None:
        self._released.set()

    @staticmethod
    def url(path: str = "hook") -> str:
        """A json:// URL apprise accepts; nothing resolves or connects to it."""
        return f"json://inbox.invalid/{path}"

    def bodies(self) -> list[str]:
        return [m["message"] for m in self.messages]

    def titles(self) -> list[str]:
        return [m["title"] for m in self.messages]
