"""The connection layer: CoAP over TCP, TLS and WebSockets (RFC 8323 §3-§5), sans I/O.

Over a reliable, ordered byte stream CoAP has no message layer: no message
types, no message IDs, no ACKs, no retransmission, no deduplication (§2).
This layer takes the message layer's place under the exchanges, block-wise
and Observe layers (see docs/architecture.md): it hands them the same events
(:class:`~coapkit.messaging.events.RequestReceived`,
:class:`~coapkit.messaging.events.ResponseReceived`,
:class:`~coapkit.messaging.events.PeerFailed`) and takes the same calls
(``send``, ``respond``, ``respond_now``...), so they work unchanged.

Theory of operation
-------------------
A *connection* is known by the remote the runtime names it with: the
peer's address on a server (one connection per peer address), the origin's
address on a client (one connection per origin).  The runtime reports
:meth:`ConnectionLayer.connection_made` when the transport is up (and TLS or
the WebSocket handshake done), the bytes it reads
(:meth:`ConnectionLayer.receive`: a piece of a TCP/TLS stream, or one whole
WebSocket message), and :meth:`ConnectionLayer.connection_lost`.  What this
layer wants sent comes back as ``(bytes, remote)`` pairs in ``out``, framed
for that connection; when it wants a connection closed it returns a
:class:`CloseConnection` event, after the last bytes to send.

Capabilities and Settings (§5.3): each side's first message is a CSM; ours
goes out in ``connection_made``.  Until the peer's CSM arrives, any other
message from it is a protocol error (Abort); if none arrives within
``csm_timeout`` the connection is aborted.  The peer's Max-Message-Size
bounds what we send (1152 bytes until it says otherwise); ours bounds what we
read, checked from a frame's header before it is buffered.

Liveness (§5.4): after ``keepalive`` seconds without receiving anything a
Ping goes out; no Pong (nor anything else) within ``ping_timeout`` aborts
the connection.  A connection with no request, response or notification
either way for ``idle_timeout`` is reported as :class:`IdleConnection`; the
endpoint, which knows whether observations or requests still use it, either
keeps it (:meth:`ConnectionLayer.touch`) or releases it
(:meth:`ConnectionLayer.release`: a Release message, then close).

Errors (§5.6): a malformed frame, a message before the CSM, an unknown
critical option in a signal: an Abort message naming the cause, then close.
A Release or Abort from the peer closes the connection.  Either way every
exchange on the connection fails at once (:class:`PeerFailed`), and the
observations held on it end.

Timers: each connection has one entry in a heap at the earliest time it may
need attention (CSM, Pong, keep-alive or idle deadline); activity only moves
those later, so an entry is never late: when it comes due the connection's
real deadlines are checked and the entry put back for the next one.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from coapkit.codec.codes import code_name, is_request
from coapkit.codec.message import Message, ResponseParts
from coapkit.codec.option_registry import OptionBounds, within_bounds
from coapkit.codec.stream import FrameReader, decode_ws, encode_frame, encode_ws
from coapkit.codec.types import MessageType
from coapkit.connections import signals
from coapkit.errors import (
    CoapError,
    DecodeError,
    EncodeError,
    NetworkError,
    ProtocolUsageError,
)
from coapkit.messaging.addresses import describe_remote
from coapkit.messaging.events import (
    MessageIgnored,
    MessagingEvent,
    PeerFailed,
    RequestReceived,
    ResetReceived,
    ResponseReceived,
)
from coapkit.messaging.parameters import DEFAULT_PARAMETERS, TransmissionParameters
from coapkit.messaging.peers import Peer
from coapkit.messaging.records import Inbound, InboundState, Outgoing, OutgoingState, Remote

Datagrams = list[tuple[bytes, Remote]]


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Settings of the connection layer (RFC 8323)."""

    max_message_size: int = 1152 + 64 * 1024
    """Largest message we read, announced in our CSM (Max-Message-Size, §5.3.1).  The
    default takes a 64 KiB body in one message; every connection may buffer this much."""

    block_wise: bool = True
    """Announce Block-Wise-Transfer in our CSM (§5.3.2).  With a ``max_message_size``
    above 1152 bytes it also tells the peer that we take BERT (§6), so that it may send
    large bodies in few large blocks.  Whatever this says, block-wise transfers and BERT
    are accepted from the peer; this only decides what the peer is told."""

    csm_timeout: float = 10.0
    """How long the peer may take to send its CSM before the connection is aborted."""

    keepalive: float | None = 60.0
    """Send a Ping after this long without receiving anything (None: never)."""

    ping_timeout: float = 20.0
    """Abort when a Ping gets no Pong (nor anything else) within this time."""

    idle_timeout: float | None = 300.0
    """Report a connection without requests or responses for this long (None: never)."""

    backlog_limit: int = 0
    """Messages waiting per peer: none, nothing waits on a stream (no NSTART, §2)."""

    def __post_init__(self) -> None:
        if self.max_message_size < signals.BASE_MAX_MESSAGE_SIZE:
            raise ValueError("max_message_size must be at least 1152 bytes (RFC 8323 §5.3.1)")
        if self.csm_timeout <= 0 or self.ping_timeout <= 0:
            raise ValueError("csm_timeout and ping_timeout must be positive")


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """The runtime is to close the connection to ``remote`` (after sending what was
    returned with this event).  ``aborted``: an Abort went or came (an error)."""

    remote: Remote
    reason: str
    aborted: bool


