"""The real :class:`~coapkit.Client` and :class:`~coapkit.Server` on a simulated network.

Theory of operation
-------------------
Nothing here is a second client or server.  A :class:`VirtualNetwork` is a
:class:`~coapkit.runtime.network.DatagramNetwork`, the seam through which a
``Client`` or ``Server`` gets its transport and randomness when it starts:

* its transports (:class:`VirtualTransport`) put datagrams on a
  :class:`~coapkit.testing.SimulatedNetwork`, which loses, duplicates, delays
  and reorders them as its :class:`~coapkit.testing.LinkConditions` say, and
  hands the survivors to the receiving driver exactly as a UDP socket would
  (``datagram_received`` then ``batch_done``), or, for a datagram to an
  address nobody holds, reports "port unreachable" to the sender;
* its randomness is seeded (tokens, message IDs, retransmission jitter), one
  generator per endpoint in the order they start, so that a seed fixes the
  whole run: the same program gives the same :attr:`VirtualNetwork.trace`;
* it runs on a :class:`~coapkit.testing.VirtualEventLoop`, which shares its
  clock and handles the network's events in time order with the loop's own
  timers, so that the drivers' retransmission timers, the server's
  handler tasks and the client's observation timers all run in virtual
  time;
* host names are the network's own: ``address="server"`` gives the server an
  address (from the documentation ranges of RFC 5737) and the loop resolves
  ``coap://server/...`` to it.

Sans-I/O nodes (an :class:`~coapkit.testing.EndpointNode`) can share the
network with the asyncio ones (:meth:`VirtualNetwork.add_node`).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import random
import socket
from collections.abc import Iterator
from typing import Any, cast

from coapkit.client import Client
from coapkit.errors import NetworkError, ProtocolUsageError
from coapkit.messaging.addresses import describe_remote
from coapkit.messaging.records import Remote
from coapkit.resources.site import Site
from coapkit.server import DEFAULT_PORT, Server
from coapkit.testing.clock import VirtualClock
from coapkit.testing.loop import VirtualEventLoop
from coapkit.testing.network import LinkConditions, SimNode, SimulatedNetwork, TraceEntry
from coapkit.transports.udp import Address, DatagramSink

__all__ = ["VirtualNetwork", "VirtualTransport"]

_WILDCARDS = ("", "::", "0.0.0.0")
_EPHEMERAL = 49152  #: the first port given to a transport bound to port 0 (RFC 6335 §6)


class VirtualNetwork:
    """A simulated network for the real :class:`~coapkit.Client` and
    :class:`~coapkit.Server`, in virtual time (see the module doc).

    >>> async def main():                                      # doctest: +SKIP
    ...     net = VirtualNetwork(seed=1, loss=0.3)
    ...     async with net.server(site, address="server"), net.client() as client:
    ...         response = await client.get("coap://server/hello")
    >>> coapkit.testing.run(main())                            # doctest: +SKIP

    Every link has the same conditions (``latency``, ``jitter``, ``loss``,
    ``duplicate``, or a whole :class:`LinkConditions` as ``conditions``);
    :attr:`simulated` sets them per link.  ``unreachable``: a datagram to an
    address nobody holds draws a "port unreachable" error at its sender, as
    from a host whose port is closed (ICMP); ``False`` drops it silently, as
    a host that is gone would.

    Made while a :class:`VirtualEventLoop` runs, the network joins it at once;
    made elsewhere (a fixture), when it is first used on one.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        latency: float = 0.005,
        jitter: float = 0.0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        conditions: LinkConditions | None = None,
        unreachable: bool = True,
        keep_trace: bool = True,
    ) -> None:
        if conditions is None:
            conditions = LinkConditions(
                latency=latency, jitter=jitter, loss=loss, duplicate=duplicate
            )
        loop = _running_loop()
        virtual = loop if isinstance(loop, VirtualEventLoop) else None
        self.seed = seed
        #: the network underneath: per-link conditions, the trace, sans-I/O nodes
        self.simulated = SimulatedNetwork(
            seed=seed,
            clock=virtual.clock if virtual is not None else VirtualClock(),
            conditions=conditions,
            keep_trace=keep_trace,
            port_unreachable=unreachable,
        )
        self._names: dict[str, str] = {}
        self._taken: set[str] = set()
        self._pool = _address_pool()
        self._next_port: dict[str, int] = {}
        self._sources = 0
        self._loop: VirtualEventLoop | None = None
        if virtual is not None:
            self._join(virtual)

    def __repr__(self) -> str:
        return f"<VirtualNetwork seed={self.seed} at {self.now:g} s, {len(self._names)} names>"

    # -- what tests look at ---------------------------------------------------------------

    @property
    def now(self) -> float:
        """Virtual time in seconds (the loop's ``time()``)."""
        return self.simulated.clock.now

    @property
    def trace(self) -> list[TraceEntry]:
        """What happened to every datagram, in order (see :class:`TraceEntry`)."""
        return self.simulated.trace

    def trace_lines(self, *, details: bool = False) -> list[str]:
        """The trace for people (see :meth:`SimulatedNetwork.trace_lines`)."""
        return self.simulated.trace_lines(details=details)

    # -- hosts ------------------------------------------------------------------------------

    def add_host(self, name: str, address: str | None = None) -> str:
        """Name a host (``address``, or the next free documentation address) and return its
        address; a name already known keeps its address.  Names resolve on the loop the
        network runs on (``coap://name/``), case-insensitively."""
        if _is_ip(name):
            raise ValueError(f"{name!r} is an address, not a host name")
        key = name.lower().rstrip(".")
        known = self._names.get(key)
        if address is None:
            if known is not None:
                return known
            address = self._allocate()
        else:
            address = _normalise_host(address)
            if known is not None and known != address:
                raise ValueError(f"host {name!r} is {known} already")
        self._names[key] = address
        self._taken.add(address)
        return address

    def lookup(self, name: str) -> str | None:
        """The address of host ``name``, or ``None``."""
        return self._names.get(name.lower().rstrip("."))

    def _host(self, address: str | None) -> str:
        """An address for a new endpoint: fresh, the one given, or the named host's."""
        if address is None:
            return self._allocate()
        if _is_ip(address):
            host = _normalise_host(address)
            self._taken.add(host)
            return host
        return self.add_host(address)

    def _allocate(self) -> str:
        for address in self._pool:
            if address not in self._taken:
                self._taken.add(address)
                return address
        raise OSError(errno.EADDRNOTAVAIL, "the virtual network ran out of addresses")

    # -- the real client and server on this network -----------------------------------------

    def server(
        self,
        site: Site | None = None,
        *,
        address: str = "server",
        port: int = DEFAULT_PORT,
        **options: Any,
    ) -> Server:
        """A :class:`~coapkit.Server` for ``site`` at host ``address`` (a name or an IP
        address) and ``port`` on this network; ``options`` are the server's own
        (``observe=``, ``handler_timeout=`` ...).  Start it as any server:
        ``async with net.server(site) as server:``."""
        return Server(site, bind=(self._host(address), port), network=self, **options)

    def client(self, *, address: str | None = None, **options: Any) -> Client:
        """A :class:`~coapkit.Client` on this network, at a host of its own unless
        ``address`` names one; ``options`` are the client's own (``timeout=`` ...)."""
        return Client(bind=(self._host(address), 0), network=self, **options)

    def add_node(self, node: SimNode, *, address: str, port: int = DEFAULT_PORT) -> Remote:
        """Put a sans-I/O node (an :class:`~coapkit.testing.EndpointNode`...) on the
        network at host ``address`` and ``port``; returns its socket address."""
        remote = (self._host(address), port)
        self._claim(remote)
        self.simulated.attach(remote, node)
        return remote

    def _claim(self, remote: Remote) -> None:
        if remote in self.simulated.nodes:
            raise OSError(
                errno.EADDRINUSE,
                f"{describe_remote(remote)} is in use on the virtual network",
            )

    # -- the DatagramNetwork seam (coapkit.runtime.network) ---------------------------------

    def random_source(self) -> random.Random:
        """A generator for the next endpoint, seeded from the network's seed and the
        number of endpoints before it: the same program gets the same tokens and message
        IDs (RFC 7252 §5.3.1 wants them unpredictable; a test wants them repeatable)."""
        self._sources += 1
        return random.Random(f"coapkit.testing {self.seed} {self._sources}")

    def bind(
        self,
        loop: asyncio.AbstractEventLoop,
        sink: DatagramSink,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        pktinfo: bool | None = None,
    ) -> VirtualTransport:
        """A transport at ``(host, port)``: a wildcard host gets an address of its own,
        port 0 the host's next free port from 49152."""
        self._join(loop)
        if host in _WILDCARDS:
            ip = self._allocate()
        else:
            ip = _normalise_host(host)
            self._taken.add(ip)
        if port == 0:
            port = self._ephemeral(ip)
        remote = (ip, port)
        self._claim(remote)
        return VirtualTransport(self.simulated, remote, sink)

    def _ephemeral(self, ip: str) -> int:
        port = self._next_port.get(ip, _EPHEMERAL)
        for _ in range(65536 - _EPHEMERAL):
            if (ip, port) not in self.simulated.nodes:
                break
            port = port + 1 if port < 65535 else _EPHEMERAL
        else:
            raise OSError(errno.EADDRINUSE, f"no free port left on virtual host {ip}")
        self._next_port[ip] = port + 1 if port < 65535 else _EPHEMERAL
        return port

    def _join(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        if not isinstance(loop, VirtualEventLoop):
            raise ProtocolUsageError(
                "a VirtualNetwork runs in virtual time: run the test with "
                "coapkit.testing.run(), or on a coapkit.testing.VirtualEventLoop "
                "(see 'Testing your CoAP application')"
            )
        if self._loop is not None and not self._loop.is_closed():
            raise ProtocolUsageError("this VirtualNetwork already runs on another event loop")
        self._loop = loop
        loop.join(self)


class VirtualTransport:
    """A datagram transport on a :class:`SimulatedNetwork`, with the methods of
    :class:`~coapkit.transports.udp.UdpTransport` that the client, server and driver use.

    Addresss are ``(address, port)`` pairs, IPv4 or IPv6 (IPv4-mapped IPv6
    addresses are written as IPv4): a dual-stack socket without the mapping.
    """

    family = socket.AF_INET6

    def __init__(self, network: SimulatedNetwork, address: Address, sink: DatagramSink) -> None:
        self._network = network
        self._address = address
        self.sink = sink
        self._closed = False
        network.attach(address, _SinkNode(sink))

    @property
    def local_address(self) -> Address:
        return self._address

    @property
    def closed(self) -> bool:
        return self._closed

    def remote_for(self, sockaddr: Address) -> Address:
        """``(address, port)`` for a resolved or typed address."""
        try:
            return (_normalise_host(str(sockaddr[0])), int(sockaddr[1]))
        except ValueError:
            raise NetworkError(f"{sockaddr[0]!r} is not an address") from None

    def sendto(self, data: bytes, remote: Address) -> None:
        if not self._closed:
            self._network.transmit(self._address, ((data, remote),))

    def join_group(self, group: str, interface: int | str = 0) -> None:
        """Receive what is sent to ``group`` on this transport's port (RFC 7252 §8)."""
        self._network.join(self._address, (_normalise_host(group), self._address[1]))

    def set_multicast_interface(self, interface: str | int) -> None:
        """Nothing to choose: the simulated network has one interface."""

    def close(self) -> None:
        """Leave the network: datagrams sent here from now on are unroutable."""
        if not self._closed:
            self._closed = True
            self._network.detach(self._address)

    def __repr__(self) -> str:
        return f"<VirtualTransport {describe_remote(self._address)}>"


class _SinkNode:
    """A transport's end of the simulated network: hands datagrams and errors to its sink
    as a socket's reader would (each delivery a batch of one)."""

    __slots__ = ("sink",)

    def __init__(self, sink: DatagramSink) -> None:
        self.sink = sink

    def datagram_received(
        self, data: bytes, remote: Remote, now: float, multicast: bool = False
    ) -> tuple[()]:
        self.sink.datagram_received(data, cast(Address, remote), multicast)
        self.sink.batch_done()
        return ()

    def error_received(
        self, remote: Remote, error: NetworkError, now: float, head: bytes = b""
    ) -> tuple[()]:
        self.sink.error_received(cast(Address, remote), error, head)
        return ()

    def handle_timeout(self, now: float) -> tuple[()]:
        return ()

    def next_deadline(self) -> float | None:
        return None  # the driver keeps its own timer on the loop


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def _normalise_host(host: str) -> str:
    """One spelling per address (compressed IPv6, IPv4 for IPv4-mapped), no zone."""
    address = ipaddress.ip_address(host.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _address_pool() -> Iterator[str]:
    """Addresses for hosts, in order: the three documentation networks (RFC 5737), then
    10.0.0.0/8 for crowds."""
    for prefix in ("192.0.2", "198.51.100", "203.0.113"):
        for last in range(1, 255):
            yield f"{prefix}.{last}"
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    for offset in range(1, 2**24 - 1):
        yield str(ipaddress.IPv4Address(base + offset))
