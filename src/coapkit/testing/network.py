"""A seeded simulated network that drives sans-I/O CoAP nodes in virtual time.

Theory of operation
-------------------
Nodes are attached at addresses.  A node is anything with the three methods
of :class:`SimNode` (a :class:`~coapkit.messaging.MessageLayer` wrapped in
:class:`MessageLayerNode`, or a whole endpoint): it is handed datagrams and
timeouts and returns the datagrams it wants sent.  The network keeps one
event queue ordered by (virtual time, sequence number):

* a *delivery* hands a datagram to its destination node;
* a *timer* calls ``handle_timeout`` on a node when the deadline it last
  announced through ``next_deadline()`` comes (a stale one is skipped);
* a *call* runs a test's callback at a given time (e.g. "client sends now").

Each datagram sent over a link is subject to that link's conditions: it is
lost with probability ``loss`` (or when its 1-based number on the link is in
``drop``), duplicated with probability ``duplicate``, and delivered after
``latency`` plus a uniform random ``jitter`` (which reorders).  All the
randomness comes from one :class:`random.Random` seeded at construction, so a
seed gives a byte-identical :attr:`SimulatedNetwork.trace`.

A datagram that reaches an address nobody holds is dropped (``unroutable``).
With ``port_unreachable=True`` the sender is also told, as a host's ICMP
"port unreachable" tells it (RFC 1122 §3.2.2.1), after the return link's
latency: a node with an ``error_received`` method gets the error (an
:class:`EndpointNode` hands it to :meth:`Endpoint.network_error
<coapkit.endpoint.Endpoint.network_error>`, which fails the exchanges and
observations of that peer at once instead of after 93 s of retransmissions).
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import inspect
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.errors import NetworkError
from coapkit.messaging.addresses import describe_remote
from coapkit.messaging.events import MessagingEvent
from coapkit.messaging.layer import Datagrams, MessageLayer
from coapkit.messaging.records import Remote
from coapkit.testing.clock import VirtualClock

logger = logging.getLogger("coapkit.testing")


class SimNode(Protocol):
    """What the simulated network needs from a node."""

    def datagram_received(
        self, data: bytes, remote: Remote, now: float, multicast: bool = False
    ) -> Sequence[tuple[bytes, Remote]]: ...

    def handle_timeout(self, now: float) -> Sequence[tuple[bytes, Remote]]: ...

    def next_deadline(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class LinkConditions:
    """How one direction of a link treats datagrams."""

    latency: float = 0.005
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    drop: frozenset[int] = field(default_factory=frozenset)
    """1-based numbers of datagrams on this link that are always lost (deterministic loss)."""

    def __post_init__(self) -> None:
        if not (0 <= self.loss <= 1 and 0 <= self.duplicate <= 1):
            raise ValueError("loss and duplicate are probabilities in [0, 1]")
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter cannot be negative")


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """What happened to a datagram: ``sent``, ``lost``, ``delivered`` or ``unroutable``;
    ``unreachable`` when the error for an unroutable one reached its sender (``src`` is
    the address nobody holds, ``data`` the start of the datagram)."""

    time: float
    event: str
    src: Remote
    dst: Remote
    data: bytes


_DELIVER, _TIMER, _CALL, _UNREACHABLE = 0, 1, 2, 3
#: bytes of an unroutable datagram quoted back to its sender (header and token)
ERROR_HEAD = 64


class SimulatedNetwork:
    """Nodes, links and one virtual clock.  See the module docstring."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: VirtualClock | None = None,
        conditions: LinkConditions | None = None,
        keep_trace: bool = True,
        port_unreachable: bool = False,
    ) -> None:
        self.clock = clock or VirtualClock()
        #: tell the sender of a datagram nobody receives (see the module docstring)
        self.port_unreachable = port_unreachable
        self.rng = random.Random(seed)
        self.default_conditions = conditions or LinkConditions()
        self.nodes: dict[Remote, SimNode] = {}
        self.trace: list[TraceEntry] = []
        self.keep_trace = keep_trace
        self.delivered = 0
        self.lost = 0
        self._links: dict[tuple[Remote, Remote], LinkConditions] = {}
        self._link_counts: dict[tuple[Remote, Remote], int] = {}
        self._groups: dict[Remote, list[Remote]] = {}
        self._queue: list[tuple[float, int, int, Any]] = []
        self._timers: dict[Remote, float] = {}
        self._seq = 0

    @property
    def now(self) -> float:
        return self.clock.now

    # -- topology -----------------------------------------------------------------------

    def attach(self, address: Remote, node: SimNode) -> None:
        """Put ``node`` at ``address``; a node with an ``attached(network, address)``
        method is told where it is (so that it can send later, see :class:`EndpointNode`)."""
        self.nodes[address] = node
        told = getattr(node, "attached", None)
        if told is not None:
            told(self, address)
        self.rearm(address)

    def detach(self, address: Remote) -> None:
        """Take the node at ``address`` off the network, and out of its multicast groups."""
        self.nodes.pop(address, None)
        self._timers.pop(address, None)
        for members in self._groups.values():
            while address in members:
                members.remove(address)

    def join(self, address: Remote, group: Remote) -> None:
        """Deliver datagrams sent to ``group`` to the node at ``address`` too (multicast)."""
        self._groups.setdefault(group, []).append(address)

    def set_link(self, src: Remote, dst: Remote, conditions: LinkConditions) -> None:
        """Conditions for datagrams from ``src`` to ``dst`` (one direction)."""
        self._links[(src, dst)] = conditions

    def set_link_both(self, a: Remote, b: Remote, conditions: LinkConditions) -> None:
        self.set_link(a, b, conditions)
        self.set_link(b, a, conditions)

    # -- driving ------------------------------------------------------------------------------

    def _push(self, when: float, kind: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, kind, payload))

    def transmit(self, src: Remote, datagrams: Iterable[tuple[bytes, Remote]]) -> None:
        """Put datagrams sent by ``src`` on the wire, subject to link conditions."""
        now = self.clock.now
        for data, dst in datagrams:
            targets = self._groups.get(dst)
            if targets is not None:
                for target in targets:
                    if target != src:
                        self._send_one(src, target, data, now, multicast=True)
            else:
                self._send_one(src, dst, data, now, multicast=False)

    def _send_one(self, src: Remote, dst: Remote, data: bytes, now: float, multicast: bool) -> None:
        key = (src, dst)
        conditions = self._links.get(key, self.default_conditions)
        number = self._link_counts.get(key, 0) + 1
        self._link_counts[key] = number
        self._record(now, "sent", src, dst, data)
        rng = self.rng
        if number in conditions.drop or (conditions.loss and rng.random() < conditions.loss):
            self.lost += 1
            self._record(now, "lost", src, dst, data)
            return
        copies = 2 if conditions.duplicate and rng.random() < conditions.duplicate else 1
        for _ in range(copies):
            delay = conditions.latency + (
                rng.random() * conditions.jitter if conditions.jitter else 0
            )
            self._push(now + delay, _DELIVER, (src, dst, data, multicast))

    def _record(self, now: float, event: str, src: Remote, dst: Remote, data: bytes) -> None:
        if self.keep_trace:
            self.trace.append(TraceEntry(now, event, src, dst, data))

    def rearm(self, address: Remote) -> None:
        """Re-read a node's deadline (call after acting on a node from outside the network)."""
        node = self.nodes.get(address)
        if node is None:
            return
        deadline = node.next_deadline()
        if deadline is None:
            self._timers.pop(address, None)
        elif self._timers.get(address) != deadline:
            self._timers[address] = deadline
            self._push(max(deadline, self.clock.now), _TIMER, (address, deadline))

    def call_at(
        self,
        when: float,
        address: Remote,
        action: Callable[[float], Iterable[tuple[bytes, Remote]] | None],
    ) -> None:
        """At ``when``, run ``action(now)`` on behalf of the node at ``address``.

        Whatever datagrams it returns are sent from ``address``, and the node's
        deadline is re-read afterwards.
        """
        self._push(when, _CALL, (address, action))

    def step(self) -> bool:
        """Process the next event; False when there is none."""
        if not self._queue:
            return False
        when, _, kind, payload = heapq.heappop(self._queue)
        self.clock.advance_to(max(when, self.clock.now))
        now = self.clock.now
        if kind == _DELIVER:
            src, dst, data, multicast = payload
            node = self.nodes.get(dst)
            if node is None:
                self._record(now, "unroutable", src, dst, data)
                if self.port_unreachable and not multicast and src in self.nodes:
                    back = self._links.get((dst, src), self.default_conditions)
                    self._push(now + back.latency, _UNREACHABLE, (src, dst, data[:ERROR_HEAD]))
                return True
            self.delivered += 1
            self._record(now, "delivered", src, dst, data)
            self.transmit(dst, node.datagram_received(data, src, now, multicast))
            self.rearm(dst)
        elif kind == _TIMER:
            address, deadline = payload
            node = self.nodes.get(address)
            if node is None or self._timers.get(address) != deadline:
                return True
            del self._timers[address]
            self.transmit(address, node.handle_timeout(now))
            self.rearm(address)
        elif kind == _CALL:
            address, action = payload
            result = action(now)
            if result:
                self.transmit(address, result)
            self.rearm(address)
        else:
            address, unreachable, head = payload
            node = self.nodes.get(address)
            report = getattr(node, "error_received", None)
            if report is None:
                return True
            self._record(now, "unreachable", unreachable, address, head)
            error = NetworkError(
                f"{describe_remote(unreachable)}: port unreachable (simulated ICMP): "
                "nothing listens there",
                errno=errno.ECONNREFUSED,
            )
            self.transmit(address, report(unreachable, error, now, head))
            self.rearm(address)
        return True

    def next_event_time(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def run_until(self, when: float) -> None:
        """Process every event up to and including time ``when``, then set the clock to it."""
        while self._queue and self._queue[0][0] <= when:
            self.step()
        if when > self.clock.now:
            self.clock.advance_to(when)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.clock.now + seconds)

    def run_until_quiet(self, limit: float) -> None:
        """Run until no event is left or virtual time ``limit`` is reached."""
        while self._queue and self._queue[0][0] <= limit:
            self.step()

    def sent_between(self, src: Remote, dst: Remote) -> list[TraceEntry]:
        """Trace entries of the datagrams ``src`` sent to ``dst``."""
        return [e for e in self.trace if e.event == "sent" and e.src == src and e.dst == dst]

    def trace_lines(self, *, details: bool = False) -> list[str]:
        """The trace for people: each datagram sent, as ``coapkit -v`` shows it
        (:class:`~coapkit.trace.DatagramTrace`, times in virtual seconds, repeats
        marked per sender), ``LOST`` after those the link lost, and a ``!`` line for
        each "port unreachable" that reached a sender.  ``details``: options and
        payloads too."""
        from coapkit.trace import DatagramTrace, show_remote

        clock = VirtualClock()  # from 0, set to each datagram's time in turn
        traces: dict[Remote, DatagramTrace] = {}
        lines: list[str] = []
        entries = self.trace
        for index, entry in enumerate(entries):
            if entry.event == "unreachable":
                lines.append(
                    f"! port unreachable  from {show_remote(entry.src)}  to "
                    f"{show_remote(entry.dst)}  (+{entry.time:.3f} s)"
                )
            if entry.event != "sent":
                continue
            trace = traces.get(entry.src)
            if trace is None:
                clock.now = 0.0
                trace = traces[entry.src] = DatagramTrace(clock)
            clock.now = entry.time
            shown = trace.lines("send", entry.data, entry.dst)
            following = entries[index + 1] if index + 1 < len(entries) else None
            if (
                following is not None
                and following.event == "lost"
                and (following.time, following.src, following.dst, following.data)
                == (entry.time, entry.src, entry.dst, entry.data)
            ):
                shown[0] += "  LOST"
            lines.extend(shown if details else shown[:1])
        return lines


