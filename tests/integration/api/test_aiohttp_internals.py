"""``cryptomon.api.limits`` extends aiohttp's server: what it takes from aiohttp is checked
on the installed release when the server starts, and it touches no private name but one."""

from __future__ import annotations

import ast
import inspect
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cryptomon.api import limits
from tests.integration.api.conftest import StartApi

# the one private aiohttp attribute no public API replaces (see the limits module docstring)
ALLOWED_PRIVATE = {"_request_in_progress"}


def test_limits_uses_no_private_aiohttp_name_but_the_checked_one() -> None:
    """Every ``x._name`` in limits.py is the module's own (defined there) or the one allowed
    aiohttp attribute, which check_aiohttp verifies; _drain_helper, _paused, Server._loop
    and Server._kwargs were used before: a release changing them broke it without a word."""
    tree = ast.parse(inspect.getsource(limits))
    own = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    } | {
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    }
    assert used - own == ALLOWED_PRIVATE
    assert "aiohttp.web_protocol" not in inspect.getsource(limits)  # web.RequestHandler


@pytest.mark.asyncio
async def test_the_installed_aiohttp_passes_the_startup_check(start_api: StartApi) -> None:
    """The real server started (cap_connections ran check_aiohttp); run again, it passes and
    its handlers carry the allowed private attribute as a bool."""
    api = await start_api()
    server = api.server.connections
    assert server is not None
    limits.check_aiohttp(server)
    assert isinstance(server()._request_in_progress, bool)
    major, minor = (int(p) for p in aiohttp.__version__.split(".")[:2])
    assert (3, 9) <= (major, minor) <= (3, 14), "a new aiohttp: check limits.py, then widen"


class _ChangedServer(web.Server):
    """An aiohttp whose connection handlers lost ``_request_in_progress`` (cannot be
    installed here: its handler stands in for one)."""

    def __call__(self) -> Any:
        class Handler:
            transport = None

        return Handler()


@pytest.mark.asyncio
async def test_an_aiohttp_without_what_limits_needs_fails_at_startup_naming_it() -> None:
    """The check cap_connections runs at startup, on a server whose handlers lack the
    attribute: RuntimeError naming the attribute, the aiohttp version and the remedy (not an
    AttributeError on the first connection at the cap, or idle connections never closed)."""

    async def nothing(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    with pytest.raises(RuntimeError) as err:
        limits.check_aiohttp(_ChangedServer(nothing))
    message = str(err.value)
    assert "RequestHandler._request_in_progress" in message
    assert "RequestHandler.max_line_size (an int)" in message  # what tells a 414 from a 400
    assert aiohttp.__version__ in message
    assert "install aiohttp 3.9 to 3.14" in message
