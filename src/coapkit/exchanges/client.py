"""The client side of request/response exchanges (RFC 7252 §5.3), sans I/O.

Theory of operation
-------------------
Each request gets a fresh token and a :class:`ClientRequest` record, open
until its final response or its failure.  A response matches when its token
and its source are those of an open request (§5.3.2); a multicast request
accepts responses from any source.  Observations and multicast requests stay
open after a response (``keep_open``) until cancelled or timed out.

A response carrying an unrecognised critical option is rejected (§5.4.1): an
RST answers it if it came as a CON or NON, and the request fails with
:class:`~coapkit.errors.BadResponse` (a multicast request stays open for the
other responders).

Timeouts: a CON request fails when the message layer gives up
(retransmissions exceeded); once the server has sent an empty ACK, its
separate response is awaited for ``separate_timeout`` (default
EXCHANGE_LIFETIME).  A NON request fails after ``timeout`` (default
NON_LIFETIME).  A per-request ``timeout`` bounds either.  The timers sit in one
heap with lazy cancellation.
"""

from __future__ import annotations

import heapq
from enum import IntEnum
from typing import Any

from coapkit.codec.message import Message, _make
from coapkit.codec.option_registry import OptionNumber, is_critical, option_name
from coapkit.codec.options import EMPTY_OPTIONS
from coapkit.codec.types import MessageType
from coapkit.errors import (
    BadResponse,
    CoapError,
    ProtocolUsageError,
    RequestCancelled,
    RequestTimeout,
    ResetByPeer,
)
from coapkit.exchanges.events import (
    Diagnostic,
    EndpointEvent,
    PongReceived,
    RequestAcknowledged,
    RequestFailed,
    ResponseEvent,
)
from coapkit.exchanges.server import UNDERSTOOD_OPTIONS, unrecognised_options
from coapkit.exchanges.tokens import TokenSource
from coapkit.messaging.addresses import describe_remote
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.messaging.records import Inbound, Outgoing, Remote
from coapkit.reliability import Datagrams, ReliabilityLayer

CON = MessageType.CON
NON = MessageType.NON
_OBSERVE = int(OptionNumber.OBSERVE)


class RequestState(IntEnum):
    OPEN = 0
    DONE = 1


class ClientRequest:
    """One request this endpoint sent and the state of its exchange."""

    __slots__ = (
        "acknowledged",
        "deadline",
        "keep_open",
        "message",
        "multicast",
        "outgoing",
        "owner",
        "ping",
        "remote",
        "sent_at",
        "separate_timeout",
        "state",
        "token",
    )

    def __init__(
        self,
        message: Message,
        remote: Remote,
        sent_at: float,
        *,
        multicast: bool,
        keep_open: bool,
        ping: bool,
        separate_timeout: float,
    ) -> None:
        self.message = message
        self.remote = remote
        self.token = message.token
        self.sent_at = sent_at
        self.multicast = multicast
        self.keep_open = keep_open
        self.ping = ping
        self.separate_timeout = separate_timeout
        self.state = RequestState.OPEN
        self.acknowledged = False
        self.deadline: float | None = None
        self.outgoing: Outgoing | None = None
        self.owner: Any = None  #: free for the layer above (e.g. the runtime's future)

    @property
    def open(self) -> bool:
        return self.state is RequestState.OPEN

    def __repr__(self) -> str:
        return (
            f"<ClientRequest {self.message.mtype.name} token={self.token.hex()} "
            f"to {self.remote!r} {self.state.name}>"
        )


