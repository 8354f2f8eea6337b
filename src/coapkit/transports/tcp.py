"""CoAP over TCP and TLS (RFC 8323 §3) for asyncio: listeners, outgoing connections, limits.

One :class:`StreamTransport` holds every connection of one endpoint (a
server's listener, or a client's connections of one scheme) and speaks to
its sink (the runtime driver) with connection keys: the peer's address on a
server, the origin's address on a client (one connection per origin).  The
sink protocol extends the datagram one:

* ``connection_made(remote, websocket)``: the connection is up, TLS
  handshake included;
* ``datagram_received(data, remote, False)``: bytes read (a piece of the
  stream), then ``batch_done()``;
* ``connection_lost(remote, error)``: closed by either side, or failed.

The driver sends with :meth:`StreamTransport.sendto` and closes with
:meth:`StreamTransport.close_connection` (after a Release or an Abort).

Bounds (a peer may open connections and never read or write):

* connections in all and per peer host (``StreamLimits``): beyond, a new
  connection is closed at once, and said so once per host and minute;
* what waits to be written to a peer that does not read: beyond
  ``max_write_buffer`` the connection is aborted (its exchanges fail);
* what is read is bounded by the connection layer, which refuses a frame
  larger than the Max-Message-Size it announced, from its header;
* idle connections and peers that never send their CSM are closed by the
  connection layer's timers.

TLS (``coaps+tcp``): an :class:`ssl.SSLContext` with ALPN ``coap`` (RFC
8323 §4.1 registers it); the handshake has ``handshake_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

from coapkit.errors import NetworkError
from coapkit.messaging.addresses import describe_remote

logger = logging.getLogger("coapkit.transport")

Address = tuple[Any, ...]
ALPN = "coap"


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Bounds on a listener's connections."""

    max_connections: int = 10_000
    """Connections open at once; beyond, new ones are closed at once."""
    max_per_host: int = 256
    """Connections from one peer IP address."""
    max_write_buffer: int = 1 << 20
    """Bytes waiting to be written to one peer; beyond, it is aborted (it does not read)."""
    handshake_timeout: float = 10.0
    """Seconds for the TLS handshake."""


class StreamSink(Protocol):
    """What the transport reports to (the runtime driver)."""

    def connection_made(self, remote: Address, websocket: bool) -> None: ...

    def datagram_received(self, data: bytes, remote: Address, multicast: bool) -> None: ...

    def connection_lost(self, remote: Address, error: NetworkError) -> None: ...

    def batch_done(self) -> None: ...


