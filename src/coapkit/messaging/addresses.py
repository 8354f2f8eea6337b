"""Telling multicast destinations apart (RFC 7252 §8), without touching a socket."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import ip_address

from coapkit.messaging.records import Remote


@lru_cache(maxsize=1024)
def _host_is_multicast(host: str) -> bool:
    try:
        address = ip_address(host.partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_multicast)


def describe_remote(remote: Remote) -> str:
    """``192.0.2.1:5683`` or ``[2001:db8::1]:5683`` for socket address tuples.

    An IPv4-mapped IPv6 address (what a dual-stack socket reports for an IPv4
    peer) is shown as the IPv4 address the user typed.
    """
    if isinstance(remote, tuple) and len(remote) >= 2:
        host, port = remote[0], remote[1]
        if isinstance(host, str) and host.startswith("::ffff:") and "." in host:
            host = host[7:]
        if isinstance(host, str) and ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return repr(remote)


def remote_is_multicast(remote: Remote) -> bool:
    """True for a socket address tuple whose host is an IPv4 or IPv6 multicast address."""
    if isinstance(remote, tuple) and remote and isinstance(remote[0], str):
        return _host_is_multicast(remote[0])
    return False
