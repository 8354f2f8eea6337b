"""The server's observers (RFC 7641 §3-§4), sans I/O.

Theory of operation
-------------------
An :class:`Observer` is one client's registration on one resource: its
remote, its token and the request it registered with (notifications are
rendered as answers to that request, so its query and Accept still apply).
Observers are indexed by resource, by (remote, token) and by remote, all
dicts, so registering, finding and removing are O(1), and removing every
observation of a client that cannot be reached any more costs only its own.

Each resource has its own Observe sequence number: 24 bits, increasing by
one per new state and wrapping, which the client's ordering rule (§3.4,
:mod:`coapkit.observe.ordering`) handles.  With ``clock_sequence`` the
numbers come from the clock instead, as §4.4's implementation note suggests
(ticks of 2**-16 s, so that they advance by less than 2**23 in 128 s): every
process behind a load balancer then numbers its states alike, and a client
that another process takes over after its own went away (the registration
sent again reaches the new one) takes the new process's numbers as newer;
with per-process counters they would look stale to it for up to 128 s.

A notification sent as CON stays *in flight* until acknowledged.  A newer
state that arrives meanwhile replaces the one waiting (§4.5.2: only the
newest matters), so an observer never has a queue, only ``pending``: one
message at most, sent when the in-flight one is acknowledged (a NON still
waiting in the message layer's backlog is replaced the same way; see
:mod:`coapkit.observe.server`).  Whether a
notification is CON: when the resource asks for it, every ``con_every``-th
notification, and at least once every ``con_interval`` so that a vanished
observer is found out.  RFC 7641 §4.5 asks for one at least every 24 hours;
the default is 30 seconds, so that a client that vanished without a trace
(no ICMP error, no RST: a host unplugged, a NAT binding expired) stops
costing notifications within about two minutes at any notification rate:
30 s until the next CON, then at most MAX_TRANSMIT_WAIT (93 s) of
retransmissions.  A client whose socket is closed on a live host is found
out sooner, by the ICMP error its first notification causes
(:meth:`coapkit.observe.server.ObserveServer.peer_failed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coapkit.codec.message import Message
from coapkit.codec.types import MessageType
from coapkit.messaging.records import Remote
from coapkit.observe.ordering import FRESHNESS_WINDOW, MAX_SEQUENCE, follows, next_sequence

#: clock ticks per second of clock-based sequence numbers: 2**23 ticks in 128 s (§4.4)
TICKS_PER_SECOND = 1 << 16


@dataclass(frozen=True, slots=True)
class ObserveConfig:
    max_observers: int = 10_000
    """Observers in total; beyond, a registration is answered without Observe (§4.1)."""
    max_per_remote: int = 64
    """Observers per client endpoint."""
    con_every: int | None = None
    """Make every Nth notification a CON (None: only per resource, or at con_interval)."""
    con_interval: float = 30.0
    """A CON notification at least this often (RFC 7641 §4.5 requires 24 h at most; a
    short interval finds a vanished observer sooner, see the module doc)."""
    clock_sequence: bool = False
    """Number states by the clock, so that processes behind a load balancer number them
    alike (see the module doc); their clocks must agree to well under a second."""
    clock_offset: float = 0.0
    """Added to the endpoint's time to read that clock (the :class:`~coapkit.server.Server`
    sets it to wall-clock time minus its loop's clock)."""


class Observer:
    """One observation of one resource by one client."""

    __slots__ = (
        "created",
        "in_flight",
        "key",
        "last_con_at",
        "pending",
        "policy",
        "remote",
        "request",
        "sequence",
        "since_con",
        "token",
    )

    def __init__(
        self, key: Any, remote: Remote, token: bytes, request: Message, now: float
    ) -> None:
        self.key = key  #: what is observed (the resource object)
        self.remote = remote
        self.token = token
        self.request = request  #: the registration request, to render notifications for
        self.created = now
        #: the last notification sent (an Outgoing); while a CON awaits its ACK, the next waits
        self.in_flight: Any = None
        self.pending: Message | None = None  #: the newest state waiting for in_flight
        self.sequence: int | None = None  #: the newest state given to this observer
        self.last_con_at = now
        self.since_con = 0
        #: the resource's wishes for the pending notification: (message type, CON every Nth)
        self.policy: tuple[MessageType | None, int | None] = (None, None)

    def __repr__(self) -> str:
        return f"<Observer {self.token.hex()} from {self.remote!r}>"


