"""CoAP over WebSockets (RFC 8323 §4) for asyncio, with the ``websockets`` library.

Install with ``pip install 'coapkit[ws]'``; without it, importing this
module raises :class:`~coapkit.transports.MissingExtra` with one line naming
the extra (:func:`~coapkit.transports.require_websockets` checks the same
without importing).

One :class:`WebSocketTransport` holds every WebSocket connection of one
endpoint (a server's listener, or a client's connections) and speaks to its
sink, the runtime driver, exactly as :class:`~coapkit.transports.tcp.StreamTransport`
does: connection keys (the peer's address on a server, the origin's address
on a client), ``connection_made(remote, True)``, ``datagram_received(data,
remote, False)`` with **one whole WebSocket message** each time, then
``batch_done()``, and ``connection_lost(remote, error)``; the driver calls
:meth:`~WebSocketTransport.sendto` and :meth:`~WebSocketTransport.close_connection`.
The connection layer (``websocket=True``) frames and reads each message with
Len 0 (§4.2): the WebSocket frame gives the length.

What RFC 8323 asks of the WebSocket itself, and why it is done here:

* the opening handshake offers and requires the subprotocol ``coap``
  (§4.1): a server refuses a client that does not offer it (HTTP 400), a
  client refuses a server that does not pick it, since without it neither
  knows the other speaks CoAP;
* the handshake's request URI is ``/.well-known/coap`` (§4.1, §8.3: the
  ``coap+ws`` URI's path goes into Uri-Path, not into the handshake); any
  other path gets 404, so a web server can share the port;
* CoAP messages are binary messages, one CoAP message per WebSocket message
  (§4.2).  A text message is a protocol error: an Abort signal saying so,
  then the WebSocket close code 1003 (unsupported data), logged once per
  peer and minute;
* WebSocket Ping frames SHOULD NOT be used (§4.4): CoAP's Ping/Pong
  signals keep the connection alive (the connection layer's ``keepalive``),
  so websockets' own pings are off;
* no permessage-deflate: it costs memory on every connection (a zlib
  context each side) for messages that are small, and is no part of §4.

Bounds, as for TCP (a peer may open connections and never finish the
handshake, never read, or send too much):

* connections in all and per peer host, counted from the TCP accept (a
  connection still in its handshake counts): beyond, a new one is closed at
  once, said so once per host and minute (``StreamLimits``);
* the TLS and WebSocket handshakes have ``handshake_timeout`` seconds each,
  and so has the closing handshake before the TCP connection is dropped;
* a message larger than ``max_message_size`` (the Max-Message-Size the
  connection layer announces in its CSM, §5.3.1) is refused by websockets
  from the frame header, before its payload is buffered, with close code
  1009; logged once per host and minute;
* what waits to be written to a peer that does not read: beyond
  ``max_write_buffer`` bytes the connection is aborted (its exchanges fail).

TLS (``coaps+ws``, WebSockets over ``wss``): pass an :class:`ssl.SSLContext`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from collections import deque
from typing import Any, cast

from coapkit.codec.stream import encode_ws
from coapkit.connections import signals
from coapkit.connections.layer import StreamConfig
from coapkit.errors import NetworkError
from coapkit.messaging.addresses import describe_remote
from coapkit.transports import require_websockets
from coapkit.transports.tcp import Address, StreamLimits, StreamSink, remote_key

require_websockets()

from websockets.asyncio.client import ClientConnection  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402
from websockets.asyncio.server import Server, ServerConnection, serve  # noqa: E402
from websockets.exceptions import (  # noqa: E402
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.http11 import Request as HandshakeRequest  # noqa: E402
from websockets.http11 import Response as HandshakeResponse  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

__all__ = ["PATH", "SUBPROTOCOL", "WebSocketTransport"]

logger = logging.getLogger("coapkit.transport")

SUBPROTOCOL = Subprotocol("coap")  #: RFC 8323 §4.1, §11.3
PATH = "/.well-known/coap"  #: RFC 8323 §4.1, §11.4

#: WebSocket close codes (RFC 6455 §7.4.1) used when we close
CLOSE_NORMAL = 1000  # after a CoAP Release
CLOSE_PROTOCOL_ERROR = 1002  # after a CoAP Abort
CLOSE_UNSUPPORTED_DATA = 1003  # a text message
#: close codes websockets sends on its own when the peer broke the WebSocket protocol
#: or our size limit (1007 bad UTF-8 in a text message, 1009 message too big)
_PEER_FAULTS = {1002: "a WebSocket protocol error", 1007: "invalid data", 1009: "too big"}

TEXT_REFUSED = "a text message: CoAP over WebSockets is binary messages only (RFC 8323 §4.2)"


class _Link:
    """What the transport keeps for one WebSocket connection that carries CoAP."""

    __slots__ = (
        "close_code",
        "close_reason",
        "closing",
        "key",
        "queue",
        "queued",
        "reader",
        "wakeup",
        "writer",
        "ws",
    )

    def __init__(self, key: Address, ws: ServerConnection | ClientConnection) -> None:
        self.key = key
        self.ws = ws
        self.queue: deque[bytes] = deque()  #: messages waiting for the writer task
        self.queued = 0  #: their bytes
        self.wakeup: asyncio.Future[None] | None = None  #: the idle writer waits on it
        self.writer: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[None] | None = None  #: a client's (the server's is websockets')
        self.closing = False  #: nothing more is sent or delivered
        self.close_code: int | None = None  #: set: close with it once the queue is written
        self.close_reason = ""


class _Accepted(ServerConnection):
    """A server-side connection that reports its TCP accept and close to the transport,
    so that connections count against the limits from the start of their handshake."""

    owner: WebSocketTransport
    peer: Address | None = None
    counted_host: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.owner._accepted(self, cast(asyncio.Transport, transport))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.owner._uncount(self)


class WebSocketTransport:
    """The WebSocket connections of one endpoint (see the module doc)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sink: StreamSink,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: StreamLimits | None = None,
        max_message_size: int | None = None,
    ) -> None:
        self.loop = loop
        self.sink = sink
        self.ssl = ssl_context
        self.limits = limits or StreamLimits()
        #: the largest WebSocket message read: give the connection layer's
        #: ``StreamConfig.max_message_size`` (its default when None)
        self.max_message_size = (
            StreamConfig().max_message_size if max_message_size is None else max_message_size
        )
        self._connections: dict[Address, _Link] = {}
        self._connecting: dict[Address, asyncio.Future[None]] = {}
        self._tcp_open = 0
        self._per_host: dict[str, int] = {}
        self._server: Server | None = None
        self._logged: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        #: connections refused by the limits
        self.refused = 0
        #: connections aborted because their peer did not read what was written
        self.write_overflows = 0

    # -- a listener ---------------------------------------------------------------------

    async def listen(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Accept WebSocket connections at ``ws://host:port/.well-known/coap`` (``wss`` with
        an SSL context); ``::`` is dual-stack where possible."""
        family = socket.AF_INET if ":" not in host and host not in ("", "::") else socket.AF_UNSPEC
        limits = self.limits

        def connection_factory(*args: Any, **kwargs: Any) -> _Accepted:
            connection = _Accepted(*args, **kwargs)
            connection.owner = self
            return connection

        self._server = await serve(
            self._serve,
            host or None,
            port,
            subprotocols=[SUBPROTOCOL],  # a client that offers no "coap" gets 400
            process_request=self._check_path,
            compression=None,
            server_header=None,
            open_timeout=limits.handshake_timeout,
            close_timeout=limits.handshake_timeout,
            ping_interval=None,  # RFC 8323 §4.4: CoAP Ping, not WebSocket Ping
            max_size=self.max_message_size,
            write_limit=64 * 1024,
            create_connection=cast("type[ServerConnection]", connection_factory),
            ssl=self.ssl,
            family=family,
            reuse_port=reuse_port or None,
            backlog=1024,
        )

    @property
    def local_address(self) -> Address:
        if self._server is None or not self._server.sockets:
            raise NetworkError("not listening")
        return tuple(self._server.sockets[0].getsockname())

    def _accepted(self, connection: _Accepted, transport: asyncio.Transport) -> None:
        """A TCP (or TLS) connection was accepted: count it, or refuse it at once."""
        peer = transport.get_extra_info("peername")
        key = remote_key(tuple(peer))
        host = str(key[0])
        limits = self.limits
        if (
            self._closed
            or self._tcp_open >= limits.max_connections
            or self._per_host.get(host, 0) >= limits.max_per_host
        ):
            self.refused += 1
            self._warn_once(
                host,
                "refused",
                "connection from %s refused: %d connections open (%d from that host; "
                "limits %d and %d)",
                host,
                self._tcp_open,
                self._per_host.get(host, 0),
                limits.max_connections,
                limits.max_per_host,
            )
            transport.abort()  # the handshake task sees the connection lost and ends
            return
        connection.peer = key
        connection.counted_host = host
        self._tcp_open += 1
        self._per_host[host] = self._per_host.get(host, 0) + 1

    def _uncount(self, connection: _Accepted) -> None:
        host = connection.counted_host
        if host is None:
            return
        connection.counted_host = None
        self._tcp_open -= 1
        left = self._per_host.get(host, 1) - 1
        if left > 0:
            self._per_host[host] = left
        else:
            self._per_host.pop(host, None)

    @staticmethod
    def _check_path(
        connection: ServerConnection, request: HandshakeRequest
    ) -> HandshakeResponse | None:
        if request.path != PATH:
            return connection.respond(404, f"CoAP over WebSockets is at {PATH} (RFC 8323 §4.1)\n")
        return None  # go on: websockets checks the subprotocol

    async def _serve(self, ws: ServerConnection) -> None:
        """One accepted connection after its handshake (websockets' handler task)."""
        key = cast(_Accepted, ws).peer
        if key is None or self._closed:
            return
        link = self._open(key, ws)
        if link is not None:
            await self._read(link)

    # -- outgoing connections --------------------------------------------------------------

    async def connect(
        self, remote: Address, *, server_hostname: str | None = None, timeout: float = 10.0
    ) -> None:
        """Open the connection to ``remote`` (a resolved address) unless it is open: TCP,
        TLS with an SSL context, then the WebSocket handshake for ``/.well-known/coap``
        with the subprotocol ``coap``.  ``server_hostname`` goes into the Host header and
        the TLS server name; without it, the address does."""
        key = remote_key(remote)
        existing = self._connections.get(key)
        if existing is not None and not existing.closing:
            return
        pending = self._connecting.get(key)
        if pending is not None:  # a connect to the same origin is under way: share it
            await asyncio.shield(pending)
            return
        if self._closed:
            raise NetworkError(f"{describe_remote(key)}: the transport is closed")
        future: asyncio.Future[None] = self.loop.create_future()
        self._connecting[key] = future
        try:
            await self._connect(remote, key, server_hostname, timeout)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        except BaseException:  # cancelled: those sharing it are told so
            future.set_exception(NetworkError(f"{describe_remote(key)}: connecting was cancelled"))
            future.exception()
            raise
        else:
            future.set_result(None)
        finally:
            del self._connecting[key]

    async def _connect(
        self, remote: Address, key: Address, server_hostname: str | None, timeout: float
    ) -> None:
        host = server_hostname or str(remote[0])
        if ":" in host:
            host = "[" + host.replace("%", "%25") + "]"
        uri = f"{'wss' if self.ssl else 'ws'}://{host}:{remote[1]}{PATH}"
        where = describe_remote(key)
        extra: dict[str, Any] = {}
        if self.ssl is not None:
            extra["ssl"] = self.ssl
            if server_hostname is not None:
                extra["server_hostname"] = server_hostname
        try:
            ws = await ws_connect(
                uri,
                host=remote[0],  # the resolved address; the URI keeps the name
                port=remote[1],
                subprotocols=[SUBPROTOCOL],
                compression=None,
                proxy=None,  # the address is resolved already; CoAP knows no HTTP proxy
                open_timeout=timeout,
                close_timeout=self.limits.handshake_timeout,
                ping_interval=None,
                max_size=self.max_message_size,
                write_limit=64 * 1024,
                **extra,
            )
        except TimeoutError as exc:
            raise NetworkError(f"{where}: connecting timed out") from exc
        except ssl.SSLError as exc:
            raise NetworkError(f"{where}: TLS handshake failed: {exc.reason}") from exc
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise NetworkError(
                f"{where}: the WebSocket handshake for {PATH} was refused "
                f"(HTTP {status} {exc.response.reason_phrase})"
            ) from exc
        except (InvalidHandshake, InvalidURI, ValueError) as exc:
            # (ValueError: a redirect websockets will not follow to another origin)
            raise NetworkError(f"{where}: the WebSocket handshake failed: {exc}") from exc
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno == errno.ECONNREFUSED:
                reason = "connection refused: nothing listens there"
            raise NetworkError(f"{where}: {reason}", errno=exc.errno) from exc
        if ws.subprotocol != SUBPROTOCOL:
            ws.transport.abort()
            raise NetworkError(
                f"{where}: the WebSocket server did not accept the subprotocol coap "
                f"(it answered {ws.subprotocol or 'none'}; RFC 8323 §4.1)"
            )
        if self._closed:
            ws.transport.abort()
            raise NetworkError(f"{where}: the transport is closed")
        link = self._open(key, ws)
        if link is not None:
            link.reader = self._task(self._read(link))

    def is_connected(self, remote: Address) -> bool:
        link = self._connections.get(remote_key(remote))
        return link is not None and not link.closing

    # -- both sides ----------------------------------------------------------------------

    def _task(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _open(self, key: Address, ws: ServerConnection | ClientConnection) -> _Link | None:
        """The handshake is done: the connection carries CoAP from now on."""
        previous = self._connections.get(key)
        if previous is not None:  # the same peer address again: the old one is gone
            self._drop(previous)
        link = _Link(key, ws)
        self._connections[key] = link
        link.writer = self._task(self._write(link))
        self.sink.connection_made(key, True)  # the connection layer sends its CSM
        return link

    async def _read(self, link: _Link) -> None:
        """Hand each WebSocket message to the sink until the connection ends."""
        ws = link.ws
        sink = self.sink
        key = link.key
        error: Exception | None = None
        try:
            while True:
                data = await ws.recv()
                if link.closing:
                    continue  # closing: what still arrives is read and dropped
                if isinstance(data, str):
                    self._text_received(link)
                    continue
                try:
                    sink.datagram_received(data, key, False)
                finally:
                    sink.batch_done()
        except ConnectionClosed as exc:
            error = exc
        except Exception as exc:  # the sink contains its failures; this is a safety net
            error = exc
            ws.transport.abort()
        finally:
            self._ended(link, error)

    def _text_received(self, link: _Link) -> None:
        """A text message is a protocol error (RFC 8323 §4.2): an Abort saying so, then
        close code 1003 (unsupported data)."""
        abort = signals.abort(TEXT_REFUSED)
        self._warn_once(
            describe_remote(link.key),
            "text",
            "connection to %s closed: %s",
            describe_remote(link.key),
            TEXT_REFUSED,
        )
        self.sendto(encode_ws(abort.code, b"", abort.options, abort.payload), link.key)
        self._close(link, CLOSE_UNSUPPORTED_DATA, "text message")

    def _ended(self, link: _Link, error: Exception | None) -> None:
        """The WebSocket connection is closed: tell the sink (once), stop the writer."""
        link.closing = True
        self._wake(link)
        if self._connections.get(link.key) is not link:
            return
        del self._connections[link.key]
        ws = link.ws
        where = describe_remote(link.key)
        if isinstance(error, ConnectionClosed):
            sent = error.sent
            if link.close_code is None and sent is not None and sent.code in _PEER_FAULTS:
                # websockets closed it for the peer's fault (our size limit, bad data)
                self._warn_once(
                    str(link.key[0]),
                    f"ws{sent.code}",
                    "connection to %s closed: %s (%s)",
                    where,
                    _PEER_FAULTS[sent.code],
                    sent,
                )
            reason = f"the WebSocket connection was closed: {error}"
        elif error is None:
            reason = "the WebSocket connection was closed"
        else:
            reason = str(error) or error.__class__.__name__
        if ws.close_code == CLOSE_NORMAL and ws.close_reason:
            reason += f" ({ws.close_reason})"
        self.sink.connection_lost(link.key, NetworkError(f"{where}: {reason}"))

    async def _write(self, link: _Link) -> None:
        """Send what :meth:`sendto` queued, in order, with websockets' flow control; then
        the closing handshake when one was asked for."""
        ws = link.ws
        queue = link.queue
        try:
            while True:
                while queue:
                    data = queue.popleft()
                    link.queued -= len(data)
                    await ws.send(data)
                if link.close_code is not None:
                    await ws.close(link.close_code, link.close_reason)
                    return
                if link.closing:
                    return
                link.wakeup = self.loop.create_future()
                await link.wakeup
        except ConnectionClosed:
            return
        finally:
            link.wakeup = None

    @staticmethod
    def _wake(link: _Link) -> None:
        wakeup = link.wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    # -- to the connections --------------------------------------------------------------

    def sendto(self, data: bytes, remote: Address) -> None:
        """Send ``data`` (one CoAP message, framed with Len 0) as one binary message."""
        link = self._connections.get(remote)
        if link is None or link.closing:
            return  # gone: the sink has been (or is being) told
        link.queue.append(data)
        link.queued += len(data)
        self._wake(link)
        waiting = link.queued + link.ws.transport.get_write_buffer_size()
        if waiting > self.limits.max_write_buffer:
            self.write_overflows += 1
            logger.warning(
                "%s does not read what is sent to it (%d bytes waiting): connection aborted",
                describe_remote(remote),
                waiting,
            )
            self._drop(link)

    def close_connection(self, remote: Address, *, abort: bool = False) -> None:
        """Close after what was queued is sent (the Release or Abort message), with close
        code 1000 after a Release, 1002 after an Abort."""
        link = self._connections.get(remote)
        if link is None or link.closing:
            return
        self._close(link, CLOSE_PROTOCOL_ERROR if abort else CLOSE_NORMAL, "")

    def _close(self, link: _Link, code: int, reason: str) -> None:
        link.closing = True
        link.close_code = code
        link.close_reason = reason
        self._wake(link)

    def _drop(self, link: _Link) -> None:
        """Abort the TCP connection at once (no closing handshake)."""
        link.closing = True
        link.queue.clear()
        link.queued = 0
        self._wake(link)
        link.ws.transport.abort()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._closed:
            return
        self._closed = True
        for link in list(self._connections.values()):
            self._drop(link)
        if self._server is not None:
            # (the connections are aborted above: websockets is not to start their
            # closing handshakes, whose tasks nobody would await)
            self._server.close(close_connections=False)

    async def wait_closed(self) -> None:
        """Wait for the listener and every connection's tasks to end (after :meth:`close`)."""
        if self._server is not None:
            await self._server.wait_closed()
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    @property
    def closed(self) -> bool:
        return self._closed

    # -- logging -------------------------------------------------------------------------

    def _warn_once(self, host: str, cause: str, message: str, *args: Any) -> None:
        """Log ``message`` at WARNING unless it was, for this host and cause, within the
        last minute (a peer cannot fill the log)."""
        now = self.loop.time()
        key = (host, cause)
        if now - self._logged.get(key, -1e9) <= 60.0:
            return
        if len(self._logged) > 1024:
            self._logged.clear()
        self._logged[key] = now
        logger.warning(message, *args)