def remote_key(address: Address) -> Address:
    """The form connection keys take: IPv4-mapped IPv6 shown as IPv4, (host, port) only."""
    host, port = address[0], address[1]
    if isinstance(host, str) and host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return (host, port)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, reporting to its :class:`StreamTransport`."""

    def __init__(self, owner: StreamTransport, key: Address | None) -> None:
        self.owner = owner
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.closing = False
        self.counted_host: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but behave as one)
        self.transport = transport  # type: ignore[assignment]
        self.owner._made(self, self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self.key is not None and not self.closing:
            self.owner._received(self, data)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(self, exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False


class StreamTransport:
    """The TCP/TLS connections of one endpoint (see the module doc)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sink: StreamSink,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: StreamLimits | None = None,
    ) -> None:
        self.loop = loop
        self.sink = sink
        self.ssl = ssl_context
        self.limits = limits or StreamLimits()
        self._connections: dict[Address, _Connection] = {}
        self._per_host: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._refused_logged: dict[str, float] = {}
        self._closed = False
        #: connections refused by the limits
        self.refused = 0
        #: connections aborted because their peer did not read what was written
        self.write_overflows = 0

    # -- a listener ---------------------------------------------------------------------

    async def listen(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Accept connections on ``host``:``port`` (``::`` is dual-stack where possible)."""
        family = socket.AF_INET if ":" not in host and host not in ("", "::") else socket.AF_UNSPEC
        self._server = await self.loop.create_server(
            lambda: _Connection(self, None),
            host or None,
            port,
            family=family,
            ssl=self.ssl,
            ssl_handshake_timeout=self.limits.handshake_timeout if self.ssl else None,
            reuse_port=reuse_port or None,
            backlog=1024,
        )

    @property
    def local_address(self) -> Address:
        if self._server is None or not self._server.sockets:
            raise NetworkError("not listening")
        return tuple(self._server.sockets[0].getsockname())

    # -- outgoing connections --------------------------------------------------------------

    async def connect(
        self, remote: Address, *, server_hostname: str | None = None, timeout: float = 10.0
    ) -> None:
        """Open the connection to ``remote`` (a resolved address) unless it is open."""
        key = remote_key(remote)
        existing = self._connections.get(key)
        if existing is not None and not existing.closing:
            return
        protocol = _Connection(self, key)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: protocol,
                    remote[0],
                    remote[1],
                    ssl=self.ssl,
                    server_hostname=server_hostname if self.ssl else None,
                    ssl_handshake_timeout=self.limits.handshake_timeout if self.ssl else None,
                ),
                timeout,
            )
        except TimeoutError as exc:
            raise NetworkError(f"{describe_remote(key)}: connecting timed out") from exc
        except ssl.SSLError as exc:
            raise NetworkError(
                f"{describe_remote(key)}: TLS handshake failed: {exc.reason}"
            ) from exc
        except OSError as exc:
            # asyncio says "Connect call failed (...)": name the cause as curl would
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno == errno.ECONNREFUSED:
                reason = "connection refused: nothing listens there"
            raise NetworkError(f"{describe_remote(key)}: {reason}", errno=exc.errno) from exc

    def is_connected(self, remote: Address) -> bool:
        connection = self._connections.get(remote_key(remote))
        return connection is not None and not connection.closing

    # -- from the connections ------------------------------------------------------------

    def _made(self, connection: _Connection, transport: asyncio.Transport) -> None:
        if connection.key is None:  # accepted: the key is the peer's address
            peer = transport.get_extra_info("peername")
            connection.key = remote_key(tuple(peer))
            host = str(connection.key[0])
            limits = self.limits
            if (
                self._closed
                or len(self._connections) >= limits.max_connections
                or self._per_host.get(host, 0) >= limits.max_per_host
            ):
                self._refuse(connection, transport, host)
                return
            self._per_host[host] = self._per_host.get(host, 0) + 1
            connection.counted_host = host
        transport.set_write_buffer_limits(high=64 * 1024)
        self._connections[connection.key] = connection
        self.sink.connection_made(connection.key, False)

    def _refuse(self, connection: _Connection, transport: asyncio.Transport, host: str) -> None:
        self.refused += 1
        connection.closing = True
        connection.key = None
        now = self.loop.time()
        if now - self._refused_logged.get(host, -1e9) > 60.0:
            if len(self._refused_logged) > 1024:
                self._refused_logged.clear()
            self._refused_logged[host] = now
            logger.warning(
                "connection from %s refused: %d connections open (%d from that host; limits "
                "%d and %d)",
                host,
                len(self._connections),
                self._per_host.get(host, 0),
                self.limits.max_connections,
                self.limits.max_per_host,
            )
        transport.abort()

    def _received(self, connection: _Connection, data: bytes) -> None:
        assert connection.key is not None
        try:
            self.sink.datagram_received(data, connection.key, False)
        finally:
            self.sink.batch_done()

    def _lost(self, connection: _Connection, exc: Exception | None) -> None:
        key = connection.key
        if connection.counted_host is not None:
            left = self._per_host.get(connection.counted_host, 1) - 1
            if left > 0:
                self._per_host[connection.counted_host] = left
            else:
                self._per_host.pop(connection.counted_host, None)
            connection.counted_host = None
        if key is None or self._connections.get(key) is not connection:
            return
        del self._connections[key]
        if exc is None:
            reason = "the connection was closed"
        elif isinstance(exc, ssl.SSLError):
            reason = f"TLS error: {exc.reason or exc}"
        else:
            reason = str(exc) or exc.__class__.__name__
        self.sink.connection_lost(key, NetworkError(f"{describe_remote(key)}: {reason}"))

    # -- to the connections --------------------------------------------------------------

    def sendto(self, data: bytes, remote: Address) -> None:
        connection = self._connections.get(remote)
        if connection is None or connection.closing or connection.transport is None:
            return  # gone: the sink has been (or is being) told
        transport = connection.transport
        transport.write(data)
        if connection.paused and transport.get_write_buffer_size() > self.limits.max_write_buffer:
            self.write_overflows += 1
            logger.warning(
                "%s does not read what is sent to it (%d bytes waiting): connection aborted",
                describe_remote(remote),
                transport.get_write_buffer_size(),
            )
            connection.closing = True
            transport.abort()

    def close_connection(self, remote: Address, *, abort: bool = False) -> None:
        """Close after what was written is sent (or at once with ``abort``)."""
        connection = self._connections.get(remote)
        if connection is None or connection.transport is None or connection.closing:
            return
        connection.closing = True
        if abort and not connection.transport.get_write_buffer_size():
            connection.transport.abort()
        else:
            connection.transport.close()  # the Release or Abort message goes out first

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def close(self) -> None:
        """Stop listening and close every connection."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.closing = True
                connection.transport.abort()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def closed(self) -> bool:
        return self._closed
