"""Where a :class:`~coapkit.Client` or :class:`~coapkit.Server` gets its transport and randomness.

By default both open a UDP socket on the host (:class:`UdpNetwork`) and draw
their tokens and message IDs from the kernel's CSPRNG.  A simulated network
(:class:`coapkit.testing.VirtualNetwork`) offers the same two things: a
transport that carries datagrams over the simulator, and seeded randomness,
so that the real client and server run in virtual time and the same seed
gives the same trace.  This module is that seam, and nothing more: the
client and server ask the network for a transport once, at start, and from
then on only call the transport's methods below.

A network running in virtual time also belongs to an event loop whose clock
it shares; such a loop names it as ``loop.datagram_network``, and a client or
server started there without ``network=`` uses it (:func:`default_network`),
so that an application that makes its own ``Client()`` runs unchanged in a
virtual-time test instead of opening a real socket whose timers would be
virtual.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from coapkit.randomness import RandomSource
from coapkit.runtime.entropy import SystemEntropy
from coapkit.transports.udp import Address, DatagramSink, UdpTransport

__all__ = ["UDP", "DatagramNetwork", "DatagramTransport", "UdpNetwork", "default_network"]


class DatagramTransport(Protocol):
    """What the client, server and driver use of a transport (:class:`UdpTransport` has it).

    It reports to its :class:`~coapkit.transports.udp.DatagramSink` (the driver) with
    ``datagram_received``, ``error_received`` and ``batch_done``.
    """

    @property
    def family(self) -> int:
        """``socket.AF_INET6`` when IPv6 peers can be reached (the client skips IPv6
        addresses of a host name otherwise)."""
        ...

    @property
    def local_address(self) -> Address: ...

    @property
    def closed(self) -> bool: ...

    def remote_for(self, sockaddr: Address) -> Address:
        """A resolved address in the form this transport reports remotes in."""
        ...

    def sendto(self, data: bytes, remote: Address) -> None:
        """Send one datagram; failures are reported to the sink, never raised."""
        ...

    def join_group(self, group: str, interface: int | str = 0) -> None: ...

    def set_multicast_interface(self, interface: str | int) -> None: ...

    def close(self) -> None: ...


class DatagramNetwork(Protocol):
    """A place to open datagram transports: the host's UDP stack, or a simulated network."""

    def random_source(self) -> RandomSource:
        """The randomness for one new endpoint (tokens, first message ID, ACK timeout
        jitter: RFC 7252 §5.3.1, §4.4, §4.8)."""
        ...

    def bind(
        self,
        loop: asyncio.AbstractEventLoop,
        sink: DatagramSink,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        pktinfo: bool | None = None,
    ) -> DatagramTransport:
        """A transport bound to ``(host, port)`` (``host`` is an address, already
        resolved, or a wildcard) that reports to ``sink`` on ``loop``."""
        ...


class UdpNetwork:
    """The host's UDP stack and the kernel's randomness: what a client or server uses
    unless told otherwise."""

    def random_source(self) -> RandomSource:
        return SystemEntropy()

    def bind(
        self,
        loop: asyncio.AbstractEventLoop,
        sink: DatagramSink,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        pktinfo: bool | None = None,
    ) -> UdpTransport:
        return UdpTransport.bind(loop, sink, host, port, reuse_port=reuse_port, pktinfo=pktinfo)

    def __repr__(self) -> str:
        return "UDP"


#: the host's UDP stack
UDP = UdpNetwork()


def default_network(loop: asyncio.AbstractEventLoop) -> DatagramNetwork:
    """The network of a loop that runs in virtual time (``loop.datagram_network``), else UDP."""
    network: Any = getattr(loop, "datagram_network", None)
    return UDP if network is None else network
