"""The one sans-I/O object a runtime drives: a whole CoAP endpoint without sockets or clocks.

:class:`Endpoint` stacks the message layer (types, message IDs,
retransmission, deduplication) and the exchange layer (tokens, matching,
timeouts).  Every input takes the current time and returns one
:class:`Output`: the datagrams to send, the events for the application, and
(computed on demand) the next deadline at which :meth:`Endpoint.handle_timeout`
must be called (docs/architecture.md rules 2 and 4).

A server answers each :class:`~coapkit.exchanges.events.IncomingRequest` with
:meth:`Endpoint.respond`; a client starts requests with
:meth:`Endpoint.request` and gets :class:`~coapkit.exchanges.events.ResponseEvent`
or :class:`~coapkit.exchanges.events.RequestFailed` back.

>>> import random
>>> from coapkit import Code, Message, Options
>>> client = Endpoint(rng=random.Random(1))
>>> server = Endpoint(rng=random.Random(2))
>>> get = Message(code=Code.GET, options=Options.build(uri_path=["hello"]))
>>> handle, out = client.request(get, ("192.0.2.2", 5683), now=0.0)
>>> [(data, remote)] = out.datagrams
>>> [incoming] = server.datagram_received(data, ("192.0.2.1", 5683), now=0.01).events
>>> incoming.request.options.uri_path
('hello',)
>>> reply = server.respond(incoming.handle, Message(code=Code.CONTENT, payload=b"hi"), now=0.01)
>>> [event] = client.datagram_received(reply.datagrams[0][0], ("192.0.2.2", 5683), now=0.02).events
>>> event.response.payload, event.handle is handle
(b'hi', True)
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from coapkit.blockwise.bert import BertPeers, indicates_bert
from coapkit.blockwise.client import ClientTransfers, Transfer
from coapkit.blockwise.server import BlockwiseConfig, BlockwiseServer
from coapkit.codec.codes import Code
from coapkit.codec.message import Message, ResponseParts
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.connections.layer import (
    ConnectionEvent,
    ConnectionLayer,
    ConnectionReady,
    IdleConnection,
)
from coapkit.dtls.events import DatagramDropped, DtlsEvent, SessionEnded, SessionEstablished
from coapkit.dtls.layer import DtlsLayer
from coapkit.errors import (
    BacklogFull,
    CoapError,
    EncodeError,
    OptionValueError,
    ProtocolUsageError,
    RetransmissionsExceeded,
)
from coapkit.exchanges.amplification import AmplificationConfig, AmplificationGuard
from coapkit.exchanges.client import ClientExchanges, ClientRequest
from coapkit.exchanges.events import (
    Diagnostic,
    EndpointEvent,
    IncomingRequest,
    PongReceived,
    RequestAcknowledged,
    RequestFailed,
    RequestRefused,
    ResponseAcknowledged,
    ResponseDeliveryFailed,
    ResponseEvent,
    ResponseRejected,
)
from coapkit.exchanges.server import UNDERSTOOD_OPTIONS, ServerExchanges
from coapkit.exchanges.tokens import TokenSource
from coapkit.messaging.addresses import remote_is_multicast
from coapkit.messaging.events import (
    DeliveryFailed,
    EmptyAckReceived,
    MessageIgnored,
    PeerFailed,
    RequestReceived,
    ResetReceived,
    ResponseReceived,
)
from coapkit.messaging.layer import Datagrams, MessageLayer, MessagingConfig
from coapkit.messaging.parameters import DEFAULT_PARAMETERS, TransmissionParameters
from coapkit.messaging.records import Inbound, Outgoing, Remote
from coapkit.messaging.stats import PeerStatistics
from coapkit.observe.registry import Observer, ObserveRegistry
from coapkit.observe.server import ObserveServer
from coapkit.randomness import RandomSource
from coapkit.reliability import LayerEvent, ReliabilityLayer


class Output:
    """What one input to the endpoint produced."""

    __slots__ = ("_endpoint", "datagrams", "events")

    def __init__(self, datagrams: Datagrams, events: list[Any], endpoint: Endpoint) -> None:
        self.datagrams = datagrams  #: ``(bytes, remote)`` pairs to send, in order
        self.events = events  #: events for the application, in order
        self._endpoint = endpoint

    @property
    def deadline(self) -> float | None:
        """When the endpoint next needs :meth:`Endpoint.handle_timeout` (absolute time)."""
        return self._endpoint.next_deadline()

    def __repr__(self) -> str:
        return f"<Output {len(self.datagrams)} datagrams, events={self.events!r}>"


class Endpoint:
    """A CoAP endpoint, sans I/O: over datagrams (RFC 7252's message layer, the default)
    or over connections (``layer=ConnectionLayer(...)``, RFC 8323), never both.

    The layer under the exchanges is chosen here and nowhere else: everything above it
    talks to it through :class:`~coapkit.reliability.ReliabilityLayer`.
    """

    def __init__(
        self,
        *,
        rng: RandomSource,
        transmission: TransmissionParameters = DEFAULT_PARAMETERS,
        messaging: MessagingConfig | None = None,
        peer_transmission: Mapping[Remote, TransmissionParameters] | None = None,
        token_length: int = 8,
        understood_options: frozenset[int] = UNDERSTOOD_OPTIONS,
        is_multicast: Callable[[Remote], bool] = remote_is_multicast,
        blockwise: BlockwiseConfig | None = None,
        observe_reregister: bool = True,
        amplification: AmplificationConfig | None = None,
        observers: ObserveRegistry | None = None,
        layer: ReliabilityLayer | None = None,
        security: DtlsLayer | None = None,
    ) -> None:
        if layer is None:
            layer = MessageLayer(
                rng=rng,
                params=transmission,
                config=messaging,
                peer_params=peer_transmission,
                is_multicast=is_multicast,
            )
        #: the layer under the exchanges (the name is the datagram case's, kept for both)
        self.messaging: ReliabilityLayer = layer
        #: the same layer when it is a connection layer (the inputs only streams have)
        self.connections = layer if isinstance(layer, ConnectionLayer) else None
        self.client = ClientExchanges(
            self.messaging, TokenSource(rng, token_length), understood_options
        )
        self.server = ServerExchanges(self.messaging, understood_options)
        blockwise = blockwise or BlockwiseConfig()
        if blockwise.bert is None:  # BERT exists over connections only (RFC 8323 §6)
            blockwise = replace(blockwise, bert=self.connections is not None)
        elif blockwise.bert and self.connections is None:
            raise ValueError("BERT needs a connection layer: over UDP szx 7 is reserved")
        self.blockwise_config = blockwise
        #: the peers whose CSM indicates BERT, kept from ConnectionReady (see _dispatch);
        #: none while our own CSM does not (RFC 8323 §5.3.2: both sides announce it)
        ours = self.connections.config if self.connections is not None else None
        self.bert_peers = BertPeers(
            blockwise.max_bert_blocks,
            announced=ours is not None and indicates_bert(ours.max_message_size, ours.block_wise),
        )
        self.transfers = ClientTransfers(
            self.client, blockwise, reregister=observe_reregister, peers=self.bert_peers
        )
        self.blockwise = BlockwiseServer(blockwise, peers=self.bert_peers)
        self.observe = ObserveServer(self.messaging, observers)
        self._max_block_size = blockwise.max_block_size
        #: options a request may carry and still take the fast path (accept_request):
        #: understood, and meaning nothing to the block-wise, observe or message layers
        self._plain_options = {
            number: bounds
            for number, bounds in self.server.option_bounds.items()
            if number in _PLAIN_OPTIONS
        }
        self.is_multicast = is_multicast
        #: DTLS sessions between the transport and the message layer (``coaps://``): every
        #: datagram in and out passes them; None over plain UDP and over connections
        self.security = security
        #: anti-amplification (RFC 9175 §2.4); off unless configured, on in ``coapkit server``;
        #: never under DTLS, whose cookie exchange verifies addresses before any answer
        self.amplification: AmplificationGuard | None = None
        if amplification is not None and amplification.enabled and security is None:
            self.amplification = AmplificationGuard(amplification, rng.randbytes(16))

    @property
    def stats(self) -> Any:
        return self.messaging.stats

    def _output(self, out: Datagrams, events: list[Any], now: float) -> Output:
        """Every output passes here: under DTLS its datagrams are sealed, each in its
        remote's session (never sent in the clear: see :meth:`DtlsLayer.seal`)."""
        security = self.security
        if security is not None and out:
            out = security.seal(out, now)
        return Output(out, events, self)

    @property
    def closed(self) -> bool:
        return self.messaging.closed

    def peer_statistics(self, remote: Remote, now: float) -> PeerStatistics | None:
        """What the message layer knows about ``remote`` at ``now``: its round-trip estimates
        (with adaptive retransmission, ``MessagingConfig(congestion=CoCoA())``) and the state
        it holds; None for a remote it knows nothing about, and over connections."""
        if not isinstance(self.messaging, MessageLayer):
            return None
        return self.messaging.peer_statistics(remote, now)

    def every_peer_statistics(self, now: float) -> list[PeerStatistics]:
        """:meth:`peer_statistics` of every remote the message layer knows now."""
        layer = self.messaging
        if not isinstance(layer, MessageLayer):
            return []
        found = (layer.peer_statistics(remote, now) for remote in layer.remotes)
        return [statistics for statistics in found if statistics is not None]

    # -- inputs from the network and the clock ------------------------------------------------

    def datagram_received(
        self, data: bytes, remote: Remote, now: float, *, multicast: bool = False
    ) -> Output:
        """A datagram arrived from ``remote`` (``multicast``: it was sent to a group address)."""
        if self.security is not None:
            return self._secure_datagram(data, remote, now, multicast)
        out: Datagrams = []
        events = self._datagram(data, remote, now, out, multicast)
        return self._output(out, events, now)

    def _datagram(
        self, data: bytes, remote: Remote, now: float, out: Datagrams, multicast: bool
    ) -> list[Any]:
        messaging_events = self.messaging.receive(data, remote, now, out, multicast=multicast)
        if len(messaging_events) == 1 and messaging_events[0].__class__ is RequestReceived:
            event = messaging_events[0]
            assert isinstance(event, RequestReceived)
            events: list[Any] = self.server.request_received(event.message, event.inbound, now, out)
            if (
                events
                and events[0].__class__ is IncomingRequest
                and _has_block_option(event.message)
            ):
                events = self._blockwise_request(events[0], now, out)
        else:
            events = self._dispatch(messaging_events, now, out)
        return events

    def _secure_datagram(self, data: bytes, remote: Remote, now: float, multicast: bool) -> Output:
        """A datagram under DTLS: its records to the session, the plaintexts they carry up
        the stack as plain datagrams would go (the fast path included)."""
        security = self.security
        assert security is not None
        if multicast:  # DTLS has no multicast (RFC 7252 §9.1)
            dropped = DatagramDropped(remote, "DTLS over multicast is not supported")
            return Output([], [dropped], self)
        opened = security.receive(data, remote, now)
        out: Datagrams = []
        events: list[Any] = []
        for plaintext in opened.plaintexts:
            inbound = self.messaging.accept_request(plaintext, remote, now, self._plain_options)
            if inbound is not None:
                events.append(IncomingRequest(inbound.message, remote, inbound))
            else:
                events.extend(self._datagram(plaintext, remote, now, out, False))
        return self._secure_output(opened.datagrams, opened.events, out, events, now)

    def _secure_output(
        self,
        sealed: Datagrams,
        session_events: list[DtlsEvent],
        out: Datagrams,
        events: list[Any],
        now: float,
    ) -> Output:
        """The DTLS layer's datagrams and events with the stack's: a session that ended
        fails the exchanges towards its peer with the DtlsError that ended it, and its
        observations end (RFC 7252 §9.1.1: none outlives its session)."""
        security = self.security
        assert security is not None
        found: list[Any] = []
        messaging = self.messaging
        for event in session_events:
            found.append(event)
            cls = event.__class__
            if cls is SessionEnded:
                assert isinstance(event, SessionEnded)
                found.extend(self._peer_gone(event.remote, event.error, now, out))
            elif cls is SessionEstablished and isinstance(messaging, MessageLayer):
                # what waited for the handshake goes out now: its retransmissions count
                # from now, not from when it was handed down
                assert isinstance(event, SessionEstablished)
                if event.client:
                    messaging.held_back(event.remote, now)
        if found:
            events = found + events
        if out:
            sealed.extend(security.seal(out, now))
        return Output(sealed, events, self)

    def accept_request(self, data: bytes, remote: Remote, now: float) -> Inbound | None:
        """:meth:`datagram_received` for the common case, in fewer steps (a runtime's fast path).

        A new unicast request from a known peer whose options are all plain (Uri-Host,
        Uri-Port, Uri-Path, Uri-Query, Content-Format, Accept) would come out of
        :meth:`datagram_received` as one :class:`IncomingRequest` for ``(inbound.message,
        remote, inbound)`` with nothing to send: this returns that ``inbound``, the state
        exactly as :meth:`datagram_received` would leave it.  For any other datagram it
        returns None having changed nothing; the caller then calls
        :meth:`datagram_received`.  The amplification defence has nothing to do with a
        request until it is answered (:meth:`respond_now` sees to that).
        """
        if self.security is not None:  # DTLS: the session layer's own fast path
            return None
        return self.messaging.accept_request(data, remote, now, self._plain_options)

    def respond_now(self, handle: Inbound, response: ResponseParts, now: float) -> bytes | None:
        """:meth:`respond` for the common case, in fewer steps (a runtime's fast path).

        A response small enough for one message, without Observe, to a request still
        unanswered, without block-wise options nor No-Response, goes out at once:
        piggybacked in the ACK of a CON, or as a NON to a NON when nothing waits
        towards the peer.  This returns that datagram (for ``handle.remote``), the
        state exactly as :meth:`respond` would leave it.  Otherwise it returns None
        having changed nothing, and the caller calls :meth:`respond`.  With the
        amplification defence on, only a response within the limit for an unverified
        source goes this way (the defence lets it through unasked, see :meth:`_guarded`);
        a larger one is for :meth:`respond` to check or to replace by an Echo challenge.
        """
        if (
            len(response.payload) > self._max_block_size
            or _OBSERVE in response.options
            or _has_block_option(handle.message, _SIZE2)
        ):
            return None
        guard = self.amplification
        if guard is not None and _guarded_size(handle, response) > guard.limit(handle.size):
            return None
        security = self.security
        if security is None:
            return self.messaging.respond_now(handle, response, now)
        if not security.established(handle.remote):
            return None
        data = self.messaging.respond_now(handle, response, now)
        return None if data is None else security.seal_one(data, handle.remote, now)

    def _blockwise_request(self, event: IncomingRequest, now: float, out: Datagrams) -> list[Any]:
        """Let the block-wise server answer or reassemble a request carrying Block1/Block2."""
        request, answer = self.blockwise.on_request(event.request, event.remote, now)
        if answer is not None:
            answer = self._guarded(event.handle, answer, now)
            try:
                self.server.respond(event.handle, answer, now, out)
            except BacklogFull as exc:
                # The answer to a NON request is a NON that waits its turn (NSTART); when
                # too many wait already, it is dropped: the client asks again.
                return [Diagnostic(event.remote, f"block-wise answer not sent: {exc}")]
            if answer.code >= 128:  # refused (4.13, 4.08...): for the request log
                return [RequestRefused(event.handle, answer)]
            return []
        assert request is not None
        if request is event.request:
            return [event]
        return [IncomingRequest(request, event.remote, event.handle)]

    def handle_timeout(self, now: float) -> Output:
        """Call when :meth:`next_deadline` has come: retransmissions, timeouts, expiry."""
        out: Datagrams = []
        events = self._dispatch(self.messaging.handle_timeout(now, out), now, out)
        for event in self.client.handle_timeout(now, out):
            events.extend(self.transfers.on_event(event, now, out))
        events.extend(self.transfers.handle_timeout(now, out))
        self.blockwise.expire(now)
        security = self.security
        if security is not None:  # DTLS retransmissions, handshake and idle timeouts
            opened = security.handle_timeout(now)
            for event in events:
                if event.__class__ is RequestFailed and isinstance(
                    event.error, RetransmissionsExceeded
                ):
                    # not one of our transmissions answered: the server may have lost
                    # our session (a restart); the next request makes a new one
                    # a Transfer here, whatever RequestFailed.handle says (the compiled
                    # build would check the attribute against the declared type)
                    handle: Any = getattr(event, "handle", None)
                    opened.datagrams.extend(security.renew(handle.remote, now))
            return self._secure_output(opened.datagrams, opened.events, out, events, now)
        return self._output(out, events, now)

    def next_deadline(self) -> float | None:
        deadline = self.messaging.next_deadline()
        for candidate in (
            self.client.next_deadline(),
            self.transfers.next_deadline(),
            self.blockwise.next_deadline(),
        ):
            if candidate is not None and (deadline is None or candidate < deadline):
                deadline = candidate
        if self.security is not None:
            candidate = self.security.next_deadline()
            if candidate is not None and (deadline is None or candidate < deadline):
                deadline = candidate
        return deadline

    def network_error(
        self, remote: Remote, error: CoapError, now: float, head: bytes = b""
    ) -> Output:
        """The transport reports ``error`` for ``remote``; ``head`` is the start of the
        datagram it concerns, when the network quoted it (an ICMP error does).

        A message too large for the path (``EMSGSIZE``: a local refusal, or ICMP
        "fragmentation needed" / "packet too big") fails only that message, found
        by the message ID in ``head``.  Any other error (port, host or network
        unreachable) says the remote cannot be reached: every exchange towards it
        fails at once instead of waiting out its retransmissions (RFC 7252 §4.2
        lets an endpoint give up early), and every observation it holds here ends
        (RFC 7641 §4.5: a client that cannot be reached is no longer interested),
        so that notifications stop going to a port nobody listens on.
        """
        out: Datagrams = []
        security = self.security
        if security is not None:  # the head is ciphertext; a handshake cannot go on
            security.abandon(remote)
        elif getattr(error, "errno", None) == _EMSGSIZE and len(head) >= 4:
            mid = (head[2] << 8) | head[3]
            events = self._dispatch(
                self.messaging.message_failed(remote, mid, error, now, out), now, out
            )
            return self._output(out, events, now)
        self.bert_peers.forget(remote)  # (over a connection: it is lost)
        events = self._peer_gone(remote, error, now, out)
        return self._output(out, events, now)

    def _peer_gone(self, remote: Remote, error: CoapError, now: float, out: Datagrams) -> list[Any]:
        """Every exchange towards ``remote`` fails with ``error``; its observations end."""
        events = self._dispatch(self.messaging.network_error(remote, error, now, out), now, out)
        events.extend(self.observe.peer_failed(remote, error))
        return events

    # -- connections (RFC 8323) ------------------------------------------------------------

    def _connection_layer(self) -> ConnectionLayer:
        if self.connections is None:
            raise ProtocolUsageError("this endpoint runs over datagrams: it has no connections")
        return self.connections

    def connection_made(self, remote: Remote, now: float, *, websocket: bool = False) -> Output:
        """A connection to ``remote`` is up (TLS and WebSocket handshakes done): our CSM."""
        out: Datagrams = []
        self._connection_layer().connection_made(remote, now, out, websocket=websocket)
        self.bert_peers.forget(remote)  # a new connection: nothing known until its CSM
        return self._output(out, [], now)

    def connection_lost(self, remote: Remote, error: CoapError, now: float) -> Output:
        """The connection to ``remote`` closed: its exchanges fail at once and the
        observations held on it end (RFC 8323 §7: they do not outlive it)."""
        out: Datagrams = []
        layer = self._connection_layer()
        self.bert_peers.forget(remote)
        events = self._dispatch(layer.connection_lost(remote, error, now), now, out)
        events.extend(self.observe.peer_failed(remote, error))
        return self._output(out, events, now)

    def _idle(self, remote: Remote, now: float, out: Datagrams) -> list[Any]:
        """An idle connection: released unless observations or requests still use it."""
        layer = self._connection_layer()
        if self.observe.registry.count_for(remote) or self.client.has_open(remote):
            layer.touch(remote, now)
            return []
        return layer.release(remote, "idle", now, out)

    def shutdown(self, now: float) -> Output:
        """Fail every open request with a cancellation; nothing is sent afterwards but,
        under DTLS, a close_notify in each session (the datagrams of this output)."""
        out: Datagrams = []
        self.bert_peers.clear()
        events = self._dispatch(self.messaging.shutdown(now), now, out)
        for event in self.client.shutdown():
            events.extend(self.transfers.on_event(event, now, out))
        closing: Datagrams = []
        if self.security is not None:
            opened = self.security.close_all(now)
            closing = opened.datagrams
            events.extend(opened.events)
        return Output(closing, events, self)

    # -- client side ---------------------------------------------------------------------

    def request(
        self,
        message: Message,
        remote: Remote,
        now: float,
        *,
        mtype: MessageType | None = None,
        transmission: TransmissionParameters | None = None,
        timeout: float | None = None,
        multicast: bool | None = None,
        keep_open: bool = False,
        token: bytes | None = None,
        manage_observation: bool = True,
    ) -> tuple[Transfer, Output]:
        """Send a request to ``remote``; its events carry the returned handle.

        ``mtype`` defaults to the message's type (CON unless it is NON), and to NON
        for a multicast destination.  ``timeout`` bounds each exchange.  A large
        payload goes out block-wise and a block-wise response is reassembled
        (RFC 7959).  ``keep_open`` keeps the request open after a response: an
        observation (RFC 7641) when the request carries Observe=0, re-registered and
        deregistered here unless ``manage_observation`` is False (OSCORE's registrations
        are new protected requests each time: the caller makes them).
        """
        if multicast is None:
            multicast = self.is_multicast(remote)
        if mtype is None:
            if multicast:
                mtype = MessageType.NON
            else:
                mtype = message.mtype if message.mtype is MessageType.NON else MessageType.CON
        out: Datagrams = []
        handle = self.transfers.start(
            message,
            remote,
            now,
            out,
            mtype=mtype,
            transmission=transmission,
            timeout=timeout,
            multicast=multicast,
            keep_open=keep_open,
            token=token,
            manage_observation=manage_observation,
        )
        return handle, self._output(out, [], now)

    def ping(self, remote: Remote, now: float) -> tuple[Transfer, Output]:
        """Send a CoAP ping (empty CON); a :class:`PongReceived` event answers it."""
        out: Datagrams = []
        handle = self.transfers.ping(remote, now, out)
        return handle, self._output(out, [], now)

    def cancel(self, handle: Transfer, now: float) -> Output:
        """Cancel a request: its tokens are freed and retransmissions stop; an observation
        is deregistered."""
        out: Datagrams = []
        self.transfers.cancel(handle, now, out)
        return self._output(out, [], now)

    # -- server side ---------------------------------------------------------------------

    def respond(
        self,
        handle: Inbound,
        response: Message,
        now: float,
        *,
        mtype: MessageType | None = None,
        transmission: TransmissionParameters | None = None,
        owner: Any = None,
    ) -> Output:
        """Answer a request (piggybacked if still possible, otherwise separately).

        The response gets the request's token.  ``owner`` comes back in
        ResponseAcknowledged / ResponseRejected / ResponseDeliveryFailed events
        when the response goes as a separate CON.  A registration response
        (with Observe, from ``observe.on_response``) is its observer's first
        notification: its RST or lost ACK ends the observation (RFC 7641 §4.5).
        """
        out: Datagrams = []
        if len(response.payload) > self._max_block_size or _has_block_option(
            handle.message, _SIZE2
        ):
            response = self.blockwise.on_response(handle.message, response, handle.remote, now)
        observer = None
        if owner is None and _OBSERVE in response.options:
            owner = observer = self.observe.registry.find(handle.remote, handle.message.token)
        outgoing = None
        try:
            guarded = self._guarded(handle, response, now)
            if guarded is not response:
                handle.withheld = response.code
                response = guarded
            outgoing = self.server.respond(
                handle, response, now, out, mtype=mtype, transmission=transmission, owner=owner
            )
        except EncodeError as exc:
            # The application's response cannot go out.  An error response too long for
            # one message loses the end of its diagnostic (errors are not sent in blocks);
            # anything else becomes a 5.00, rather than silence and retransmissions.
            limit = self.messaging.config.max_message_size
            if response.code >= 128 and len(response.payload) > 64:
                room = max(0, limit - (len(response.encode()) - len(response.payload)) - 8)
                failure = response.replace(payload=response.payload[:room])
            else:
                failure = Message(code=Code.INTERNAL_SERVER_ERROR, payload=str(exc)[:80].encode())
            self.server.respond(handle, failure, now, out, mtype=mtype, transmission=transmission)
        if observer is not None and outgoing is not None:
            observer.in_flight = outgoing
        return self._output(out, [], now)

    def _guarded(self, handle: Inbound, response: Message, now: float) -> Message:
        """The response, or a 4.01 Echo challenge when it is too large for an unverified source."""
        guard = self.amplification
        if guard is None:
            return response
        limit = guard.limit(handle.size + _earlier_blocks(handle.message))
        if _guarded_size(handle, response) <= limit:
            return response
        remote = handle.remote
        if guard.is_verified(remote, now):
            return response
        if guard.verify(remote, handle.message.options.echo, now):
            return response
        challenge = Options.build(echo=guard.challenge(remote, now))
        return Message(code=Code.UNAUTHORIZED, options=challenge)

    def send_separate(
        self,
        remote: Remote,
        message: Message,
        now: float,
        *,
        mtype: MessageType = MessageType.CON,
        transmission: TransmissionParameters | None = None,
        owner: Any = None,
    ) -> tuple[Outgoing, Output]:
        """Send a response that answers no pending request (e.g. an Observe notification)."""
        out: Datagrams = []
        outgoing = self.messaging.send(
            message,
            remote,
            now,
            out,
            mtype=mtype,
            params=transmission,
            owner=owner,
            track_reset=True,
        )
        return outgoing, self._output(out, [], now)

    def send_notification(
        self,
        remote: Remote,
        request: Message,
        notification: Message,
        now: float,
        *,
        mtype: MessageType,
        owner: Any = None,
    ) -> tuple[Outgoing, Output]:
        """Low level: send a notification already carrying its token and Observe option,
        answering ``request`` (the registration), without the observer bookkeeping of
        :meth:`notify`.  A body larger than a block goes out as its first block."""
        if len(notification.payload) > self._max_block_size or _has_block_option(request, _SIZE2):
            notification = self.blockwise.on_response(request, notification, remote, now)
        return self.send_separate(remote, notification, now, mtype=mtype, owner=owner)

    def notify(
        self,
        observer: Observer,
        notification: Message,
        now: float,
        *,
        sequence: int,
        mtype: MessageType | None = None,
        con_every: int | None = None,
    ) -> Output:
        """Send ``observer`` the notification of state ``sequence`` (RFC 7641 §4.2).

        ``notification`` is the observer's rendering of that state (its registration
        request answered again); the token, the Observe option and the message type
        are added here (see :meth:`ObserveServer.notify`; ``mtype`` and ``con_every``
        are the resource's wishes).  A body larger than a block goes out as its first
        block (RFC 7959 §2.6), the rest is served from the block-wise cache when the
        client asks for it.  Get ``sequence`` and the observers from
        ``endpoint.observe.updated(key)``.
        """
        out: Datagrams = []
        request = observer.request
        if len(notification.payload) > self._max_block_size or _has_block_option(request, _SIZE2):
            notification = self.blockwise.on_response(request, notification, observer.remote, now)
        events = self.observe.notify(
            observer, notification, sequence, now, out, mtype=mtype, con_every=con_every
        )
        return self._output(out, events, now)

    def reject(self, handle: Inbound, now: float) -> Output:
        """Answer a received message with an RST instead of a response."""
        out: Datagrams = []
        self.messaging.reject(handle, out)
        return self._output(out, [], now)

    # -- events from the message layer ------------------------------------------------------

    def _dispatch(
        self, messaging_events: Sequence[LayerEvent], now: float, out: Datagrams
    ) -> list[Any]:
        exchange_events = self._exchange_events(messaging_events, now, out)
        events: list[Any] = []
        for event in exchange_events:
            cls = event.__class__
            if cls is IncomingRequest:
                assert isinstance(event, IncomingRequest)
                if _has_block_option(event.request):
                    events.extend(self._blockwise_request(event, now, out))
                else:
                    events.append(event)
            elif isinstance(event, _CLIENT_EVENTS):
                events.extend(self.transfers.on_event(event, now, out))
            elif isinstance(event, _FATE_EVENTS) and isinstance(event.owner, Observer):
                events.extend(self.observe.on_event(event, now, out))
            elif cls is IdleConnection:
                assert isinstance(event, IdleConnection)
                events.extend(self._idle(event.remote, now, out))
            elif cls is ConnectionReady:
                # What the peer's CSM says it takes decides whether blocks to it are BERT
                # (RFC 8323 §5.3.2, §6); the event goes on up for the runtime too.
                assert isinstance(event, ConnectionReady)
                self.bert_peers.update(event.remote, event.max_message_size, event.block_wise)
                events.append(event)
            else:
                events.append(event)
        return events

    def _exchange_events(
        self, messaging_events: Sequence[LayerEvent], now: float, out: Datagrams
    ) -> list[EndpointEvent | ConnectionEvent]:
        events: list[EndpointEvent | ConnectionEvent] = []
        client = self.client
        for event in messaging_events:
            if isinstance(event, RequestReceived):
                events.extend(self.server.request_received(event.message, event.inbound, now, out))
            elif isinstance(event, ResponseReceived):
                if event.inbound is None:
                    assert event.acknowledged is not None
                    events.extend(
                        client.piggybacked_response(
                            event.message, event.remote, event.acknowledged, now
                        )
                    )
                    continue
                matched = client.separate_response(event.message, event.inbound, out)
                if matched is None:
                    # An unknown CON is rejected; so is an unknown NON notification, which
                    # is how a server learns that an observation was forgotten (RFC 7641 §3.6).
                    if event.inbound.mtype is MessageType.CON or _OBSERVE in event.message.options:
                        self.messaging.reject(event.inbound, out)
                    events.append(Diagnostic(event.remote, "response matches no open request"))
                else:
                    events.extend(matched)
            elif isinstance(event, EmptyAckReceived):
                outgoing = event.outgoing
                if isinstance(outgoing.owner, ClientRequest):
                    events.extend(client.empty_ack(outgoing, now))
                else:
                    events.append(ResponseAcknowledged(outgoing.owner, outgoing.remote))
            elif isinstance(event, ResetReceived):
                outgoing = event.outgoing
                if isinstance(outgoing.owner, ClientRequest):
                    events.extend(client.reset(outgoing, now))
                else:
                    events.append(ResponseRejected(outgoing.owner, outgoing.remote))
            elif isinstance(event, DeliveryFailed):
                outgoing = event.outgoing
                if isinstance(outgoing.owner, ClientRequest):
                    events.extend(client.delivery_failed(outgoing, event.error))
                else:
                    events.append(
                        ResponseDeliveryFailed(outgoing.owner, outgoing.remote, event.error)
                    )
            elif isinstance(event, PeerFailed):
                events.extend(client.peer_failed(event.remote, event.error))
            elif isinstance(event, MessageIgnored):
                events.append(Diagnostic(event.remote, event.reason, "messaging"))
            else:  # the connection layer's own (CloseConnection, IdleConnection, ...)
                events.append(event)
        return events


_EMSGSIZE = errno.EMSGSIZE
_CLIENT_EVENTS = (ResponseEvent, RequestFailed, RequestAcknowledged, PongReceived)
_FATE_EVENTS = (ResponseAcknowledged, ResponseRejected, ResponseDeliveryFailed)
_BLOCK1 = int(OptionNumber.BLOCK1)
_OBSERVE = int(OptionNumber.OBSERVE)
_BLOCK2 = int(OptionNumber.BLOCK2)
_SIZE2 = int(OptionNumber.SIZE2)
_PLAIN_OPTIONS = frozenset(
    int(number)
    for number in (
        OptionNumber.URI_HOST,
        OptionNumber.URI_PORT,
        OptionNumber.URI_PATH,
        OptionNumber.URI_QUERY,
        OptionNumber.CONTENT_FORMAT,
        OptionNumber.ACCEPT,
        # means nothing below the OSCORE layer; plain only where it is understood (a
        # server with OSCORE), since only understood options are in the fast path's table
        OptionNumber.OSCORE,
    )
)


def _guarded_size(handle: Inbound, response: ResponseParts) -> int:
    """The size the amplification defence counts for ``response`` to ``handle``: at least
    that of its datagram (each option counted with 3 bytes of header, the most it takes)."""
    size = 5 + len(handle.message.token) + len(response.payload)
    for _, value in response.options.items:
        size += len(value) + 3
    return size


def _has_block_option(message: Message, last: int = _BLOCK1) -> bool:
    """Whether ``message`` has Block2 or Block1 (or, with ``last=_SIZE2``, Size2 too: a
    request asking for the size, RFC 7959 §4, gets its answer from the block-wise layer)."""
    for number, _ in message.options.items:
        if number in (_BLOCK2, _BLOCK1, last):
            return True
        if number > last:
            return False
    return False


def _earlier_blocks(request: Message) -> int:
    """Bytes of body the source sent before this last Block1 block (0 for other requests).

    The response to the last block answers the whole body: the amplification
    limit (a factor of what the source sent) counts every block.  Challenging
    it instead would lose the body: the client repeats only the last block,
    with the Echo value, and the body is gone (4.08).
    """
    if _BLOCK1 not in request.options:
        return 0
    try:
        block1 = request.options.block1
    except OptionValueError:
        return 0
    return 0 if block1 is None else block1.num * block1.size
