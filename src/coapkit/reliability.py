"""What the exchange, block-wise and Observe layers need from the layer below them.

Two layers provide it (docs/architecture.md, "Two reliability layers"):

* :class:`~coapkit.messaging.layer.MessageLayer`, RFC 7252's message layer
  for datagrams (UDP, later DTLS): message types, message IDs, ACKs,
  retransmission, deduplication;
* :class:`~coapkit.connections.layer.ConnectionLayer`, RFC 8323's connection
  layer for byte streams and WebSockets (TCP, TLS): framing, CSM, Ping/Pong,
  Release/Abort, and nothing to acknowledge or repeat.

An :class:`~coapkit.endpoint.Endpoint` is built on one of them, chosen at
construction; the layers above talk to it through this protocol only.  Both
hand up the events of :mod:`coapkit.messaging.events` and work on the
:class:`~coapkit.messaging.records.Inbound` / ``Outgoing`` records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from coapkit.codec.message import Message, ResponseParts
from coapkit.codec.types import MessageType
from coapkit.connections.layer import ConnectionEvent
from coapkit.errors import CoapError
from coapkit.messaging.events import MessagingEvent
from coapkit.messaging.parameters import TransmissionParameters
from coapkit.messaging.records import Inbound, Outgoing, Remote

Datagrams = list[tuple[bytes, Remote]]
#: what either layer hands up
LayerEvent = MessagingEvent | ConnectionEvent


class LayerConfig(Protocol):
    @property
    def max_message_size(self) -> int: ...

    @property
    def backlog_limit(self) -> int: ...


class ReliabilityLayer(Protocol):
    """The layer under the exchanges: one per endpoint, for all of its peers."""

    @property
    def reliable(self) -> bool:
        """True when delivery needs no acknowledgement (a stream): a request counts as
        acknowledged once sent."""

    @property
    def closed(self) -> bool: ...

    @property
    def params(self) -> TransmissionParameters: ...

    @property
    def config(self) -> LayerConfig: ...

    @property
    def stats(self) -> Any: ...

    def parameters_for(self, remote: Remote) -> TransmissionParameters: ...

    def backlog(self, remote: Remote) -> int: ...

    def outstanding(self, remote: Remote) -> int: ...

    def receive(
        self, data: bytes, remote: Remote, now: float, out: Datagrams, *, multicast: bool = False
    ) -> Sequence[LayerEvent]: ...

    def accept_request(
        self, data: bytes, remote: Remote, now: float, options: Any
    ) -> Inbound | None: ...

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
    ) -> Outgoing: ...

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
    ) -> Outgoing | None: ...

    def respond_now(
        self, inbound: Inbound, response: ResponseParts, now: float
    ) -> bytes | None: ...

    def accept(self, inbound: Inbound, out: Datagrams) -> None: ...

    def reject(self, inbound: Inbound, out: Datagrams) -> None: ...

    def cancel(self, outgoing: Outgoing, now: float, out: Datagrams) -> None: ...

    def next_deadline(self) -> float | None: ...

    def handle_timeout(self, now: float, out: Datagrams) -> Sequence[LayerEvent]: ...

    def network_error(
        self, remote: Remote, error: CoapError, now: float, out: Datagrams
    ) -> Sequence[LayerEvent]: ...

    def message_failed(
        self, remote: Remote, mid: int, error: CoapError, now: float, out: Datagrams
    ) -> Sequence[LayerEvent]: ...

    def shutdown(self, now: float) -> Sequence[LayerEvent]: ...
