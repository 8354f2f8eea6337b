"""The records the message layer hands out: one per message received and one per message sent.

An :class:`Inbound` stands for a CON or NON message that arrived and may need
an answer (a piggybacked response, an empty ACK, or an RST).  An
:class:`Outgoing` stands for a CON or NON message this endpoint sends; the
layer above gets it back in every event about that message.  Both are plain
slotted records: the layer above may read them and may set ``owner`` on an
Outgoing to find its own state again, but only the message layer changes them.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from coapkit.codec.message import Message
from coapkit.codec.types import MessageType

if TYPE_CHECKING:
    from coapkit.messaging.parameters import TransmissionParameters
    from coapkit.messaging.peers import Peer

Remote = Hashable
"""Whatever the transport uses as a peer address, e.g. ``("192.0.2.1", 5683)``."""


class InboundState(IntEnum):
    PENDING = 0  #: nothing sent back yet
    ACKED = 1  #: an empty ACK went back; the response will be separate
    DONE = 2  #: answered (piggybacked, separately, with an RST, or on purpose not at all)


class Inbound:
    """A received CON or NON message that the layer above still has to answer or accept."""

    __slots__ = (
        "message",
        "mid",
        "mtype",
        "multicast",
        "peer",
        "received_at",
        "remote",
        "size",
        "state",
        "withheld",
    )

    def __init__(
        self, message: Message, peer: Peer, received_at: float, multicast: bool, size: int = 0
    ) -> None:
        self.message = message
        self.size = size  #: bytes of the datagram (anti-amplification limits depend on it)
        self.peer = peer
        self.remote: Remote = peer.remote
        self.mid = message.mid
        self.mtype = message.mtype
        self.received_at = received_at
        self.multicast = multicast
        self.state = InboundState.PENDING
        #: the code of a response the amplification defence replaced by a 4.01 Echo
        #: challenge (0: none), for the request log
        self.withheld = 0

    @property
    def confirmable(self) -> bool:
        return self.mtype is MessageType.CON

    def __repr__(self) -> str:
        return f"<Inbound {self.mtype.name} mid={self.mid} from {self.remote!r} {self.state.name}>"


class OutgoingState(IntEnum):
    QUEUED = 0  #: waiting in the peer's backlog (NSTART, or no free message ID)
    AWAITING_ACK = 1  #: a CON on the wire, retransmitted until ACK/RST or give-up
    SENT = 2  #: a NON on the wire (nothing more to do at this layer)
    ACKNOWLEDGED = 3  #: ACK received for the CON
    RESET = 4  #: RST received
    FAILED = 5  #: retransmissions exceeded, network error, cancelled or shut down


class Outgoing:
    """A CON or NON message this endpoint sends, from the backlog until it is done."""

    __slots__ = (
        "attempts",
        "backoff",
        "data",
        "due",
        "message",
        "mid",
        "mtype",
        "owner",
        "params",
        "peer",
        "remote",
        "sent_at",
        "state",
        "timeout",
        "track_reset",
    )

    def __init__(
        self,
        message: Message,
        peer: Peer,
        mtype: MessageType,
        params: TransmissionParameters,
        owner: Any,
        track_reset: bool,
    ) -> None:
        self.message = message
        self.peer = peer
        self.remote: Remote = peer.remote
        self.mtype = mtype
        self.params = params
        self.owner = owner
        self.track_reset = track_reset
        self.state = OutgoingState.QUEUED
        self.mid = -1
        self.data = b""
        self.attempts = 0  #: transmissions so far (1 after the first send)
        self.timeout = 0.0  #: the current retransmission interval
        self.due = 0.0  #: when the next retransmission (or give-up) is due
        self.sent_at = 0.0  #: when it was first transmitted (round-trip samples)
        self.backoff = 2.0  #: what each retransmission multiplies the timeout by

    @property
    def confirmable(self) -> bool:
        return self.mtype is MessageType.CON

    @property
    def finished(self) -> bool:
        return self.state >= OutgoingState.ACKNOWLEDGED or self.state is OutgoingState.SENT

    def __repr__(self) -> str:
        return f"<Outgoing {self.mtype.name} mid={self.mid} to {self.remote!r} {self.state.name}>"