class ObserveRegistry:
    """Who observes what; sequence numbers; CON or NON for the next notification."""

    def __init__(self, config: ObserveConfig | None = None) -> None:
        self.config = config or ObserveConfig()
        self._by_key: dict[Any, dict[tuple[Remote, bytes], Observer]] = {}
        self._by_client: dict[tuple[Remote, bytes], Observer] = {}
        self._by_remote: dict[Remote, dict[bytes, Observer]] = {}
        self._sequences: dict[Any, int] = {}
        #: when each clock-based number was given (clock_sequence)
        self._stamped: dict[Any, float] = {}

    def __len__(self) -> int:
        return len(self._by_client)

    def count_for(self, remote: Remote) -> int:
        mine = self._by_remote.get(remote)
        return 0 if mine is None else len(mine)

    def count_of(self, key: Any) -> int:
        """How many observers ``key`` has."""
        mine = self._by_key.get(key)
        return 0 if mine is None else len(mine)

    def observers(self, key: Any) -> list[Observer]:
        return list(self._by_key.get(key, {}).values())

    def find(self, remote: Remote, token: bytes) -> Observer | None:
        return self._by_client.get((remote, token))

    def register(
        self, key: Any, remote: Remote, token: bytes, request: Message, now: float
    ) -> Observer | None:
        """Add (or renew, for the same remote and token) a registration; None when full."""
        existing = self._by_client.get((remote, token))
        if existing is not None:
            self.remove(existing)
        elif (
            len(self._by_client) >= self.config.max_observers
            or self.count_for(remote) >= self.config.max_per_remote
        ):
            return None
        observer = Observer(key, remote, token, request, now)
        self._by_client[(remote, token)] = observer
        self._by_key.setdefault(key, {})[(remote, token)] = observer
        self._by_remote.setdefault(remote, {})[token] = observer
        return observer

    def remove(self, observer: Observer) -> bool:
        """Forget an observer; False if it was not registered (any more)."""
        client = (observer.remote, observer.token)
        if self._by_client.get(client) is not observer:
            return False
        del self._by_client[client]
        observers = self._by_key.get(observer.key)
        if observers is not None:
            observers.pop(client, None)
            if not observers:
                del self._by_key[observer.key]
        mine = self._by_remote.get(observer.remote)
        if mine is not None:
            mine.pop(observer.token, None)
            if not mine:
                del self._by_remote[observer.remote]
        observer.pending = None
        return True

    def remove_remote(self, remote: Remote) -> list[Observer]:
        """Forget every observation ``remote`` holds (it cannot be reached any more)."""
        mine = self._by_remote.get(remote)
        if not mine:
            return []
        observers = list(mine.values())
        for observer in observers:
            self.remove(observer)
        return observers

    def remove_client(self, remote: Remote, token: bytes) -> Observer | None:
        observer = self._by_client.get((remote, token))
        if observer is not None:
            self.remove(observer)
        return observer

    def remove_key(self, key: Any) -> list[Observer]:
        """Forget every observer of ``key`` (e.g. the resource was deleted)."""
        observers = self.observers(key)
        for observer in observers:
            self.remove(observer)
        self._sequences.pop(key, None)
        self._stamped.pop(key, None)
        return observers

    def is_registered(self, observer: Observer) -> bool:
        return self._by_client.get((observer.remote, observer.token)) is observer

    # -- sequence numbers and message types --------------------------------------------

    def current_sequence(self, key: Any, now: float | None = None) -> int:
        """The sequence number of the current state of ``key`` (for a registration response).

        With ``clock_sequence`` and ``now``, a fresh number from the clock: the client
        may have numbers from another process, and the state it registers for is the
        newest there is."""
        if now is not None and self.config.clock_sequence:
            return self.advance(key, now)
        sequence = self._sequences.get(key)
        if sequence is None:
            sequence = self._sequences[key] = 2  # 0 and 1 look like register/deregister
        return sequence

    def advance(self, key: Any, now: float | None = None) -> int:
        """A new state of ``key``: its next sequence number (24 bits, wrapping); with
        ``clock_sequence`` and ``now``, the clock's, unless that would not come after the
        number given last (twice within one tick)."""
        previous = self._sequences.get(key)
        if now is not None and self.config.clock_sequence:
            clock = int((now + self.config.clock_offset) * TICKS_PER_SECOND) % MAX_SEQUENCE
            if (
                previous is None
                or follows(previous, clock)
                or now - self._stamped.get(key, now) > FRESHNESS_WINDOW
            ):
                sequence = clock
            else:
                sequence = next_sequence(previous)
            self._stamped[key] = now
        else:
            sequence = next_sequence(2 if previous is None else previous)
        self._sequences[key] = sequence
        return sequence

    def set_sequence(self, key: Any, sequence: int) -> None:
        """Start ``key`` at a given number (tests of wrap-around, restarts)."""
        self._sequences[key] = sequence % (1 << 24)

    def wants_con(
        self, observer: Observer, now: float, resource_con: bool | None, con_every: int | None
    ) -> bool:
        """Whether the next notification to ``observer`` must be confirmable."""
        if resource_con is not None and resource_con:
            return True
        every = con_every if con_every is not None else self.config.con_every
        if every is not None and observer.since_con + 1 >= every:
            return True
        return now - observer.last_con_at >= self.config.con_interval

    def note_sent(self, observer: Observer, confirmable: bool, now: float) -> None:
        if confirmable:
            observer.since_con = 0
            observer.last_con_at = now
        else:
            observer.since_con += 1
