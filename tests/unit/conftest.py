"""Unit tests open no network sockets: a connect or bind to an IPv4/IPv6 address during a unit
test fails it, naming the address. Servers, loopback sinks, NATS and PostgreSQL belong in
``tests/integration/``. Enforced with a CPython audit hook (nothing is patched); the hook is
active only while a test of this folder runs."""

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