class ClientExchanges:
    """Open requests of one endpoint, matched to responses by token and source."""

    def __init__(
        self,
        messaging: ReliabilityLayer,
        tokens: TokenSource,
        understood: frozenset[int] = UNDERSTOOD_OPTIONS,
        max_open: int = 65_536,
    ) -> None:
        self.messaging = messaging
        self.tokens = tokens
        self.understood = understood
        self.max_open = max_open  #: open requests at once (each holds a token and state)
        self._open: dict[tuple[Remote, bytes], ClientRequest] = {}
        self._multicast: dict[bytes, ClientRequest] = {}
        self._timers: list[tuple[float, int, ClientRequest]] = []
        self._seq = 0

    @property
    def open_count(self) -> int:
        return len(self._open) + len(self._multicast)

    def has_open(self, remote: Remote) -> bool:
        """Whether a request to ``remote`` is still open (a scan: for rare questions only,
        such as whether an idle connection may be closed)."""
        return any(key[0] == remote for key in self._open)

    def _token_in_use(self, remote: Remote, multicast: bool, token: bytes) -> bool:
        if token in self._multicast:
            return True
        if multicast:
            return any(key[1] == token for key in self._open)
        return (remote, token) in self._open

    # -- starting and stopping requests ------------------------------------------------

    def request(
        self,
        message: Message,
        remote: Remote,
        now: float,
        out: Datagrams,
        *,
        mtype: MessageType | None = None,
        transmission: TransmissionParameters | None = None,
        timeout: float | None = None,
        multicast: bool = False,
        keep_open: bool = False,
        token: bytes | None = None,
    ) -> ClientRequest:
        """Send a request (its token is replaced by a fresh one unless ``token`` is given)."""
        if len(self._open) + len(self._multicast) >= self.max_open:
            raise ProtocolUsageError(
                f"{self.max_open} requests are already open; wait for some to finish"
            )
        if mtype is None:
            mtype = message.mtype if message.mtype in (CON, NON) else CON
        if multicast and mtype is CON:
            raise ProtocolUsageError("multicast requests are sent as NON (RFC 7252 §8.1)")
        if token is None:
            token = self.tokens.new(lambda t: self._token_in_use(remote, multicast, t))
        elif self._token_in_use(remote, multicast, token):
            raise ProtocolUsageError(f"token {token.hex()} is already used by an open request")
        message = _make(mtype, message.code, 0, token, message.options, message.payload)
        transmission = transmission or self.messaging.parameters_for(remote)
        request = ClientRequest(
            message,
            remote,
            now,
            multicast=multicast,
            keep_open=keep_open or multicast,
            ping=False,
            separate_timeout=transmission.exchange_lifetime,
        )
        request.outgoing = self.messaging.send(
            message, remote, now, out, mtype=mtype, params=transmission, owner=request
        )
        if multicast:
            self._multicast[token] = request
        else:
            self._open[(remote, token)] = request
        if timeout is not None:
            self._arm(request, now + timeout)
        elif mtype is NON:
            self._arm(
                request,
                now + (transmission.default_leisure if multicast else transmission.non_lifetime),
            )
        elif self.messaging.reliable:
            # Over a stream the request is delivered once sent (RFC 8323 §2): wait for the
            # response as a CON request's is awaited once its ACK came.
            request.acknowledged = True
            self._arm(request, now + request.separate_timeout)
        return request

    def resend(
        self,
        request: ClientRequest,
        message: Message,
        now: float,
        out: Datagrams,
        *,
        mtype: MessageType | None = None,
        transmission: TransmissionParameters | None = None,
        timeout: float | None = None,
    ) -> None:
        """Send a new message for an open request, keeping its token (Observe re-registration).

        Any retransmission of the previous message stops; the request stays open.  The new
        message is bounded like a new request: it fails after ``timeout`` if one is given,
        else a CON when the message layer gives up on it (MAX_TRANSMIT_WAIT, or
        EXCHANGE_LIFETIME after an empty ACK) and a NON after NON_LIFETIME.  A bound that
        is already armed and comes sooner is kept: sending again while unanswered must not
        put the failure off (an observation re-sent every minute would otherwise never
        fail).  Any response clears the bound (see :meth:`_deliver`).
        """
        if request.state is RequestState.DONE:
            raise ProtocolUsageError("the request is no longer open")
        previous = request.outgoing
        if previous is not None:
            self.messaging.cancel(previous, now, out)
            if mtype is None:
                mtype = previous.mtype
        mtype = mtype or CON
        transmission = transmission or self.messaging.parameters_for(request.remote)
        message = _make(mtype, message.code, 0, request.token, message.options, message.payload)
        request.message = message
        request.acknowledged = False
        request.sent_at = now
        request.separate_timeout = transmission.exchange_lifetime
        request.outgoing = self.messaging.send(
            message, request.remote, now, out, mtype=mtype, params=transmission, owner=request
        )
        if timeout is not None:
            bound: float | None = now + timeout
        elif mtype is NON:
            bound = now + transmission.non_lifetime
        elif self.messaging.reliable:
            request.acknowledged = True
            bound = now + request.separate_timeout
        else:
            bound = None  # the message layer's retransmissions bound a CON
        if bound is not None and (request.deadline is None or bound < request.deadline):
            self._arm(request, bound)

    def ping(self, remote: Remote, now: float, out: Datagrams) -> ClientRequest:
        """Send a CoAP ping (an empty CON); the RST answering it is a :class:`PongReceived`."""
        message = _make(CON, 0, 0, b"", EMPTY_OPTIONS, b"")
        request = ClientRequest(
            message,
            remote,
            now,
            multicast=False,
            keep_open=False,
            ping=True,
            separate_timeout=0.0,
        )
        request.outgoing = self.messaging.send(message, remote, now, out, owner=request)
        return request

    def cancel(self, request: ClientRequest, now: float, out: Datagrams) -> list[EndpointEvent]:
        """Stop a request: no more retransmissions, its token is free, no event follows."""
        if request.state is RequestState.DONE:
            return []
        self._close(request)
        if request.outgoing is not None:
            self.messaging.cancel(request.outgoing, now, out)
        return []

    def _close(self, request: ClientRequest) -> None:
        request.state = RequestState.DONE
        request.deadline = None
        if request.multicast:
            self._multicast.pop(request.token, None)
        elif self._open.get((request.remote, request.token)) is request:
            del self._open[(request.remote, request.token)]

    def _fail(self, request: ClientRequest, error: CoapError) -> RequestFailed:
        self._close(request)
        return RequestFailed(request, error)

    def _arm(self, request: ClientRequest, deadline: float) -> None:
        request.deadline = deadline
        self._seq += 1
        heapq.heappush(self._timers, (deadline, self._seq, request))

    # -- what the message layer reports ----------------------------------------------------

    def piggybacked_response(
        self, message: Message, remote: Remote, outgoing: Outgoing, now: float
    ) -> list[EndpointEvent]:
        request = outgoing.owner
        if not isinstance(request, ClientRequest) or request.state is RequestState.DONE:
            return []
        if message.token != request.token:
            # The ACK still acknowledges the CON, but the response is not ours (§5.3.2).
            return self.empty_ack(outgoing, now)
        reason = self._rejection(message)
        if reason is not None:
            # Rejecting an ACK is ignoring it (§4.2); no other response will come.
            return [self._reject(request, remote, reason)]
        return [self._deliver(request, message, remote)]

    def separate_response(
        self, message: Message, inbound: Inbound, out: Datagrams
    ) -> list[EndpointEvent] | None:
        """A CON/NON response: the events if it matched an open request, None if not."""
        remote = inbound.remote
        request = self._open.get((remote, message.token))
        if request is None:
            request = self._multicast.get(message.token)
            if request is None:
                return None
        reason = self._rejection(message)
        if reason is not None:
            self.messaging.reject(inbound, out)
            return [self._reject(request, remote, reason)]
        if _OBSERVE in message.options and request.message.options.get(_OBSERVE) == b"\x01":
            # A notification crossing our deregistration (RFC 7641 §3.6): not its answer.
            # Reject it, so that the server forgets the observation even if the
            # deregistration is lost; the request waits for its real answer.
            self.messaging.reject(inbound, out)
            return []
        self.messaging.accept(inbound, out)
        return [self._deliver(request, message, remote)]

    def _rejection(self, message: Message) -> str | None:
        """Why a response must be rejected (its unrecognised critical options), or None."""
        understood = self.understood
        previous = -1
        for number, _ in message.options.items:
            if number not in understood or number == previous:
                break
            previous = number
        else:
            return None
        items = message.options.items
        bad = unrecognised_options(message.options, understood)
        names = sorted({option_name(items[i][0]) for i in bad if is_critical(items[i][0])})
        if not names:
            return None
        return f"response rejected: unrecognised critical option: {', '.join(names)}"

    def _reject(self, request: ClientRequest, remote: Remote, reason: str) -> EndpointEvent:
        if request.multicast:
            return Diagnostic(remote, reason)
        if request.outgoing is not None and request.outgoing.mtype is NON:
            request.outgoing.peer.recent_non.pop(request.outgoing.mid, None)
        return self._fail(request, BadResponse(reason))

    def _deliver(self, request: ClientRequest, message: Message, remote: Remote) -> ResponseEvent:
        final = not request.keep_open
        if final:
            self._close(request)
            if request.outgoing is not None and request.outgoing.mtype is NON:
                request.outgoing.peer.recent_non.pop(request.outgoing.mid, None)
        elif not request.multicast:
            # An observation is established: the timeout of its request (NON_LIFETIME, or
            # EXCHANGE_LIFETIME after an empty ACK) no longer applies, and a late empty ACK
            # must not arm it again.
            request.deadline = None
            request.acknowledged = True
        return ResponseEvent(request, message, remote, final)

    def empty_ack(self, outgoing: Outgoing, now: float) -> list[EndpointEvent]:
        request = outgoing.owner
        if not isinstance(request, ClientRequest) or request.state is RequestState.DONE:
            return []
        if request.acknowledged:
            return []
        request.acknowledged = True
        separate_deadline = now + request.separate_timeout
        if request.deadline is None or separate_deadline < request.deadline:
            self._arm(request, separate_deadline)
        return [RequestAcknowledged(request)]

    def reset(self, outgoing: Outgoing, now: float) -> list[EndpointEvent]:
        request = outgoing.owner
        if not isinstance(request, ClientRequest) or request.state is RequestState.DONE:
            return []
        if request.ping:
            self._close(request)
            return [PongReceived(request, now - request.sent_at)]
        return [
            self._fail(request, ResetByPeer(f"{describe_remote(request.remote)} answered with RST"))
        ]

    def delivery_failed(self, outgoing: Outgoing, error: CoapError) -> list[EndpointEvent]:
        request = outgoing.owner
        if not isinstance(request, ClientRequest) or request.state is RequestState.DONE:
            return []
        return [self._fail(request, error)]

    def peer_failed(self, remote: Remote, error: CoapError) -> list[EndpointEvent]:
        """Fail the requests towards ``remote`` the message layer does not track (NONs)."""
        failing = [r for (peer, _), r in self._open.items() if peer == remote]
        return [self._fail(request, error) for request in failing]

    # -- time ---------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        timers = self._timers
        while timers:
            deadline, _, request = timers[0]
            if request.deadline == deadline and request.state is RequestState.OPEN:
                return deadline
            heapq.heappop(timers)
        return None

    def handle_timeout(self, now: float, out: Datagrams) -> list[EndpointEvent]:
        events: list[EndpointEvent] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, request = heapq.heappop(timers)
            if request.deadline != deadline or request.state is RequestState.DONE:
                continue
            if request.outgoing is not None:
                self.messaging.cancel(request.outgoing, now, out)
            if request.multicast:
                message = "multicast request: no more responses expected"
            elif request.acknowledged:
                message = "acknowledged, but the separate response did not arrive in time"
            else:
                message = f"no response from {describe_remote(request.remote)} in time"
            events.append(self._fail(request, RequestTimeout(message)))
        return events

    def shutdown(self) -> list[EndpointEvent]:
        pending = [*self._open.values(), *self._multicast.values()]
        return [self._fail(request, RequestCancelled("endpoint shut down")) for request in pending]
