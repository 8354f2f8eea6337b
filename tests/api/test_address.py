"""Address: the typed host and port that request.remote and response.remote are."""

from __future__ import annotations

import pickle
import socket

import pytest

from coapkit import Address
from coapkit.address import address_of


@pytest.mark.parametrize(
    ("remote", "host", "text"),
    [
        (("127.0.0.1", 5683), "127.0.0.1", "127.0.0.1:5683"),
        (("::ffff:127.0.0.1", 5683, 0, 0), "127.0.0.1", "127.0.0.1:5683"),
        (("::1", 5683, 0, 0), "::1", "[::1]:5683"),
        (("2001:db8::1", 61616), "2001:db8::1", "[2001:db8::1]:61616"),
        (("::ffff:7f00:1", 5683, 0, 0), "::ffff:7f00:1", "[::ffff:7f00:1]:5683"),
    ],
)
def test_socket_addresses_become_readable_addresses(
    remote: tuple[object, ...], host: str, text: str
) -> None:
    address = address_of(remote)
    assert isinstance(address, Address)
    assert address.host == host
    assert address.port == remote[1]
    assert str(address) == text


def test_a_link_local_address_keeps_its_zone() -> None:
    index, name = socket.if_nameindex()[0]
    address = address_of(("fe80::1", 5683, 0, index))
    assert address == Address(f"fe80::1%{name}", 5683)
    assert str(address) == f"[fe80::1%{name}]:5683"
    assert address_of(("fe80::1", 5683, 0, 4_000_000)).host == "fe80::1%4000000"


def test_an_address_is_a_value_and_a_tuple() -> None:
    address = Address("192.0.2.1", 5683)
    host, port = address
    assert (host, port) == ("192.0.2.1", 5683)
    assert address == Address("192.0.2.1", 5683)
    assert {address: 1}[Address("192.0.2.1", 5683)] == 1
    assert pickle.loads(pickle.dumps(address)) == address
    assert repr(address) == "Address(host='192.0.2.1', port=5683)"
    assert address_of(address) == address


def test_addresses_are_made_once_per_remote() -> None:
    remote = ("::ffff:198.51.100.7", 5683, 0, 0)
    assert address_of(remote) is address_of(("::ffff:198.51.100.7", 5683, 0, 0))


def test_a_remote_that_is_no_socket_address() -> None:
    assert address_of("node-a") == Address("node-a", 0)
