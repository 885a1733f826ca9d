"""Real loopback destinations for notification tests: an aiohttp JSON webhook sink, an SMTP
server (aiosmtpd), a port that accepts and never answers, and a port nobody listens on."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller


class HttpSink:
    """apprise ``json://`` target (form posts too); ``fail_next`` answers that many requests
    with HTTP 500."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.fail_next = 0
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.content_type == "application/x-www-form-urlencoded":  # e.g. Twilio's API
            payload: dict[str, Any] = dict(await request.post())
        else:
            payload = await request.json()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "try later"}, status=500)
        self.messages.append(payload)
        self.paths.append(request.path)
        return web.json_response({"ok": True})

    async def start(self) -> HttpSink:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def bodies(self) -> list[str]:
        return [m["message"] for m in self.messages]

    def titles(self) -> list[str]:
        return [m["title"] for m in self.messages]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class _Ephemeral(Controller):
    """aiosmtpd Controller bound to port 0: learns the real port before its self-check."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """A real SMTP server on 127.0.0.1 (its own thread and loop, as aiosmtpd runs it)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.controller = _Ephemeral(self, hostname="127.0.0.1", port=0)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def url(self) -> str:
        port = self.controller.port
        return (
            f"mailto://127.0.0.1:{port}?from=cryptomon@example.com&to=ops@example.com&mode=insecure"
        )

    def texts(self) -> list[tuple[str, str]]:
        out = []
        for m in self.messages:
            part = m.get_body(preferencelist=("plain", "html"))
            out.append((str(m["Subject"]), part.get_content() if part else ""))
        return out

    def close(self) -> None:
        self.controller.stop()


class DeadSink:
    """Accepts TCP connections and never answers (a hung webhook)."""

    def __init__(self) -> None:
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass

    async def start(self) -> DeadSink:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/dead"

    async def close(self) -> None:
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