@dataclass(frozen=True, slots=True)
class IdleConnection:
    """No request, response or notification on this connection for ``idle_timeout``."""

    remote: Remote


@dataclass(frozen=True, slots=True)
class ConnectionReady:
    """The peer's CSM arrived: what it can take (again when a later CSM changes it)."""

    remote: Remote
    max_message_size: int
    block_wise: bool


ConnectionEvent = CloseConnection | IdleConnection | ConnectionReady
LayerEvents = list[MessagingEvent | ConnectionEvent]


@dataclass(slots=True)
class StreamStats:
    """Counters of the connection layer."""

    opened: int = 0
    closed: int = 0
    received: int = 0  #: messages (not signals) received
    sent: int = 0  #: messages (not signals) sent
    signals_received: int = 0
    signals_sent: int = 0
    aborts_sent: int = 0
    aborts_received: int = 0
    malformed: int = 0
    pings_sent: int = 0


class Connection:
    """What this layer knows about one connection."""

    __slots__ = (
        "check_at",
        "closed",
        "csm_deadline",
        "last_activity",
        "last_received",
        "peer",
        "peer_block_wise",
        "peer_csm",
        "peer_max_size",
        "ping_sent_at",
        "reader",
        "remote",
        "websocket",
    )

    def __init__(
        self, remote: Remote, peer: Peer, now: float, websocket: bool, max_size: int, csm: float
    ) -> None:
        self.remote = remote
        self.peer = peer  #: the record the exchange layers' Inbound/Outgoing point at
        self.websocket = websocket
        self.reader = None if websocket else FrameReader(max_size)
        self.peer_csm = False
        self.peer_max_size = signals.BASE_MAX_MESSAGE_SIZE
        self.peer_block_wise = False
        self.csm_deadline = now + csm
        self.last_received = now
        self.last_activity = now  #: the last request, response or notification either way
        self.ping_sent_at: float | None = None
        self.check_at = 0.0
        self.closed = False

    def __repr__(self) -> str:
        kind = "WebSocket" if self.websocket else "stream"
        return f"<Connection {kind} {self.remote!r}{' closed' if self.closed else ''}>"


