"""The DTLS session layer: one DTLS session per peer address, between UDP and the message layer.

RFC 7252 §9.1 (CoAP over DTLS), RFC 6347 (DTLS 1.2): §4.2.1 (the cookie
exchange), §4.2.4 (retransmission), §4.2.8 (a new ClientHello from a known
address), §4.1.2.7 (invalid records discarded silently).

Theory of operation
-------------------
The layer is sans I/O.  :meth:`DtlsLayer.receive` takes a datagram from a
remote and returns what to send back (handshake flights, alerts, a
HelloVerifyRequest), the plaintexts for the message layer and events;
:meth:`DtlsLayer.seal` turns the message layer's datagrams into ciphertext;
:meth:`DtlsLayer.handle_timeout` runs retransmissions, handshake timeouts
and idle timeouts at :meth:`DtlsLayer.next_deadline`, which the endpoint
folds into its own (docs/architecture.md rule 2).  The cryptography of each
session is an *engine*'s (:mod:`coapkit.dtls.engine`).

*Routing.*  A session is found by the address of its peer: the endpoint is
one socket, so (remote, local) is the remote.  :meth:`DtlsLayer.route` is
the one place that decides it; a connection-ID engine (RFC 9146) would
route ``tls12_cid`` records by their ID there.  Today those are dropped.

*Server.*  A ClientHello from an address without a session, or without a
valid cookie, gets a HelloVerifyRequest made from the hello and a secret
(:mod:`coapkit.dtls.cookies`) and nothing is stored: a flood of
ClientHellos from spoofed addresses costs one HMAC each and leaves no
state.  A ClientHello that returns a valid cookie proves its source's
address; only then does an engine session exist, if the limits allow:
``max_handshakes`` handshakes in progress, ``max_sessions`` sessions in
all.  Any other record from an address without a session is dropped.

*Client.*  The first datagram the message layer sends to a remote without
a session starts a handshake, with the credentials and server name the
client gave for that remote (:meth:`DtlsLayer.expect`); the message
layer's datagrams wait for it (``max_waiting``, retransmissions of the
same message kept once) and go out, encrypted, when it completes.  A
failed handshake is a :class:`SessionEnded` whose error fails the
requests towards that remote.

*Retransmission* (§4.2.4): after each flight it sends, the layer waits
``initial_timeout`` (1 s), doubling up to ``max_timeout`` (60 s) at each
retransmission, until the peer's next flight arrives or
``handshake_timeout`` ends the handshake.  The timer is the layer's, on
the endpoint's clock; the engine retransmits with fresh record numbers when
its own clock agrees, and otherwise the layer resends the flight as first
sent (a receiver that already had it drops the copy as a replay, which is
harmless: it is waiting for our next flight, not for this one).  The side
that sends the last flight of a handshake does not time it out: it resends
it when the peer repeats its own last flight, recognised by records of
epoch 0 after the session is established (and, on a server, by a repeated
ClientHello during the handshake).

*Sessions end* when the peer sends close_notify or a fatal alert, after
``idle_timeout`` without traffic (with a close_notify from us), when a new
handshake from the same address completes its cookie exchange (§4.2.8:
the old session ends then, not before), on :meth:`close` and
:meth:`close_all`, and when their handshake fails or times out.

Timers: one heap of (deadline, session) with lazy cancellation; a session's
next deadline only moves later with traffic, so traffic costs no heap
operation (docs/architecture.md rule 7).
"""

from __future__ import annotations

import contextlib
import heapq
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from coapkit.dtls.cookies import CookieJar
from coapkit.dtls.engine import ClientEngine, EngineSession, EngineStep, PeerIdentity, ServerEngine
from coapkit.dtls.events import (
    DatagramDropped,
    DtlsEvent,
    SessionEnded,
    SessionEstablished,
    SessionRefused,
)
from coapkit.dtls.records import (
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    HEADER_LENGTH,
    TLS12_CID,
    RecordHeader,
    hello_verify_request,
    is_client_hello,
    parse_client_hello,
    split_records,
)
from coapkit.errors import DtlsError, ProtocolUsageError
from coapkit.randomness import RandomSource

Remote = Hashable
Datagrams = list[tuple[bytes, Remote]]

