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

TLS (``coaps+tcp``, RFC 8323 §9.1): an :class:`ssl.SSLContext` (made by
:mod:`coapkit.security.tls`: ALPN ``coap``, RFC 8323 §11.7); the handshake
has ``handshake_timeout`` seconds.  A listener accepts plain TCP and runs
the handshake itself (``loop.start_tls``), so that a connection counts
against the limits while it shakes hands and a failed handshake is logged
(once per peer host and cause a minute, the cause named by
:func:`~coapkit.transports.tls.describe_tls_error`); the sink hears of a
connection only once TLS is up.  :meth:`StreamTransport.tls_session` and
:meth:`StreamTransport.peer_identity` tell what a connection negotiated and
whose verified certificate it presented.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

from coapkit.errors import NetworkError
from coapkit.messaging.addresses import describe_remote
from coapkit.transports.tls import PeerCertificate, TlsSession, describe_tls_error, tls_session

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
        self.accepted = key is None  # by a listener (else: a connection we opened)
        # accepted, TLS not up yet: "raw" until start_tls has taken the transport over,
        # then "handshake" until the connection is registered; None: not the sink's concern
        self.tls_pending: Literal["raw", "handshake"] | None = None
        self.raw_early: list[bytes] = []  # read before start_tls took the transport over
        self.early: list[bytes] = []  # read after the handshake, before registration
        self.secure = False  # TLS is up
        self.received = False  # any bytes from the peer yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but behave as one)
        self.transport = transport  # type: ignore[assignment]
        self.owner._made(self, self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self.tls_pending == "raw":
            self.raw_early.append(data)  # the ClientHello: for the TLS protocol
        elif self.tls_pending:
            # TLS delivers what followed the client's Finished before start_tls returns
            self.early.append(data)
        elif self.key is not None and not self.closing:
            self.owner._received(self, data)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(self, exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Give ``data`` to ``protocol`` as the transport would have."""
    get_buffer = getattr(protocol, "get_buffer", None)
    if get_buffer is None:
        protocol.data_received(data)  # type: ignore[attr-defined]
        return
    view = memoryview(data)
    while view:
        buffer = memoryview(get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)  # type: ignore[attr-defined]
        view = view[size:]


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
        #: writes held while a read is processed, by connection (see _received)
        self._held: dict[Address, list[bytes]] | None = None
        #: connection attempts under way, by origin (one at a time each)
        self._connecting: dict[Address, asyncio.Task[None]] = {}
        self._refused_logged: dict[str, float] = {}
        self._tls_failures_logged: dict[tuple[str, str], float] = {}
        self._handshakes: set[asyncio.Task[None]] = set()
        self._closed = False
        #: connections refused by the limits
        self.refused = 0
        #: connections aborted because their peer did not read what was written
        self.write_overflows = 0
        #: accepted connections whose TLS handshake failed
        self.handshake_failures = 0

    # -- a listener ---------------------------------------------------------------------

    async def listen(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Accept connections on ``host``:``port`` (``::`` is dual-stack where possible)."""
        family = socket.AF_INET if ":" not in host and host not in ("", "::") else socket.AF_UNSPEC
        self._server = await self.loop.create_server(
            lambda: _Connection(self, None),
            host or None,
            port,
            family=family,
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
        """Open the connection to ``remote`` (a resolved address) unless it is open;
        requests that ask at once share the one attempt (one connection per origin)."""
        key = remote_key(remote)
        existing = self._connections.get(key)
        if existing is not None and not existing.closing:
            return
        pending = self._connecting.get(key)
        if pending is not None:
            await asyncio.shield(pending)
            return
        attempt = self.loop.create_task(self._open(key, remote, server_hostname, timeout))
        self._connecting[key] = attempt
        attempt.add_done_callback(partial(self._attempt_done, key))
        await asyncio.shield(attempt)

    def _attempt_done(self, key: Address, attempt: asyncio.Task[None]) -> None:
        if self._connecting.get(key) is attempt:
            del self._connecting[key]
        if not attempt.cancelled():
            attempt.exception()  # retrieved here too: every waiter may have gone

    async def _open(
        self, key: Address, remote: Address, server_hostname: str | None, timeout: float
    ) -> None:
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
            raise NetworkError(f"{describe_remote(key)}: {describe_tls_error(exc)}") from exc
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
            if self.ssl is None:
                raise NetworkError(f"{describe_remote(key)}: {exc}", errno=exc.errno) from exc
            raise NetworkError(
                f"{describe_remote(key)}: {describe_tls_error(exc)}", errno=exc.errno
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

    def tls_session(self, remote: Address) -> TlsSession | None:
        """What the TLS connection to or from ``remote`` negotiated (None: no such
        connection, or plain TCP)."""
        connection = self._connections.get(remote_key(remote))
        if connection is None or connection.transport is None:
            return None
        ssl_object = connection.transport.get_extra_info("ssl_object")
        return None if ssl_object is None else tls_session(ssl_object)

    def peer_identity(self, remote: Address) -> PeerCertificate | None:
        """The verified certificate ``remote`` presented on its connection: a server's,
        or a client's where the listener's context asks for one (``ca``).  None for plain
        TCP, no certificate, or no connection."""
        session = self.tls_session(remote)
        return None if session is None else session.peer

    # -- from the connections ------------------------------------------------------------

    def _made(self, connection: _Connection, transport: asyncio.Transport) -> None:
        if connection.key is None:  # accepted: the key is the peer's address
            peer = transport.get_extra_info("peername")
            connection.key = remote_key(tuple(peer))
            host = str(connection.key[0])
            limits = self.limits
            if (
                self._closed
                or len(self._connections) + len(self._handshakes) >= limits.max_connections
                or self._per_host.get(host, 0) >= limits.max_per_host
            ):
                self._refuse(connection, transport, host)
                return
            self._per_host[host] = self._per_host.get(host, 0) + 1
            connection.counted_host = host
            if self.ssl is not None:
                connection.tls_pending = "raw"
                task = self.loop.create_task(self._accept_tls(connection, transport, self.ssl))
                self._handshakes.add(task)
                task.add_done_callback(self._handshakes.discard)
                return
        self._register(connection, transport)

    async def _accept_tls(
        self, connection: _Connection, raw: asyncio.Transport, context: ssl.SSLContext
    ) -> None:
        """Run an accepted connection's TLS handshake; register it once TLS is up.

        The loop may read before start_tls runs (uvloop always starts reading after
        connection_made, whatever it asked), so the ClientHello may have reached the plain
        connection: once start_tls has put its TLS protocol on the transport (its first
        step, which runs before this task's next one), what was read is handed to that
        protocol, before its connection_made and before it resumes reading.
        """
        handshake = self.loop.create_task(
            self.loop.start_tls(
                raw,
                connection,
                context,
                server_side=True,
                ssl_handshake_timeout=self.limits.handshake_timeout,
            )
        )
        try:
            await asyncio.sleep(0)
            connection.tls_pending = "handshake"
            early, connection.raw_early = connection.raw_early, []
            if early and not handshake.done():
                protocol = raw.get_protocol()
                if protocol is connection:  # start_tls has not taken over: cannot happen
                    raise ConnectionAbortedError("TLS could not take the connection over")
                _feed(protocol, b"".join(early))
            secured = await handshake
        except asyncio.CancelledError:  # the listener closes
            handshake.cancel()  # start_tls closes the transport (once it has started)
            raw.abort()
            self._uncount(connection)
            raise
        except Exception as exc:  # ssl.SSLError, a reset, the timeout (ConnectionAbortedError)
            handshake.cancel()  # (done already, unless taking over failed)
            raw.abort()
            self._handshake_failed(connection, exc)
            return
        connection.tls_pending = None
        if secured is None:  # the client closed the connection during the handshake
            self._handshake_failed(connection, ConnectionResetError())
            return
        if connection.closing or self._closed:
            secured.abort()
            return
        connection.transport = secured
        self._register(connection, secured)

    def _uncount(self, connection: _Connection) -> None:
        if connection.counted_host is not None:
            left = self._per_host.get(connection.counted_host, 1) - 1
            if left > 0:
                self._per_host[connection.counted_host] = left
            else:
                self._per_host.pop(connection.counted_host, None)
            connection.counted_host = None

    def _handshake_failed(self, connection: _Connection, exc: BaseException) -> None:
        self.handshake_failures += 1
        connection.closing = True
        # (a handshake that timed out is closed without connection_lost reaching us)
        self._uncount(connection)
        key = connection.key
        connection.key = None  # never the sink's
        if key is None:
            return
        reason = describe_tls_error(exc, server_side=True)
        host = str(key[0])
        now = self.loop.time()
        if now - self._tls_failures_logged.get((host, reason), -1e9) > 60.0:
            if len(self._tls_failures_logged) > 1024:
                self._tls_failures_logged.clear()
            self._tls_failures_logged[(host, reason)] = now
            logger.warning("%s: %s", describe_remote(key), reason)

    def _register(self, connection: _Connection, transport: asyncio.Transport) -> None:
        assert connection.key is not None
        connection.secure = transport.get_extra_info("ssl_object") is not None
        transport.set_write_buffer_limits(high=64 * 1024)
        self._connections[connection.key] = connection
        self.sink.connection_made(connection.key, False)
        early, connection.early = connection.early, []
        for data in early:
            if connection.closing or connection.key is None:
                break
            self._received(connection, data)

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
        """Bytes read: to the sink; what it sends back meanwhile is written in one go
        afterwards (a read of 64 pipelined requests makes one write of 64 responses,
        not 64 system calls)."""
        assert connection.key is not None
        held: dict[Address, list[bytes]] = {}
        self._held = held
        try:
            self.sink.datagram_received(data, connection.key, False)
        finally:
            try:
                self.sink.batch_done()
            finally:
                self._held = None
                for remote, pieces in held.items():
                    self._write(remote, b"".join(pieces) if len(pieces) > 1 else pieces[0])

    def _lost(self, connection: _Connection, exc: Exception | None) -> None:
        key = connection.key
        self._uncount(connection)
        if key is None or self._connections.get(key) is not connection:
            return
        del self._connections[key]
        if (
            connection.secure
            and not connection.accepted
            and not connection.received
            and not connection.closing
        ):
            # TLS 1.3: a client's handshake is done before the server has checked the
            # client's certificate; a server that refuses it closes, often without an alert
            reason = describe_tls_error(
                exc if isinstance(exc, ssl.SSLError) else ConnectionResetError()
            )
        elif exc is None:
            reason = "the connection was closed"
        elif isinstance(exc, ssl.SSLError):
            reason = describe_tls_error(exc, server_side=connection.accepted)
        else:
            reason = str(exc) or exc.__class__.__name__
        self.sink.connection_lost(key, NetworkError(f"{describe_remote(key)}: {reason}"))

    # -- to the connections --------------------------------------------------------------

    def sendto(self, data: bytes, remote: Address) -> None:
        held = self._held
        if held is not None:  # answering what was just read: written after the batch
            pieces = held.get(remote)
            if pieces is None:
                held[remote] = [data]
            else:
                pieces.append(data)
            return
        self._write(remote, data)

    def _write(self, remote: Address, data: bytes) -> None:
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
        if self._held:
            pieces = self._held.pop(remote, None)
            if pieces:  # the Release or Abort message just sent goes out first
                self._write(remote, b"".join(pieces))
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
        for task in list(self._handshakes):
            task.cancel()  # start_tls closes the transport
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.closing = True
                connection.transport.abort()

    async def wait_closed(self) -> None:
        if self._handshakes:
            await asyncio.wait(list(self._handshakes))
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def closed(self) -> bool:
        return self._closed