class ConnectionLayer:
    """Every connection of one endpoint (see the module doc)."""

    #: a response's delivery needs no acknowledgement: the exchanges arm their response
    #: timeout when a request is sent, as over UDP when its ACK arrives
    reliable = True

    def __init__(
        self,
        *,
        params: TransmissionParameters = DEFAULT_PARAMETERS,
        config: StreamConfig | None = None,
    ) -> None:
        self.params = params
        self.config = config = config or StreamConfig()
        self.stats = StreamStats()
        self._connections: dict[Remote, Connection] = {}
        #: why the last connection to each remote ended (bounded), for the error of a
        #: request that finds it gone
        self._endings: dict[Remote, CoapError] = {}
        #: CoAP pings sent as Ping signals, by connection and token, until their Pong
        self._pings: dict[tuple[Remote, bytes], Outgoing] = {}
        self._ping_counter = 0
        self._timers: list[tuple[float, int, Connection]] = []
        self._seq = 0
        self._closed = False

    # -- introspection ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connection(self, remote: Remote) -> Connection | None:
        return self._connections.get(remote)

    def ending(self, remote: Remote) -> CoapError | None:
        """Why the last connection to ``remote`` ended, while no new one is open."""
        return self._endings.get(remote)

    def is_connected(self, remote: Remote) -> bool:
        connection = self._connections.get(remote)
        return connection is not None and not connection.closed

    def parameters_for(self, remote: Remote) -> TransmissionParameters:
        return self.params

    def backlog(self, remote: Remote) -> int:
        return 0

    def outstanding(self, remote: Remote) -> int:
        return 0

    # -- the connection's life ------------------------------------------------------------

    def connection_made(
        self, remote: Remote, now: float, out: Datagrams, *, websocket: bool = False
    ) -> None:
        """The transport to ``remote`` is up: our CSM goes first (§5.3)."""
        if self._closed:
            raise ProtocolUsageError("the endpoint is shut down")
        previous = self._connections.get(remote)
        if previous is not None:
            previous.closed = True
        config = self.config
        connection = Connection(
            remote,
            Peer(remote, self.params, 0),
            now,
            websocket,
            config.max_message_size,
            config.csm_timeout,
        )
        self._connections[remote] = connection
        self._endings.pop(remote, None)
        self.stats.opened += 1
        self._signal(connection, signals.csm(config.max_message_size, config.block_wise), out)
        self._schedule(connection, connection.csm_deadline)

    def connection_lost(self, remote: Remote, error: CoapError, now: float) -> list[MessagingEvent]:
        """The transport to ``remote`` closed (by either side, or failed): every exchange
        on it fails at once."""
        connection = self._connections.pop(remote, None)
        if connection is None:
            return []
        connection.closed = True
        self.stats.closed += 1
        endings = self._endings
        endings.pop(remote, None)
        if len(endings) >= 1024:
            del endings[next(iter(endings))]
        endings[remote] = error
        if self._pings:
            for key in [key for key in self._pings if key[0] == remote]:
                del self._pings[key]
        return [PeerFailed(remote, error)]

    def touch(self, remote: Remote, now: float) -> None:
        """Count the connection as in use now (the endpoint keeps an idle one open)."""
        connection = self._connections.get(remote)
        if connection is not None:
            connection.last_activity = now

    def release(self, remote: Remote, reason: str, now: float, out: Datagrams) -> LayerEvents:
        """Close a connection gracefully: a Release message (§5.5), then close."""
        connection = self._connections.get(remote)
        if connection is None or connection.closed:
            return []
        self._signal(connection, signals.release(reason), out)
        connection.closed = True
        return [CloseConnection(remote, reason, False)]

    def abort(self, remote: Remote, reason: str, out: Datagrams) -> LayerEvents:
        """Close a connection on an error: an Abort message naming it (§5.6), then close."""
        connection = self._connections.get(remote)
        if connection is None or connection.closed:
            return []
        return self._abort(connection, reason, out)

    def _abort(
        self, connection: Connection, reason: str, out: Datagrams, bad_option: int | None = None
    ) -> LayerEvents:
        self._signal(connection, signals.abort(reason, bad_option), out)
        self.stats.aborts_sent += 1
        connection.closed = True
        return [CloseConnection(connection.remote, reason, True)]

    # -- receiving ----------------------------------------------------------------------

    def receive(
        self, data: bytes, remote: Remote, now: float, out: Datagrams, *, multicast: bool = False
    ) -> LayerEvents:
        """Bytes read from the connection to ``remote``: a piece of a TCP/TLS stream, or
        the payload of one WebSocket message."""
        connection = self._connections.get(remote)
        if connection is None or connection.closed:
            return [MessageIgnored(remote, "data on a connection that is not open", b"")]
        connection.last_received = now
        try:
            if connection.reader is None:
                messages = [decode_ws(data)]
            else:
                messages = connection.reader.feed(data)
        except DecodeError as exc:
            self.stats.malformed += 1
            return self._abort(connection, f"malformed message: {exc.reason}", out)
        events: LayerEvents = []
        for message in messages:
            events.extend(self._received(connection, message, len(data), now, out))
            if _ended(connection):  # an Abort, Release or error on the way: stop reading
                break
        return events

    def _received(
        self, connection: Connection, message: Message, size: int, now: float, out: Datagrams
    ) -> LayerEvents:
        code = message.code
        if code >> 5 == 7:
            self.stats.signals_received += 1
            return self._signal_received(connection, message, now, out)
        if not connection.peer_csm:
            return self._abort(
                connection, f"{code_name(code)} received before the peer's CSM (RFC 8323 §5.3)", out
            )
        if code == 0:
            return []  # an empty message: ignored (§3.4)
        self.stats.received += 1
        connection.last_activity = now
        inbound = Inbound(message, connection.peer, now, False, size)
        if is_request(code):
            return [RequestReceived(message, inbound)]
        if code >> 5 in (2, 4, 5):
            return [ResponseReceived(message, connection.remote, None, inbound)]
        return [MessageIgnored(connection.remote, f"unexpected code {code_name(code)}", b"")]

    def _signal_received(
        self, connection: Connection, message: Message, now: float, out: Datagrams
    ) -> LayerEvents:
        code = message.code
        bad = signals.unknown_critical(message)
        if bad is not None:
            name = signals.SIGNAL_NAMES.get(code, code_name(code))
            return self._abort(
                connection,
                f"unknown critical option {bad} in {name}",
                out,
                bad if code == signals.CSM else None,
            )
        if code == signals.CSM:
            first = not connection.peer_csm
            events = self._csm_received(connection, message)
            if first:  # keep-alive and idle timers start now, not at the CSM deadline
                self._schedule(connection, now)
            return events
        if not connection.peer_csm:
            return self._abort(connection, f"{code_name(code)} received before the peer's CSM", out)
        if code == signals.PING:
            custody = message.options.get(signals.CUSTODY) is not None
            options = message.options if custody else message.options.remove(signals.CUSTODY)
            pong = Message(code=signals.PONG, token=message.token, options=options)
            self._signal(connection, pong, out)
            return []
        if code == signals.PONG:
            connection.ping_sent_at = None
            outgoing = self._pings.pop((connection.remote, message.token), None)
            if outgoing is None and not message.token:
                # PEER DEVIATION (libcoap 4.3.1): its Pong carries no token, whatever the
                # Ping's (RFC 8323 §5.4 says it echoes it).  With one ping of ours waiting
                # on this connection, there is no doubt which it answers.
                mine = [key for key in self._pings if key[0] == connection.remote]
                if len(mine) == 1:
                    outgoing = self._pings.pop(mine[0])
            if outgoing is not None:  # the answer to a CoAP ping, as an RST is over UDP
                outgoing.state = OutgoingState.RESET
                return [ResetReceived(outgoing)]
            return []
        if code == signals.RELEASE:
            connection.closed = True
            reason = message.payload.decode("utf-8", "replace") or "no reason given"
            return [CloseConnection(connection.remote, f"released by the peer: {reason}", False)]
        if code == signals.ABORT:
            self.stats.aborts_received += 1
            connection.closed = True
            reason = message.payload.decode("utf-8", "replace") or "no reason given"
            return [CloseConnection(connection.remote, f"aborted by the peer: {reason}", True)]
        return [MessageIgnored(connection.remote, f"unknown signal {code_name(code)}", b"")]

    def _csm_received(self, connection: Connection, message: Message) -> LayerEvents:
        """The peer's capabilities (§5.3); a later CSM updates them (§5.3: "may send
        more CSMs"); an option it leaves out keeps its value.  The first CSM, and a later
        one that changes what the peer takes, are reported as :class:`ConnectionReady`
        (a smaller Max-Message-Size withdraws BERT, §5.3.2)."""
        before = (connection.peer_max_size, connection.peer_block_wise)
        size = message.options.get(signals.MAX_MESSAGE_SIZE)
        if size is not None:
            connection.peer_max_size = max(signals.read_uint(size), 0)
        if message.options.get(signals.BLOCK_WISE_TRANSFER) is not None:
            connection.peer_block_wise = True
        first = not connection.peer_csm
        connection.peer_csm = True
        if not first and (connection.peer_max_size, connection.peer_block_wise) == before:
            return []
        return [
            ConnectionReady(connection.remote, connection.peer_max_size, connection.peer_block_wise)
        ]

    # -- sending ------------------------------------------------------------------------

    def _connected(self, remote: Remote) -> Connection:
        connection = self._connections.get(remote)
        if connection is None or connection.closed:
            ending = self._endings.get(remote)
            if isinstance(ending, NetworkError):
                raise NetworkError(str(ending), errno=ending.errno)
            raise NetworkError(f"no open connection to {_show(remote)}")
        return connection

    def _frame(
        self, connection: Connection, code: int, token: bytes, parts: ResponseParts
    ) -> bytes:
        if connection.websocket:
            data = encode_ws(code, token, parts.options, parts.payload)
        else:
            data = encode_frame(code, token, parts.options, parts.payload)
        if len(data) > connection.peer_max_size:
            raise EncodeError(
                f"a message of {len(data)} bytes is larger than the {connection.peer_max_size} "
                f"{_show(connection.remote)} accepts (its Max-Message-Size)"
            )
        return data

    def _signal(self, connection: Connection, message: Message, out: Datagrams) -> None:
        encode = encode_ws if connection.websocket else encode_frame
        out.append(
            (
                encode(message.code, message.token, message.options, message.payload),
                connection.remote,
            )
        )
        self.stats.signals_sent += 1

    def send(
        self,
        message: Message,
        remote: Remote,
        now: float,
        out: Datagrams,
        *,
        mtype: MessageType | None = None,
        params: TransmissionParameters | None = None,
        owner: Any = None,
        track_reset: bool | None = None,
    ) -> Outgoing:
        """Send a request or a notification; there is nothing to acknowledge or repeat."""
        if self._closed:
            raise ProtocolUsageError("the endpoint is shut down")
        connection = self._connected(remote)
        if message.code == 0:
            return self._ping(connection, message, mtype, params, owner, out)
        out.append((self._frame(connection, message.code, message.token, message), remote))
        self.stats.sent += 1
        connection.last_activity = now
        outgoing = Outgoing(
            message, connection.peer, mtype or message.mtype, params or self.params, owner, False
        )
        outgoing.state = OutgoingState.SENT
        return outgoing

    def _ping(
        self,
        connection: Connection,
        message: Message,
        mtype: MessageType | None,
        params: TransmissionParameters | None,
        owner: Any,
        out: Datagrams,
    ) -> Outgoing:
        """A CoAP ping (an empty message, RFC 7252 §4.3) is a Ping signal over a
        connection (RFC 8323 §5.4); its Pong comes back as the RST would over UDP."""
        self._ping_counter = (self._ping_counter + 1) & 0xFFFFFFFF
        token = self._ping_counter.to_bytes(4, "big")
        self._signal(connection, Message(code=signals.PING, token=token), out)
        outgoing = Outgoing(
            message, connection.peer, mtype or MessageType.CON, params or self.params, owner, False
        )
        outgoing.state = OutgoingState.SENT
        self._pings[(connection.remote, token)] = outgoing
        return outgoing

    def respond(
        self,
        inbound: Inbound,
        response: Message,
        now: float,
        out: Datagrams,
        *,
        mtype: MessageType | None = None,
        params: TransmissionParameters | None = None,
        owner: Any = None,
    ) -> Outgoing | None:
        """Answer a request on its connection, with its token."""
        if inbound.state is InboundState.DONE:
            raise ProtocolUsageError("this request has already been answered")
        data = self.respond_now(inbound, response, now)
        if data is not None:
            out.append((data, inbound.remote))
        return None

    def respond_now(self, inbound: Inbound, response: ResponseParts, now: float) -> bytes | None:
        """The framed answer to ``inbound`` (None when its connection is gone)."""
        connection = self._connections.get(inbound.remote)
        inbound.state = InboundState.DONE
        if connection is None or connection.closed or connection.peer is not inbound.peer:
            return None  # the connection the request came on is gone: nobody to answer
        data = self._frame(connection, response.code, inbound.message.token, response)
        self.stats.sent += 1
        connection.last_activity = now
        return data

    def accept_request(
        self, data: bytes, remote: Remote, now: float, options: OptionBounds
    ) -> Inbound | None:
        """:meth:`receive` for the common case, in fewer steps: a read that holds exactly
        one whole frame of a request, on an open TCP/TLS connection whose peer's CSM has
        come, nothing else buffered, every option in ``options`` (number -> (min length,
        max length, repeatable)) with a valid length.

        Returns the request's :class:`Inbound`, the layer's state exactly as
        :meth:`receive` would leave it (which would return ``RequestReceived``); for any
        other read returns None having changed nothing, and the caller hands the bytes
        to :meth:`receive` (a signal, a frame split across reads or several in one, a
        malformed or too large frame, a message before the CSM: all take that path).
        """
        connection = self._connections.get(remote)
        if connection is None or connection.closed or not connection.peer_csm:
            return None
        reader = connection.reader
        if reader is None:
            return None
        message = reader.one_request(data)
        if message is None or not within_bounds(message.options.items, options):
            return None
        connection.last_received = now
        self.stats.received += 1
        connection.last_activity = now
        return Inbound(message, connection.peer, now, False, len(data))

    def accept(self, inbound: Inbound, out: Datagrams) -> None:
        """Nothing to acknowledge over a stream."""

    def reject(self, inbound: Inbound, out: Datagrams) -> None:
        """No Reset over a stream (§2): a message that cannot be processed is dropped."""
        inbound.state = InboundState.DONE

    def cancel(self, outgoing: Outgoing, now: float, out: Datagrams) -> None:
        """Nothing is repeated over a stream: nothing to stop (a ping's Pong is forgotten)."""
        outgoing.state = OutgoingState.FAILED
        if self._pings and outgoing.message.code == 0:
            for key, ping in list(self._pings.items()):
                if ping is outgoing:
                    del self._pings[key]

    def message_failed(
        self, remote: Remote, mid: int, error: CoapError, now: float, out: Datagrams
    ) -> list[MessagingEvent]:
        return []

    # -- time ---------------------------------------------------------------------------

    def _schedule(self, connection: Connection, when: float) -> None:
        connection.check_at = when
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, connection))

    def next_deadline(self) -> float | None:
        timers = self._timers
        while timers:
            when, _, connection = timers[0]
            if not connection.closed and connection.check_at == when:
                return when
            heapq.heappop(timers)
        return None

    def handle_timeout(self, now: float, out: Datagrams) -> LayerEvents:
        events: LayerEvents = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, connection = heapq.heappop(timers)
            if connection.closed or connection.check_at != when:
                continue
            events.extend(self._check(connection, now, out))
        return events

    def _check(self, connection: Connection, now: float, out: Datagrams) -> LayerEvents:
        """Act on whatever is due for ``connection``; schedule its next check."""
        config = self.config
        if not connection.peer_csm:
            if now >= connection.csm_deadline:
                return self._abort(
                    connection, f"no CSM within {config.csm_timeout:g} s (RFC 8323 §5.3)", out
                )
            self._schedule(connection, connection.csm_deadline)
            return []
        events: LayerEvents = []
        if connection.ping_sent_at is not None:
            if connection.last_received > connection.ping_sent_at:
                connection.ping_sent_at = None  # anything from the peer shows it is alive
            elif now >= connection.ping_sent_at + config.ping_timeout:
                return self._abort(
                    connection, f"no Pong within {config.ping_timeout:g} s (RFC 8323 §5.4)", out
                )
        if (
            config.idle_timeout is not None
            and now >= connection.last_activity + config.idle_timeout
        ):
            events.append(IdleConnection(connection.remote))
        keepalive = config.keepalive
        if (
            keepalive is not None
            and connection.ping_sent_at is None
            and now >= connection.last_received + keepalive
        ):
            self._signal(connection, Message(code=signals.PING), out)
            self.stats.pings_sent += 1
            connection.ping_sent_at = now
        candidates = []
        if connection.ping_sent_at is not None:
            candidates.append(connection.ping_sent_at + config.ping_timeout)
        elif keepalive is not None:
            candidates.append(connection.last_received + keepalive)
        if config.idle_timeout is not None:
            due = connection.last_activity + config.idle_timeout
            candidates.append(due if due > now else now + config.idle_timeout)
        if candidates:
            self._schedule(connection, max(min(candidates), now))
        return events

    # -- errors and the end -------------------------------------------------------------------

    def network_error(
        self, remote: Remote, error: CoapError, now: float, out: Datagrams
    ) -> list[MessagingEvent]:
        """The transport failed: as :meth:`connection_lost`."""
        return self.connection_lost(remote, error, now)

    def shutdown(self, now: float) -> list[MessagingEvent]:
        """Stop: nothing is sent afterwards (the runtime closes every connection)."""
        self._closed = True
        for connection in self._connections.values():
            connection.closed = True
        self._connections.clear()
        self._timers.clear()
        return []


def _ended(connection: Connection) -> bool:
    return connection.closed


_show = describe_remote
