"""Unit tests open no network sockets: a connect or bind to an IPv4/IPv6 address during a unit
test fails it, naming the address (a CPython audit hook, active only while a test of this folder
runs; nothing is patched). PostgreSQL, which talks through libpq below that hook, is refused by
its fixture. Servers, loopback sinks, NATS and PostgreSQL belong in ``tests/integration/``."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

_AUDITED = frozenset({"socket.connect", "socket.bind"})
_INET = (socket.AF_INET, socket.AF_INET6)
_state = {"active": False}


class NetworkInUnitTest(RuntimeError):
    """A unit test tried to use the network."""


def _refuse_network(event: str, args: tuple[Any, ...]) -> None:
    if event not in _AUDITED or not _state["active"]:
        return
    sock, address = args[0], args[1]
    if getattr(sock, "family", None) in _INET:
        raise NetworkInUnitTest(
            f"unit tests open no sockets ({event} {address!r}); move the test to tests/integration/"
        )


sys.addaudithook(_refuse_network)


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    _state["active"] = True
    try:
        yield
    finally:
        _state["active"] = False


@pytest.fixture
def pg_url() -> str:
    """PostgreSQL talks through libpq, below the audit hook: refused here by name."""
    pytest.fail("unit tests use no PostgreSQL; move the test to tests/integration/")