EventHandler = Callable[["MessageLayerNode", MessagingEvent, float, Datagrams], None]


class MessageLayerNode:
    """A :class:`MessageLayer` as a simulated node.

    Every event the layer returns is appended to :attr:`events` as
    ``(time, event)`` and passed to ``on_event(node, event, now, out)``, which
    may act on the layer (respond, accept...) and append datagrams to ``out``.
    """

    def __init__(self, layer: MessageLayer, on_event: EventHandler | None = None) -> None:
        self.layer = layer
        self.on_event = on_event
        self.events: list[tuple[float, MessagingEvent]] = []

    def _dispatch(self, events: list[MessagingEvent], now: float, out: Datagrams) -> None:
        for event in events:
            self.events.append((now, event))
            if self.on_event is not None:
                self.on_event(self, event, now, out)

    def datagram_received(
        self, data: bytes, remote: Remote, now: float, multicast: bool = False
    ) -> Datagrams:
        out: Datagrams = []
        self._dispatch(self.layer.receive(data, remote, now, out, multicast=multicast), now, out)
        return out

    def handle_timeout(self, now: float) -> Datagrams:
        out: Datagrams = []
        self._dispatch(self.layer.handle_timeout(now, out), now, out)
        return out

    def next_deadline(self) -> float | None:
        return self.layer.next_deadline()

    def events_of(self, kind: type[Any]) -> list[Any]:
        """The events of one type, without their times."""
        return [event for _, event in self.events if isinstance(event, kind)]