#: remotes whose expected server name and credentials are remembered (client)
TARGETS_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class DtlsConfig:
    """Limits and timers of a DTLS endpoint (docs/architecture.md rule 10)."""

    max_sessions: int = 10_000
    """Sessions in all, established or in their handshake; a ClientHello (with a valid
    cookie) beyond is dropped, and the client tries again later."""
    max_handshakes: int = 256
    """Handshakes in progress past the cookie exchange (half-open sessions); beyond, new
    ClientHellos are dropped.  Sources that have not returned a cookie hold nothing."""
    handshake_timeout: float = 60.0
    """Seconds a handshake may take, retransmissions included (1 + 2 + 4 + 8 + 16 s of
    RFC 6347's timer and some): then it fails (client: ``DtlsError``, cause ``timeout``)."""
    idle_timeout: float = 300.0
    """Seconds without a datagram either way after which a session is closed (with a
    close_notify); the next request makes a new one."""
    initial_timeout: float = 1.0
    """The retransmission timer's first value (RFC 6347 §4.2.4.1: 1 s)."""
    max_timeout: float = 60.0
    """The retransmission timer's ceiling (RFC 6347 §4.2.4.1: at least 60 s)."""
    max_waiting: int = 32
    """Datagrams that wait, per remote, for a client's handshake; the oldest go first."""
    cookie_lifetime: float = 60.0
    """A cookie is good for one to two of these (seconds)."""
    mtu: int = 1232
    """The largest datagram the engine writes (IPv6's 1,280 less its and UDP's headers):
    handshake messages are fragmented to fit (RFC 6347 §4.1.1.1)."""

    def __post_init__(self) -> None:
        if self.mtu < 256:
            raise ValueError("DtlsConfig.mtu must be at least 256")
        for name in ("max_sessions", "max_handshakes", "max_waiting"):
            if getattr(self, name) < 1:
                raise ValueError(f"DtlsConfig.{name} must be at least 1")
        for name in ("handshake_timeout", "idle_timeout", "initial_timeout", "cookie_lifetime"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DtlsConfig.{name} must be positive")
        if self.max_timeout < self.initial_timeout:
            raise ValueError("DtlsConfig.max_timeout must be at least initial_timeout")


@dataclass(slots=True)
class DtlsStats:
    """Counters of a DTLS layer (monotonic)."""

    hello_verify_requests: int = 0  #: ClientHellos answered with a cookie (no state kept)
    handshakes: int = 0  #: handshakes started (client) or accepted past the cookie (server)
    established: int = 0
    failed: int = 0  #: handshakes that failed or timed out
    refused: int = 0  #: valid ClientHellos dropped at the session or handshake limit
    retransmissions: int = 0  #: flights sent again
    dropped: int = 0  #: datagrams no session took (not records, no session, unsupported)
    closed: int = 0  #: sessions ended after their handshake (any reason)


@dataclass(slots=True)
class Opened:
    """What :meth:`DtlsLayer.receive` and :meth:`DtlsLayer.handle_timeout` produced."""

    datagrams: Datagrams = field(default_factory=list)  #: ciphertext to send
    plaintexts: list[bytes] = field(default_factory=list)  #: for the message layer
    events: list[DtlsEvent] = field(default_factory=list)


class DtlsSession:
    """The layer's record of one session (read-only outside the layer)."""

    __slots__ = (
        "answered",
        "client",
        "created",
        "engine",
        "established",
        "flight",
        "hello_random",
        "identity",
        "interval",
        "last_activity",
        "remote",
        "resent_at",
        "scheduled",
        "timer_at",
        "waiting",
    )

    def __init__(self, remote: Remote, engine: EngineSession, client: bool, now: float) -> None:
        self.remote = remote
        self.engine = engine
        self.client = client
        self.created = now
        self.established = False
        self.identity: PeerIdentity | None = None
        self.last_activity = now
        #: the last flight we sent (kept after the handshake, to answer a peer that
        #: repeats its last flight; dropped at the peer's first application data)
        self.flight: list[bytes] = []
        self.timer_at: float | None = None  #: when the flight is due again (handshake)
        self.interval = 0.0
        self.resent_at = -1e18  #: when a flight was last resent for a repeated peer flight
        self.scheduled: float | None = None  #: the deadline of its live heap entry
        self.waiting: list[bytes] = []  #: plaintexts waiting for the handshake (client)
        self.hello_random = b""  #: the ClientHello random of its handshake (server)
        self.answered = False  #: anything came from the peer

    def __repr__(self) -> str:
        state = "established" if self.established else "handshake"
        role = "client" if self.client else "server"
        return f"<DtlsSession {role} {self.remote!r} {state}>"


class DtlsLayer:
    """DTLS sessions of one endpoint (see the module doc).

    ``server``: the engine that accepts handshakes (a server's endpoint);
    ``client``: the engine that makes them (a client's).  ``rng`` gives the
    cookie secret (docs/architecture.md rule 3).
    """

    def __init__(
        self,
        *,
        rng: RandomSource,
        config: DtlsConfig | None = None,
        server: ServerEngine | None = None,
        client: ClientEngine | None = None,
    ) -> None:
        if server is None and client is None:
            raise ProtocolUsageError("a DTLS layer needs a server engine, a client engine or both")
        self.config = config = config or DtlsConfig()
        self._server = server
        self._client = client
        self._cookies = CookieJar(rng.randbytes(32), config.cookie_lifetime)
        self._sessions: dict[Remote, DtlsSession] = {}
        self._handshakes = 0
        self._heap: list[tuple[float, int, DtlsSession]] = []
        self._order = count()
        #: remote -> (server name, credentials) for the client's next handshake to it
        self._targets: OrderedDict[Remote, tuple[str | None, Any]] = OrderedDict()
        #: events found while sealing (a handshake that could not start), due at once
        self._later: list[DtlsEvent] = []
        self._later_at: float | None = None
        self.stats = DtlsStats()
        #: called with ("send" or "recv", plaintext, remote) for each datagram of the
        #: message layer that goes into a session or comes out of one: a runtime's trace
        #: of the decrypted CoAP messages (``coapkit -v``), which the records on the wire
        #: do not show; None (the default) costs one attribute test per datagram
        self.plaintext_tracer: Callable[[str, bytes, Remote], None] | None = None

    # -- what others may ask -----------------------------------------------------------

    def __len__(self) -> int:
        """Sessions held (established or in their handshake)."""
        return len(self._sessions)

    @property
    def handshakes(self) -> int:
        """Sessions in their handshake (past the cookie exchange, on a server)."""
        return self._handshakes

    def session(self, remote: Remote) -> DtlsSession | None:
        return self._sessions.get(remote)

    def established(self, remote: Remote) -> bool:
        session = self._sessions.get(remote)
        return session is not None and session.established

    def identity(self, remote: Remote) -> PeerIdentity | None:
        """Who the peer of the established session with ``remote`` proved to be."""
        session = self._sessions.get(remote)
        return None if session is None else session.identity

    def route(self, datagram: bytes, remote: Remote) -> Remote:
        """The key of the session ``datagram`` belongs to: its source address.  (A
        connection-ID engine would map a ``tls12_cid`` record to its session here.)"""
        return remote

    def expect(self, remote: Remote, server_name: str | None, credentials: Any = None) -> None:
        """Client: the next handshake with ``remote`` is for ``server_name`` (the URI's host,
        checked against the server's certificate) with ``credentials``.  An established
        session is kept as it is."""
        targets = self._targets
        targets[remote] = (server_name, credentials)
        targets.move_to_end(remote)
        if len(targets) > TARGETS_LIMIT:
            targets.popitem(last=False)

    # -- datagrams in --------------------------------------------------------------------

    def receive(self, datagram: bytes, remote: Remote, now: float) -> Opened:
        """A datagram from ``remote``: to its session, or (a ClientHello) to the cookie
        exchange; anything else is dropped and reported."""
        session = self._sessions.get(remote)
        if (
            session is not None
            and session.established
            and len(datagram) > HEADER_LENGTH
            and datagram[0] == APPLICATION_DATA
            and HEADER_LENGTH + ((datagram[11] << 8) | datagram[12]) == len(datagram)
        ):  # one record of application data in a session: the path of every request
            try:
                step = session.engine.receive(datagram)
            except Exception as exc:  # fail closed: the session ends
                step = EngineStep(failure=DtlsError(f"DTLS engine error: {exc}", "protocol"))
            if step.failure is None and not step.closed and not step.datagrams:
                if step.plaintexts:
                    session.last_activity = now
                    if session.flight:
                        session.flight = []  # the peer's data: it has our last flight
                    if self.plaintext_tracer is not None:
                        self._trace_received(step.plaintexts, remote)
                return Opened(plaintexts=step.plaintexts)
            opened = Opened()
            self._apply(session, step, now, opened)
            return opened
        opened = Opened()
        records = split_records(datagram)
        if records is None:
            self._drop(opened, remote, "not DTLS records")
            return opened
        key = self.route(datagram, remote)
        if key != remote:
            session = self._sessions.get(key)
        first = records[0]
        if is_client_hello(datagram, first):
            self._client_hello(datagram, records, remote, session, now, opened)
            return opened
        if first.content_type == TLS12_CID:
            self._drop(opened, remote, "a connection-ID record (RFC 9146 is not supported)")
            return opened
        if session is None:
            self._drop(opened, remote, "a record for no session (expired, or never made)")
            return opened
        self._feed(session, datagram, records, now, opened)
        return opened

    def _drop(self, opened: Opened, remote: Remote, reason: str) -> None:
        self.stats.dropped += 1
        opened.events.append(DatagramDropped(remote, reason))

    def _client_hello(
        self,
        datagram: bytes,
        records: list[RecordHeader],
        remote: Remote,
        session: DtlsSession | None,
        now: float,
        opened: Opened,
    ) -> None:
        if self._server is None:
            self._drop(opened, remote, "a ClientHello to a DTLS client")
            return
        hello = parse_client_hello(datagram)
        if hello is None:
            self._drop(opened, remote, "a ClientHello that is fragmented or malformed")
            return
        if (
            session is not None
            and not session.client
            and not session.established
            and hello.random == session.hello_random
        ):
            # The client repeats the hello of this handshake: our flight was lost.
            self._feed(session, datagram, records, now, opened)
            self._resend(session, now, opened)
            return
        if not self._cookies.check(remote, hello, now):
            # Stateless (RFC 6347 §4.2.1): nothing is kept for this source.
            self.stats.hello_verify_requests += 1
            cookie = self._cookies.make(remote, hello, now)
            opened.datagrams.append((hello_verify_request(hello, cookie), remote))
            return
        # The source has shown it receives at its address.
        if session is not None:
            # RFC 6347 §4.2.8: a new association from a known address; the old one ends
            # now that the cookie exchange is done.
            error = DtlsError(
                "the peer started a new DTLS session from the same address", "replaced"
            )
            self._end(session, error, now, opened.events)
        config = self.config
        if self._handshakes >= config.max_handshakes:
            self.stats.refused += 1
            reason = f"{self._handshakes} handshakes in progress (DtlsConfig.max_handshakes)"
            opened.events.append(SessionRefused(remote, reason))
            return
        if len(self._sessions) >= config.max_sessions:
            self.stats.refused += 1
            reason = f"{len(self._sessions)} sessions (DtlsConfig.max_sessions)"
            opened.events.append(SessionRefused(remote, reason))
            return
        try:
            engine, step = self._server.accept(datagram, remote)
        except Exception as exc:  # an engine bug must not take the endpoint down
            self._drop(opened, remote, f"the DTLS engine refused a ClientHello: {exc}")
            return
        session = DtlsSession(remote, engine, False, now)
        session.hello_random = hello.random
        session.answered = True
        self._add(session)
        self._apply(session, step, now, opened)

    def _feed(
        self,
        session: DtlsSession,
        datagram: bytes,
        records: list[RecordHeader],
        now: float,
        opened: Opened,
    ) -> None:
        session.answered = True
        repeated = session.established and any(
            record.epoch == 0 and record.content_type in (HANDSHAKE, CHANGE_CIPHER_SPEC)
            for record in records
        )
        try:
            step = session.engine.receive(datagram)
        except Exception as exc:  # fail closed: the session ends
            step = EngineStep(failure=DtlsError(f"DTLS engine error: {exc}", "protocol"))
        self._apply(session, step, now, opened)
        if repeated and self._sessions.get(session.remote) is session:
            # The peer repeats its last flight: it lacks ours (RFC 6347 §4.2.4).
            self._resend(session, now, opened)

    def _resend(self, session: DtlsSession, now: float, opened: Opened) -> None:
        """Send our last flight again for a peer that repeated its own, at most once per
        half ``initial_timeout`` (a spoofed copy cannot make us send more than the
        timer would)."""
        if not session.flight or now - session.resent_at < self.config.initial_timeout / 2:
            return
        session.resent_at = now
        self.stats.retransmissions += 1
        remote = session.remote
        opened.datagrams.extend((data, remote) for data in session.flight)
        if session.timer_at is not None:  # it just went: the timer waits a whole interval
            session.timer_at = now + session.interval

    def _apply(self, session: DtlsSession, step: EngineStep, now: float, opened: Opened) -> None:
        """Take an engine step: send its datagrams, pass its plaintexts up, note what
        changed, and end the session if it is over."""
        remote = session.remote
        if step.datagrams:
            opened.datagrams.extend((data, remote) for data in step.datagrams)
            session.last_activity = now
            if not session.established:  # a new flight: its timer starts afresh
                session.flight = list(step.datagrams)
                session.interval = self.config.initial_timeout
                session.timer_at = now + session.interval
        if step.established and not session.established:
            session.established = True
            session.timer_at = None
            session.scheduled = None  # from the handshake's deadlines to the idle timeout
            if not step.datagrams:
                # It received the last flight: it has nothing to resend when the peer
                # repeats it (only the side that sent the last flight does, §4.2.4).
                session.flight = []
            self._handshakes -= 1
            self.stats.established += 1
            try:
                session.identity = session.engine.identity()
            except Exception:
                session.identity = PeerIdentity()
            opened.events.append(SessionEstablished(remote, session.identity, session.client))
            waiting, session.waiting = session.waiting, []
            for plaintext in waiting:
                self._encrypt(session, plaintext, opened.datagrams)
        if step.plaintexts:
            session.last_activity = now
            session.flight = []  # the peer's data: it has our last flight
            opened.plaintexts.extend(step.plaintexts)
            if self.plaintext_tracer is not None:
                self._trace_received(step.plaintexts, remote)
        if step.failure is not None:
            self._end(session, step.failure, now, opened.events, send_close=False)
            return
        if step.closed:
            error = DtlsError("the peer closed the DTLS session", "closed")
            self._end(session, error, now, opened.events, send_close=False)
            return
        self._schedule(session)

    def _trace_received(self, plaintexts: list[bytes], remote: Remote) -> None:
        tracer = self.plaintext_tracer
        assert tracer is not None
        for plaintext in plaintexts:
            tracer("recv", plaintext, remote)

    def _encrypt(self, session: DtlsSession, plaintext: bytes, out: Datagrams) -> None:
        remote = session.remote
        if self.plaintext_tracer is not None:
            self.plaintext_tracer("send", plaintext, remote)
        try:
            datagrams = session.engine.send(plaintext)
        except Exception:  # fail closed: nothing goes out in the clear
            self.stats.dropped += 1
            return
        out.extend((data, remote) for data in datagrams)

    # -- datagrams out ----------------------------------------------------------------------

    def seal(self, datagrams: Datagrams, now: float) -> Datagrams:
        """The message layer's datagrams, each encrypted in its remote's session.

        Nothing leaves in the clear: a datagram for a remote whose session is not
        established waits for the handshake (a client's, started here for a remote
        without a session) or is dropped (a server cannot start one).
        """
        sealed: Datagrams = []
        for plaintext, remote in datagrams:
            session = self._sessions.get(remote)
            if session is not None and session.established:
                self._encrypt(session, plaintext, sealed)
                session.last_activity = now
            elif session is not None:
                if session.client:
                    self._wait(session, plaintext)
                else:
                    self.stats.dropped += 1
            elif self._client is not None:
                self._connect(remote, plaintext, now, sealed)
            else:
                self.stats.dropped += 1  # a server has no session to send in
        return sealed

    def seal_one(self, plaintext: bytes, remote: Remote, now: float) -> bytes:
        """One datagram for ``remote``, whose session is established (see :meth:`established`):
        its records in one datagram."""
        session = self._sessions.get(remote)
        if session is None or not session.established:
            raise ProtocolUsageError(f"no established DTLS session with {_show(remote)}")
        sealed: Datagrams = []
        self._encrypt(session, plaintext, sealed)
        session.last_activity = now
        return b"".join(data for data, _ in sealed)

    def renew(self, remote: Remote, now: float) -> Datagrams:
        """Client: the peer seems to have lost the session with ``remote`` (a server that
        restarted drops our records silently: a request got no answer at all).  Forget it,
        with a close_notify; the next datagram to ``remote`` makes a new handshake.  The
        requests still open towards it are not failed: their retransmissions wait for it."""
        session = self._sessions.get(remote)
        if session is None or not session.client or not session.established:
            return []
        del self._sessions[remote]
        self.stats.closed += 1
        try:
            return [(data, remote) for data in session.engine.close()]
        except Exception:
            return []

    def abandon(self, remote: Remote) -> None:
        """Forget a client's handshake with ``remote`` without a word (the network said the
        remote cannot be reached; the requests waiting for it fail with that error)."""
        session = self._sessions.get(remote)
        if session is not None and session.client and not session.established:
            del self._sessions[remote]
            self._handshakes -= 1
            self.stats.failed += 1

    def _wait(self, session: DtlsSession, plaintext: bytes) -> None:
        waiting = session.waiting
        if plaintext in waiting:  # a retransmission of a message already waiting
            return
        if len(waiting) >= self.config.max_waiting:
            del waiting[0]
        waiting.append(plaintext)

    def _connect(self, remote: Remote, plaintext: bytes, now: float, out: Datagrams) -> None:
        assert self._client is not None
        config = self.config
        if len(self._sessions) >= config.max_sessions or self._handshakes >= config.max_handshakes:
            self.stats.refused += 1
            error = DtlsError(
                f"no DTLS handshake started with {_show(remote)}: {len(self._sessions)} "
                "sessions, the limit of this client (DtlsConfig.max_sessions, max_handshakes)",
                "limit",
            )
            self._report_later(SessionEnded(remote, error, False, True), now)
            return
        server_name, credentials = self._targets.get(remote, (None, None))
        try:
            engine, step = self._client.connect(remote, server_name, credentials)
        except Exception as exc:
            error = DtlsError(
                f"cannot start a DTLS handshake with {_show(remote)}: {exc}", "config"
            )
            self._report_later(SessionEnded(remote, error, False, True), now)
            return
        session = DtlsSession(remote, engine, True, now)
        session.waiting.append(plaintext)
        self._add(session)
        opened = Opened(datagrams=out)
        self._apply(session, step, now, opened)
        for event in opened.events:
            self._report_later(event, now)

    def _report_later(self, event: DtlsEvent, now: float) -> None:
        """An event found while sealing: reported by the next :meth:`handle_timeout`, due now."""
        self._later.append(event)
        if self._later_at is None:
            self._later_at = now

    # -- sessions come and go ----------------------------------------------------------------

    def _add(self, session: DtlsSession) -> None:
        self._sessions[session.remote] = session
        self._handshakes += 1
        self.stats.handshakes += 1

    def _end(
        self,
        session: DtlsSession,
        error: DtlsError,
        now: float,
        events: list[DtlsEvent],
        *,
        send_close: bool = False,
        out: Datagrams | None = None,
    ) -> None:
        remote = session.remote
        if self._sessions.get(remote) is session:
            del self._sessions[remote]
        if session.established:
            self.stats.closed += 1
        else:
            self._handshakes -= 1
            self.stats.failed += 1
        if send_close and out is not None:
            with contextlib.suppress(Exception):
                out.extend((data, remote) for data in session.engine.close())
        session.waiting = []
        session.flight = []
        events.append(SessionEnded(remote, error, session.established, session.client))

    def close(self, remote: Remote, now: float) -> Opened:
        """End the session with ``remote`` with a close_notify (nothing if there is none)."""
        opened = Opened()
        session = self._sessions.get(remote)
        if session is not None:
            error = DtlsError("the DTLS session was closed", "closed")
            self._end(session, error, now, opened.events, send_close=True, out=opened.datagrams)
        return opened

    def close_all(self, now: float) -> Opened:
        """End every session, each with a close_notify (the endpoint is closing)."""
        opened = Opened()
        for session in list(self._sessions.values()):
            error = DtlsError("the DTLS session was closed", "closed")
            self._end(session, error, now, opened.events, send_close=True, out=opened.datagrams)
        self._heap.clear()
        return opened

    # -- time ------------------------------------------------------------------------------------

    def _due(self, session: DtlsSession) -> float:
        config = self.config
        if session.established:
            return session.last_activity + config.idle_timeout
        due = session.created + config.handshake_timeout
        if session.timer_at is not None and session.timer_at < due:
            return session.timer_at
        return due

    def _schedule(self, session: DtlsSession) -> None:
        due = self._due(session)
        if session.scheduled is None or due < session.scheduled:
            session.scheduled = due
            heapq.heappush(self._heap, (due, next(self._order), session))

    def next_deadline(self) -> float | None:
        heap = self._heap
        sessions = self._sessions
        while heap:  # entries of ended sessions, or superseded, at the top go now
            when, _, session = heap[0]
            if sessions.get(session.remote) is session and session.scheduled == when:
                break
            heapq.heappop(heap)
        deadline = heap[0][0] if heap else None
        later = self._later_at
        if later is not None and (deadline is None or later < deadline):
            return later
        return deadline

    def handle_timeout(self, now: float) -> Opened:
        """Retransmit due flights, end handshakes that took too long and idle sessions,
        report what sealing found."""
        opened = Opened()
        if self._later:
            opened.events.extend(self._later)
            self._later = []
        self._later_at = None
        heap = self._heap
        sessions = self._sessions
        config = self.config
        while heap and heap[0][0] <= now:
            when, _, session = heapq.heappop(heap)
            if sessions.get(session.remote) is not session or session.scheduled != when:
                continue  # ended, or a later entry stands for it
            session.scheduled = None
            if session.established:
                if now >= session.last_activity + config.idle_timeout:
                    error = DtlsError(
                        f"the DTLS session was idle for {config.idle_timeout:g} s", "idle"
                    )
                    self._end(
                        session, error, now, opened.events, send_close=True, out=opened.datagrams
                    )
                    continue
            elif now >= session.created + config.handshake_timeout:
                self._end(session, self._timed_out(session), now, opened.events)
                continue
            elif session.timer_at is not None and now >= session.timer_at:
                self._retransmit(session, now, opened)
                if sessions.get(session.remote) is not session:
                    continue
            self._schedule(session)
        return opened

    def _retransmit(self, session: DtlsSession, now: float, opened: Opened) -> None:
        try:
            fresh = session.engine.timeout()
        except Exception as exc:
            error = DtlsError(f"DTLS engine error: {exc}", "protocol")
            self._end(session, error, now, opened.events)
            return
        if fresh is None:  # the engine's clock says not yet: the flight as first sent
            flight = session.flight
        else:  # the engine's own retransmission (or nothing: the peer has the flight)
            flight = session.flight = list(fresh)
        if flight:
            session.resent_at = now
            self.stats.retransmissions += 1
            remote = session.remote
            opened.datagrams.extend((data, remote) for data in flight)
        session.interval = min(session.interval * 2, self.config.max_timeout)
        session.timer_at = now + session.interval

    def _timed_out(self, session: DtlsSession) -> DtlsError:
        seconds = f"{self.config.handshake_timeout:g} s"
        where = _show(session.remote)
        if not session.answered:
            return DtlsError(
                f"DTLS handshake timed out: no answer from {where} in {seconds}", "timeout"
            )
        peer = "server" if session.client else "client"
        return DtlsError(
            f"DTLS handshake timed out: the {peer} at {where} stopped answering part-way "
            f"(in {seconds}; with a pre-shared key, the two sides may hold different keys)",
            "timeout",
        )


def _show(remote: Remote) -> str:
    """``192.0.2.1:5684``, ``[2001:db8::1]:5684`` (an IPv4-mapped address as IPv4)."""
    if isinstance(remote, tuple) and len(remote) >= 2:
        host, port = remote[0], remote[1]
        if isinstance(host, str) and host.startswith("::ffff:") and "." in host:
            host = host[7:]
        if isinstance(host, str) and ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return repr(remote)
