"""The unit-test guard: no network sockets in tests/unit/."""

from __future__ import annotations

import socket

import pytest

from tests.unit.conftest import NetworkInUnitTest


def test_connecting_to_an_address_fails_the_unit_test() -> None:
    """A TCP connect, even to loopback, raises before any packet is sent."""
    with socket.socket() as sock, pytest.raises(NetworkInUnitTest, match=r"127\.0\.0\.1"):
        sock.connect(("127.0.0.1", 9))


def test_binding_a_port_fails_but_a_socketpair_works() -> None:
    """Binding an internet port is refused; a local socketpair (the event loop's) still works."""
    with socket.socket() as sock, pytest.raises(NetworkInUnitTest, match=r"socket\.bind"):
        sock.bind(("127.0.0.1", 0))
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"


def test_postgresql_is_refused(request: pytest.FixtureRequest) -> None:
    """A unit test asking for a PostgreSQL database fails, naming the rule."""
    with pytest.raises(pytest.fail.Exception, match="unit tests use no PostgreSQL"):
        request.getfixturevalue("pg_url")