AppHandler = Callable[["EndpointNode", Any, float], Any]


class EndpointNode:
    """A sans-I/O :class:`~coapkit.endpoint.Endpoint` as a simulated node.

    Every event is appended to :attr:`events` as ``(time, event)``.  For each
    :class:`~coapkit.exchanges.events.IncomingRequest`, ``app(node, event, now)``
    is called; if it returns a :class:`~coapkit.codec.message.Message` that is
    sent as the response at once (so it is piggybacked), ``None`` means the
    application answers later, e.g. with ``network.call_at`` and :meth:`respond`.

    ``app`` may also return an awaitable of the message (what an ``async def``
    handler gives).  When an event loop drives the network (a
    :class:`~coapkit.testing.VirtualNetwork`, or
    :meth:`VirtualEventLoop.drive <coapkit.testing.VirtualEventLoop.drive>`), it
    runs as a task and the response goes out when it is done; a request not
    answered within ``empty_ack_delay`` gets an empty ACK first and then a
    separate response, as from the real server (RFC 7252 §5.2.2).  A handler
    that raises is answered 5.00.  Without a loop, a coroutine that finishes
    without waiting for anything is answered at once, and one that waits raises
    :class:`TypeError`: nothing could ever wake it.
    """

    def __init__(self, endpoint: Any, app: AppHandler | None = None) -> None:
        self.endpoint = endpoint
        self.app = app
        self.events: list[tuple[float, Any]] = []
        #: where the node was attached (see :meth:`SimulatedNetwork.attach`)
        self.network: SimulatedNetwork | None = None
        self.address: Remote | None = None
        #: answers being awaited on the event loop (held here: the loop keeps weak references)
        self.pending: set[asyncio.Future[Any]] = set()

    def attached(self, network: SimulatedNetwork, address: Remote) -> None:
        self.network, self.address = network, address

    def _consume(self, output: Any, now: float) -> list[tuple[bytes, Remote]]:
        from coapkit.exchanges.events import IncomingRequest

        datagrams: list[tuple[bytes, Remote]] = list(output.datagrams)
        for event in output.events:
            self.events.append((now, event))
            if isinstance(event, IncomingRequest) and self.app is not None:
                response = self.app(self, event, now)
                if response is not None and inspect.isawaitable(response):
                    response = self._await(event.handle, response)
                if response is not None:
                    datagrams.extend(self.endpoint.respond(event.handle, response, now).datagrams)
        return datagrams

    def _await(self, handle: Any, pending: Any) -> Any:
        """The response now if ``pending`` can give it now, else ``None`` and it is sent
        when the task awaiting it on the running loop is done."""
        network = self.network
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        drives = getattr(loop, "drives", None)
        if loop is None or network is None or drives is None or not drives(network):
            return _answer_at_once(pending)
        task = asyncio.ensure_future(pending, loop=loop)
        self.pending.add(task)
        task.add_done_callback(lambda done: self._answer_later(handle, done))
        return None

    def _answer_later(self, handle: Any, task: asyncio.Future[Any]) -> None:
        self.pending.discard(task)
        network, address = self.network, self.address
        if task.cancelled() or network is None or address is None:
            return
        error = task.exception()
        if error is not None:
            logger.error("the request handler failed", exc_info=error)
            response = Message(code=Code.INTERNAL_SERVER_ERROR)
        else:
            response = task.result()
        network.call_at(network.now, address, lambda now: self.respond(handle, response, now))

    def datagram_received(
        self, data: bytes, remote: Remote, now: float, multicast: bool = False
    ) -> list[tuple[bytes, Remote]]:
        return self._consume(
            self.endpoint.datagram_received(data, remote, now, multicast=multicast), now
        )

    def error_received(
        self, remote: Remote, error: NetworkError, now: float, head: bytes = b""
    ) -> list[tuple[bytes, Remote]]:
        """The network reports ``error`` for ``remote`` (see ``port_unreachable``)."""
        return self._consume(self.endpoint.network_error(remote, error, now, head), now)

    def handle_timeout(self, now: float) -> list[tuple[bytes, Remote]]:
        return self._consume(self.endpoint.handle_timeout(now), now)

    def next_deadline(self) -> float | None:
        deadline: float | None = self.endpoint.next_deadline()
        return deadline

    def request(self, message: Any, remote: Remote, now: float, **kwargs: Any) -> Any:
        """Start a request; returns ``(handle, datagrams)`` (send them with ``transmit``)."""
        handle, output = self.endpoint.request(message, remote, now, **kwargs)
        return handle, self._consume(output, now)

    def respond(self, handle: Any, response: Any, now: float) -> list[tuple[bytes, Remote]]:
        return self._consume(self.endpoint.respond(handle, response, now), now)

    def events_of(self, kind: type[Any]) -> list[Any]:
        return [event for _, event in self.events if isinstance(event, kind)]


