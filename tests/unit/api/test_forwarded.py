"""The address forms of forwarding headers, and the bound of the parsed-address memory."""

from __future__ import annotations

import ipaddress

import pytest

from cryptomon.api.forwarded import _MAX_SEEN as MAX_SEEN
from cryptomon.api.forwarded import TrustedProxies, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:4711", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("[::ffff:203.0.113.9]:80", "203.0.113.9"),
    ],
)
def test_address_forms(text: str, expected: str) -> None:
    """Each form a proxy writes (a port, brackets, IPv4-mapped) gives the client's address."""
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "unknown",
        "_hidden",
        "example.com",
        "203.0.113.7:http",
        "203.0.113.7:",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "[2001:db8::1]:",
        "2001:db8::1:443:",
        "fe80::1%eth0",
        "203.0.113.256",
        "٢٠٣.0.113.7",
    ],
)
def test_not_addresses(text: str) -> None:
    """Anything else is not an address (the request then counts under the peer)."""
    assert parse_address(text) is None


def test_the_memory_of_parsed_addresses_is_bounded() -> None:
    """Every client address seen is remembered parsed, up to a bound: past it the memory is
    emptied, so a stream of new addresses (a rotating IPv6 client) cannot grow it."""
    proxies = TrustedProxies(["127.0.0.1"])
    base = int(ipaddress.IPv6Address("2001:db8::"))
    for i in range(3 * MAX_SEEN):
        text = str(ipaddress.IPv6Address(base + i))
        assert proxies._pick([text, "127.0.0.1"]) == (0, text)
        assert len(proxies._seen) <= MAX_SEEN
