"""What the sans-I/O :class:`~coapkit.endpoint.Endpoint` hands to the application.

Client side: :class:`ResponseEvent`, :class:`RequestFailed`,
:class:`RequestAcknowledged`, :class:`PongReceived`.  Server side:
:class:`IncomingRequest`, and for separate responses and notifications sent as
CON: :class:`ResponseAcknowledged`, :class:`ResponseRejected`,
:class:`ResponseDeliveryFailed`.  :class:`Diagnostic` reports what was dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coapkit.codec.message import Message
from coapkit.errors import CoapError
from coapkit.messaging.records import Inbound, Remote

if TYPE_CHECKING:
    from coapkit.exchanges.client import ClientRequest


@dataclass(slots=True)  # one per message: not frozen, cheaper to create; read-only
class IncomingRequest:
    """A request for the application; answer with ``Endpoint.respond(event.handle, response)``."""

    request: Message
    remote: Remote
    handle: Inbound


@dataclass(slots=True)  # one per message: not frozen, cheaper to create; read-only
class ResponseEvent:
    """A response to one of our requests.  ``final`` is False while the request stays open
    (an observation or a multicast request) and more responses may follow."""

    handle: ClientRequest
    response: Message
    remote: Remote
    final: bool


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """One of our requests ended without (further) response: timeout, reset, network error,
    retransmissions exceeded or cancellation, as ``error`` says."""

    handle: ClientRequest
    error: CoapError


@dataclass(frozen=True, slots=True)
class RequestAcknowledged:
    """The server acknowledged our CON request with an empty ACK; a separate response follows."""

    handle: ClientRequest


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The answer (an RST) to a CoAP ping."""

    handle: ClientRequest
    rtt: float


@dataclass(frozen=True, slots=True)
class ResponseAcknowledged:
    """A response or notification we sent as CON was acknowledged."""

    owner: Any
    remote: Remote


@dataclass(frozen=True, slots=True)
class ResponseRejected:
    """A response or notification we sent was answered with an RST."""

    owner: Any
    remote: Remote


@dataclass(frozen=True, slots=True)
class ResponseDeliveryFailed:
    """A response or notification we sent as CON was never acknowledged."""

    owner: Any
    remote: Remote
    error: CoapError


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Something arrived and was dropped or rejected without reaching the application.

    ``layer`` names the layer that dropped it (``"messaging"`` or
    ``"exchanges"``); the runtime logs it on ``coapkit.<layer>`` at DEBUG.
    """

    remote: Remote
    reason: str
    layer: str = "exchanges"


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """The stack answered a request itself, with an error, before any resource saw it:
    4.02 for an unrecognised critical option, or the block-wise layer's refusal of a
    block (4.13 with Size1 for a body over its limit, 4.08, 4.00, 5.03...).  Nothing is
    left to do; the runtime gives it its line in the server's request log."""

    handle: Inbound
    response: Message


EndpointEvent = (
    IncomingRequest
    | ResponseEvent
    | RequestFailed
    | RequestAcknowledged
    | PongReceived
    | ResponseAcknowledged
    | ResponseRejected
    | ResponseDeliveryFailed
    | Diagnostic
    | RequestRefused
)
