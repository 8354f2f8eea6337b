"""What the message layer hands up (docs/architecture.md rule 4: information flows up as
returned events)."""

from __future__ import annotations

from dataclasses import dataclass

from coapkit.codec.message import Message
from coapkit.errors import CoapError
from coapkit.messaging.records import Inbound, Outgoing, Remote


@dataclass(slots=True)  # one per message: not frozen, cheaper to create; read-only
class RequestReceived:
    """A new (not duplicate) CON or NON request; answer it with ``MessageLayer.respond``."""

    message: Message
    inbound: Inbound


@dataclass(slots=True)  # one per message: not frozen, cheaper to create; read-only
class ResponseReceived:
    """A response arrived.

    Piggybacked in an ACK: ``acknowledged`` is the CON request it acknowledges and
    ``inbound`` is None.  Separate (CON or NON): ``inbound`` is set and the layer
    above must ``accept`` it (ACK) or ``reject`` it (RST) in the same step.
    """

    message: Message
    remote: Remote
    acknowledged: Outgoing | None
    inbound: Inbound | None


@dataclass(frozen=True, slots=True)
class EmptyAckReceived:
    """An empty ACK for a CON: the peer got it; a request's response will come separately."""

    outgoing: Outgoing


@dataclass(frozen=True, slots=True)
class ResetReceived:
    """The peer answered a CON or a tracked NON with an RST (also the answer to a ping)."""

    outgoing: Outgoing


@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    """A message will never be acknowledged: retransmissions exceeded, network error, cancelled."""

    outgoing: Outgoing
    error: CoapError


@dataclass(frozen=True, slots=True)
class PeerFailed:
    """The network reported an error for a peer; everything towards it has failed."""

    remote: Remote
    error: CoapError


@dataclass(frozen=True, slots=True)
class MessageIgnored:
    """A datagram was dropped or answered with RST without reaching the layer above.

    Diagnostic only (malformed, impossible type/code combination, unmatched ACK...).
    """

    remote: Remote
    reason: str
    data: bytes


MessagingEvent = (
    RequestReceived
    | ResponseReceived
    | EmptyAckReceived
    | ResetReceived
    | DeliveryFailed
    | PeerFailed
    | MessageIgnored
)
