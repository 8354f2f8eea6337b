"""Observe on the server side (RFC 7641 §3.1-§3.2, §3.6, §4.1-§4.5), sans I/O.

Theory of operation
-------------------
:class:`ObserveServer` sits beside the exchanges, above the message layer it
sends notifications through, and keeps the :class:`ObserveRegistry`.  It
never renders a representation: the application (the asyncio
:class:`~coapkit.server.Server`, or a test) runs the resource's handler and
hands the result in.  Its inputs:

* :meth:`ObserveServer.on_response`: the response to a GET or FETCH request.
  Observe=0 with a 2.xx from an observable resource registers (or renews)
  the observer and gets the resource's current sequence number; Observe=1, a
  non-2.xx response or a resource that cannot be observed removes any
  registration with that token (§3.1, §3.6, §4.1).  When the registry is full
  the response goes back without Observe (§4.1).
* :meth:`ObserveServer.updated`: a resource has a new state; it returns the
  state's sequence number and the observers to render it for.
* :meth:`ObserveServer.notify`: one observer's rendering of that state.  A
  2.xx goes out with the observer's token and the Observe option, CON or NON
  as the registry decides; while a CON notification of this observer awaits
  its ACK the new state waits as ``pending``, replacing whatever waited
  before (§4.5.2), and a NON still waiting in the message layer's backlog
  (NSTART towards that client) is replaced by the new one: an observer has at
  most one notification on its way and one waiting, never a queue.  A state
  older than the one the observer last got (handlers rendering out of order)
  is not sent.  Any
  other code ends the observation: it goes out as a CON without Observe and
  the observer is removed (§4.2).
* :meth:`ObserveServer.on_event`: the fate of a notification: an ACK sends
  the pending state; an RST (§3.6) or no ACK after every retransmission
  (§4.5) removes the observer.
* :meth:`ObserveServer.peer_failed`: the network says a client cannot be
  reached (ICMP port or host unreachable): all its observers are removed at
  once (§4.5), whichever notification the error was about.

Each input takes ``now`` and an ``out`` list for the datagrams to send, and
returns events for the application (:class:`ObserverRemoved`).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from coapkit.codec.codes import Code
from coapkit.codec.message import Message, _make
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.types import MessageType
from coapkit.errors import CoapError
from coapkit.exchanges.events import (
    ResponseAcknowledged,
    ResponseDeliveryFailed,
    ResponseRejected,
)
from coapkit.messaging.records import OutgoingState, Remote
from coapkit.observe.ordering import follows
from coapkit.observe.registry import Observer, ObserveRegistry
from coapkit.reliability import Datagrams, ReliabilityLayer

_OBSERVE = int(OptionNumber.OBSERVE)
_OBSERVABLE_METHODS = (Code.GET, Code.FETCH)
_UNSETTLED = (OutgoingState.QUEUED, OutgoingState.AWAITING_ACK)


@dataclass(frozen=True, slots=True)
class ObserverRemoved:
    """An observer was removed by the server side itself (RST, no ACK, error, send failure)."""

    observer: Observer
    reason: str


NotificationFate = ResponseAcknowledged | ResponseRejected | ResponseDeliveryFailed


class ObserveServer:
    """Registrations, sequence numbers and the sending of notifications.  See the module doc."""

    def __init__(
        self, messaging: ReliabilityLayer, registry: ObserveRegistry | None = None
    ) -> None:
        self.messaging = messaging
        self.registry = registry if registry is not None else ObserveRegistry()

    # -- registration (§3.1, §3.6, §4.1) -----------------------------------------------------

    def on_response(
        self, key: Any, request: Message, remote: Remote, response: Message, now: float
    ) -> Message:
        """The response to send for ``request``, registering or deregistering its sender.

        ``key`` identifies the resource (None: it cannot be observed).
        """
        raw = request.options.get(_OBSERVE)
        if raw is None or request.code not in _OBSERVABLE_METHODS:
            return response
        value = int.from_bytes(raw, "big")
        registry = self.registry
        token = request.token
        if value == 1:
            registry.remove_client(remote, token)
            return response
        if value != 0:
            return response
        if key is None or not 64 <= response.code < 96:
            registry.remove_client(remote, token)
            return response
        observer = registry.register(key, remote, token, request, now)
        if observer is None:
            return response  # full: answered without Observe (§4.1)
        sequence = observer.sequence = registry.current_sequence(key, now)
        return response.replace(options=response.options.replace(observe=sequence))

    # -- notifications (§4.2-§4.5) ---------------------------------------------------------------

    def updated(self, key: Any, now: float | None = None) -> tuple[int, list[Observer]]:
        """A new state of ``key``: its sequence number and the observers to notify
        (``now``: for numbers from the clock, ``ObserveConfig.clock_sequence``)."""
        registry = self.registry
        observers = registry.observers(key)
        if not observers:
            return registry.current_sequence(key), []
        return registry.advance(key, now), observers

    def notify(
        self,
        observer: Observer,
        notification: Message,
        sequence: int,
        now: float,
        out: Datagrams,
        *,
        mtype: MessageType | None = None,
        con_every: int | None = None,
    ) -> list[Any]:
        """Send ``notification`` (the observer's rendering of state ``sequence``).

        ``mtype`` and ``con_every`` are the resource's wishes (None: the registry's policy).
        """
        registry = self.registry
        if not registry.is_registered(observer):
            return []
        options = notification.options
        if not 64 <= notification.code < 96:
            # An error ends the observation: sent without Observe (§3.2, §4.2).
            registry.remove(observer)
            message = _make(
                MessageType.CON,
                notification.code,
                0,
                observer.token,
                options.remove(_OBSERVE),
                notification.payload,
            )
            with suppress(CoapError):
                self._send(observer, message, True, now, out)
            return [ObserverRemoved(observer, f"ended with {notification.code >> 5}.xx")]
        if observer.sequence is not None and not follows(observer.sequence, sequence):
            return []  # an older state rendered late (async handlers): the client has newer
        observer.sequence = sequence
        message = _make(
            MessageType.NON,
            notification.code,
            0,
            observer.token,
            options.replace(observe=sequence),
            notification.payload,
        )
        observer.policy = (mtype, con_every)
        previous = observer.in_flight
        if (
            previous is not None
            and previous.mtype is MessageType.CON
            and previous.state in _UNSETTLED
        ):
            observer.pending = message  # only the newest state waits (§4.5.2)
            return []
        return self._transmit(observer, message, now, out)

    def _transmit(
        self, observer: Observer, message: Message, now: float, out: Datagrams
    ) -> list[Any]:
        mtype, con_every = observer.policy
        registry = self.registry
        previous = observer.in_flight
        if previous is not None and previous.state is OutgoingState.QUEUED:
            # A NON notification still waiting in the message layer's backlog (NSTART
            # towards this client): the new state takes its place, it never queues up.
            self.messaging.cancel(previous, now, out)
            observer.since_con = max(0, observer.since_con - 1)
        confirmable = registry.wants_con(
            observer, now, None if mtype is None else mtype is MessageType.CON, con_every
        )
        try:
            outgoing = self._send(observer, message, confirmable, now, out)
        except CoapError as exc:
            registry.remove(observer)
            return [ObserverRemoved(observer, f"notification not sent: {exc}")]
        registry.note_sent(observer, confirmable, now)
        observer.in_flight = outgoing
        return []

    def _send(
        self, observer: Observer, message: Message, confirmable: bool, now: float, out: Datagrams
    ) -> Any:
        return self.messaging.send(
            message,
            observer.remote,
            now,
            out,
            mtype=MessageType.CON if confirmable else MessageType.NON,
            owner=observer,
            track_reset=True,
        )

    def peer_failed(self, remote: Remote, error: CoapError) -> list[Any]:
        """``remote`` cannot be reached (an ICMP error): its observations end (§4.5)."""
        return [
            ObserverRemoved(observer, f"client unreachable: {error}")
            for observer in self.registry.remove_remote(remote)
        ]

    # -- what became of a notification ---------------------------------------------------------

    def on_event(self, event: NotificationFate, now: float, out: Datagrams) -> list[Any]:
        """A notification sent as CON was acknowledged, or one was rejected or never ACKed."""
        observer = event.owner
        assert isinstance(observer, Observer)
        registry = self.registry
        if isinstance(event, ResponseAcknowledged):
            observer.in_flight = None
            pending, observer.pending = observer.pending, None
            if pending is not None and registry.is_registered(observer):
                return self._transmit(observer, pending, now, out)
            return []
        # RST (§3.6) or no ACK after all retransmissions (§4.5): the client is gone.
        observer.in_flight = None
        if not registry.remove(observer):
            return []
        if isinstance(event, ResponseRejected):
            return [ObserverRemoved(observer, "reset by the client")]
        return [ObserverRemoved(observer, f"notification not acknowledged: {event.error}")]