def _answer_at_once(pending: Any) -> Any:
    """Run a coroutine that needs nothing from an event loop to its result, now."""
    if inspect.iscoroutine(pending):
        try:
            pending.send(None)
        except StopIteration as done:
            return done.value
        pending.close()
    raise TypeError(
        "an async handler awaited something, and no event loop runs this network to wake "
        "it: run it on a coapkit.testing.VirtualNetwork, or drive the network from a "
        "coapkit.testing.VirtualEventLoop"
    )


def serve_site(site: Any) -> AppHandler:
    """An :class:`EndpointNode` ``app`` that answers requests with a :class:`~coapkit.Site`.

    Your resources then run in virtual time as the asyncio
    :class:`~coapkit.server.Server` would run them, ``async def`` handlers
    included (see :class:`EndpointNode` for when those are answered).  Observe
    registration is the server's work: to simulate Observe, run the real
    ``Server`` on a :class:`~coapkit.testing.VirtualNetwork`.
    """
    from coapkit.resources.request import Request
    from coapkit.resources.response import Response

    async def later(pending: Any, token: bytes) -> Message:
        response: Response = await pending
        return response.to_message(token)

    def app(node: EndpointNode, event: Any, now: float) -> Any:
        result = site.dispatch(Request(event.request, event.remote, event.handle))
        if isinstance(result, Response):
            return result.to_message(event.request.token)
        return later(result, event.request.token)

    return app
