"""The address of a peer, as the public API shows it: :class:`Address`, a host and a port.

The core keys its state by whatever the transport reports (for UDP, the socket's
address tuple: ``("::ffff:192.0.2.1", 5683, 0, 0)`` on a dual-stack socket).  That
tuple is right for the core and wrong for a program: its length depends on the
socket's family, an IPv4 peer shows up as an IPv4-mapped IPv6 address, and its type
says nothing.  ``request.remote`` and ``response.remote`` give an :class:`Address`
instead, made from the transport's tuple where the API hands it out:
:func:`address_of` remembers the addresses it made, so a server asked for the same
peer's address again pays a dictionary look-up, and a request whose handler never
asks pays nothing.
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import lru_cache
from typing import NamedTuple

__all__ = ["Address", "address_of"]


class Address(NamedTuple):
    """A peer's host and port: ``str(address)`` is ``127.0.0.1:5683`` or ``[::1]:5683``.

    ``host`` is an IPv4 address for a peer reached over IPv4, also when a dual-stack
    socket reported it IPv4-mapped (``::ffff:192.0.2.1``), since that is what the user
    typed and what the peer knows itself as; an IPv6 link-local address carries its
    zone (``fe80::1%eth0``).  It is a tuple, so ``host, port = request.remote`` works,
    and a value: equal addresses are equal, and an address can key a dict.
    """

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@lru_cache(maxsize=4096)
def address_of(remote: Hashable) -> Address:
    """The :class:`Address` of a transport's remote (a socket address tuple).

    A remote that is no socket address (a transport of one's own may use any hashable
    value) becomes an address with its ``str()`` as host and port 0.
    """
    if isinstance(remote, Address):
        return remote
    if isinstance(remote, tuple) and len(remote) >= 2:
        host, port = remote[0], remote[1]
        if isinstance(host, str) and isinstance(port, int):
            if host.startswith("::ffff:") and "." in host:
                host = host[7:]
            elif len(remote) >= 4 and remote[3] and "%" not in host:
                host = f"{host}%{_zone(remote[3])}"
            return Address(host, port)
    return Address(str(remote), 0)


def _zone(scope_id: int) -> str:
    """An IPv6 scope ID as the name of its interface (``eth0``), or the number if none."""
    import socket  # only for link-local peers: ``import coapkit`` stays light

    try:
        return socket.if_indextoname(scope_id)
    except (OSError, OverflowError):
        return str(scope_id)
