"""The CoAP message layer over UDP (RFC 7252 §4, §5.2, §8; RFC 7967), sans I/O.

Theory of operation
-------------------
The layer deals in message types and message IDs; tokens and the meaning of
requests and responses belong to the layers above.  It has five inputs, each
taking the current time and an ``out`` list to which it appends the
datagrams to send as ``(bytes, remote)``:

* :meth:`MessageLayer.receive` a datagram;
* :meth:`MessageLayer.send` a CON or NON message (a request, a separate
  response, a notification, a ping);
* :meth:`MessageLayer.respond` to a received request (piggybacked in the ACK
  if the response is ready before the empty-ACK delay, separate otherwise),
  :meth:`accept` or :meth:`reject` a received separate response;
* :meth:`MessageLayer.handle_timeout` when :meth:`next_deadline` has come;
* :meth:`MessageLayer.network_error` and :meth:`shutdown`.

Each returns the events for the layer above (:mod:`coapkit.messaging.events`).

Timers, all driven by the one deadline the runtime arms:

* retransmissions: a heap of ``(due, seq, outgoing)`` with lazy cancellation
  (an entry whose outgoing is no longer awaiting its ACK, or whose ``due``
  changed, is skipped when popped);
* empty ACKs for requests still unanswered after ``empty_ack_delay``: a FIFO,
  since the delay is a constant;
* deduplication entries: FIFO runs (:mod:`coapkit.messaging.dedup`);
* message-ID holds: runs per peer, a slice of EXCHANGE_LIFETIME each, released by
  a timer wheel (:mod:`coapkit.messaging.message_ids`);
* responses to multicast requests waiting out their random leisure: a heap.

The peer table
--------------
Everything kept about one remote lives in its :class:`Peer`, and the table of
peers holds at most ``MessagingConfig.max_peers`` of them, so that a flood from
many source addresses (spoofed ones cost an attacker nothing) cannot grow it
without end.  Which peer may make room for a new one is decided by RFC 7252:

* a peer holding message IDs (§4.4: sent within EXCHANGE_LIFETIME; this
  includes every peer with CONs awaiting their ACK or messages in its
  backlog) is never forgotten: met again, it would start a new ID sequence
  which, after the endpoint has allocated 65,536 IDs to others, may land on an
  ID the remote still remembers, and the remote would drop our message as a
  duplicate (or acknowledge a CON without processing it);
* a peer with only deduplication entries (§4.5) may be *evicted*: its entries
  go with it, so a duplicate of a request it sent before arrives as a new
  message and is processed again.  That is what the deduplication caps
  already accept when they evict (the total cap takes the oldest entries
  of all): a loss of at-most-once only under flood, for the oldest state.

So the candidates are kept in ``_evictable``, in the order in which they
became evictable (created, or their last hold released); the first goes, in
O(1).  Only a CON from a new remote, or :meth:`MessageLayer.send` to one, may
evict; a NON from a new remote only takes a free slot.  Answering a NON
request pins its peer for EXCHANGE_LIFETIME, so if NONs could evict, a NON
flood from spoofed addresses (a few dozen datagrams a second) would turn
every slot, those of active clients included, into a pinned one and lock
everyone new out; as it is, such a flood takes only the slots that peers
leave free when they are forgotten, and an active client keeps its own.

When no peer can make room the new remote is refused without state: a CON
request gets 5.03 Service Unavailable with Max-Age piggybacked on its ACK (it
carries the request's own message ID, so no ID is allocated and a
retransmission gets the same answer), any other CON an RST, a NON nothing;
:meth:`MessageLayer.send` to a new remote raises :class:`PeerTableFull`.
Peers already known are served as before, and a slot frees when a peer is
forgotten, at most EXCHANGE_LIFETIME plus a slice after its last message.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from coapkit.codec.codes import is_request
from coapkit.codec.message import Message, ResponseParts, _make, decode, encode_parts
from coapkit.codec.option_registry import OptionBounds, OptionNumber, within_bounds
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.errors import (
    BacklogFull,
    CoapError,
    DecodeError,
    EncodeError,
    EndpointClosed,
    PeerTableFull,
    ProtocolUsageError,
    RequestCancelled,
    ReservedCodeResponse,
    RetransmissionsExceeded,
)
from coapkit.messaging.addresses import describe_remote, remote_is_multicast
from coapkit.messaging.congestion import FIXED_TIMERS, CongestionControl
from coapkit.messaging.dedup import DedupTable
from coapkit.messaging.events import (
    DeliveryFailed,
    EmptyAckReceived,
    MessageIgnored,
    MessagingEvent,
    PeerFailed,
    RequestReceived,
    ResetReceived,
    ResponseReceived,
)
from coapkit.messaging.message_ids import MessageIdAllocator
from coapkit.messaging.parameters import DEFAULT_PARAMETERS, TransmissionParameters
from coapkit.messaging.peers import Peer
from coapkit.messaging.records import (
    Inbound,
    InboundState,
    Outgoing,
    OutgoingState,
    Remote,
)
from coapkit.messaging.stats import MessagingStats, PeerStatistics
from coapkit.randomness import RandomSource

CON = MessageType.CON
NON = MessageType.NON
ACK = MessageType.ACK
RST = MessageType.RST

Datagrams = list[tuple[bytes, Remote]]

_PENDING = InboundState.PENDING
_ACKED = InboundState.ACKED
_DONE = InboundState.DONE
#: the code classes RFC 7252 §3 reserves (a message's code >> 5)
_RESERVED_CLASSES = (1, 6, 7)
_AWAITING = OutgoingState.AWAITING_ACK

# No-Response (RFC 7967 §2.1): bits that suppress a class of responses.
_NO_RESPONSE_BITS = {2: 0x02, 4: 0x08, 5: 0x10}
_NO_RESPONSE = int(OptionNumber.NO_RESPONSE)


@dataclass(frozen=True, slots=True)
class MessagingConfig:
    """Knobs of the message layer that are not RFC 7252 transmission parameters."""

    empty_ack_delay: float = 0.1
    """How long a CON request may wait for its response before an empty ACK goes back
    and the response becomes a separate one (§5.2.2).  Well below ACK_TIMEOUT."""

    backlog_limit: int = 1000
    """Messages that may wait per peer for NSTART or a free message ID."""

    dedup_cap_total: int = 100_000
    dedup_cap_per_peer: int = 1024

    expiry_tick: float = 0.1
    """Granularity of deduplication expiry: entries live up to this much longer than their
    lifetime, so that arrivals close in time share one expiry run."""

    recent_non_limit: int = 64
    """Tracked NONs per peer that an RST can still be matched to."""

    suppress_multicast_errors: bool = True
    """Send no 4.xx/5.xx to a multicast request that has no No-Response option (§8.2)."""

    multicast_leisure: bool = True
    """Delay responses to multicast requests by a random time in [0, DEFAULT_LEISURE] (§8.2)."""

    max_message_size: int = 1152
    """Largest message accepted and sent.  RFC 7252 §4.6: 1152 bytes fit any IPv6 path
    (1280-byte MTU); raise it only where the path is known to carry more."""

    mid_hold_slices: int = 16
    """Message IDs are held per slice of EXCHANGE_LIFETIME (of 1/16: 15.4 s by default):
    at most ``mid_hold_slices + 1`` runs per peer whatever is sent, and each ID is held up
    to one slice longer than its lifetime (RFC 7252 §4.4 asks for at least the lifetime)."""

    max_peers: int = 10_000
    """Remotes the layer keeps state about at once (each about 2.5 KB with one deduplication
    entry: 25 MB at the cap).  When full, a CON from a new remote (or a message sent to
    one) takes the place of the peer that has held no message ID for longest, whose
    deduplication entries go with it; otherwise the new remote is refused (a CON request
    gets 5.03 with Max-Age, a NON is dropped).  See the module docstring."""

    refusal_max_age: int = 5
    """Max-Age of the 5.03 that a CON request from a refused new remote gets."""

    congestion: CongestionControl = FIXED_TIMERS
    """How CONs are timed and new messages paced: RFC 7252's fixed timers (the default),
    or :class:`~coapkit.messaging.congestion.CoCoA` (per-peer round-trip estimates,
    PROBING_RATE towards peers that do not respond); see :mod:`coapkit.messaging.congestion`."""

    def __post_init__(self) -> None:
        if self.max_message_size < 64:
            raise ValueError("max_message_size must be at least 64 bytes")
        if self.empty_ack_delay < 0 or self.expiry_tick < 0:
            raise ValueError("empty_ack_delay and expiry_tick cannot be negative")
        if self.backlog_limit < 0 or self.recent_non_limit < 0:
            raise ValueError("limits cannot be negative")
        if self.max_peers < 1 or self.mid_hold_slices < 1:
            raise ValueError("max_peers and mid_hold_slices must be at least 1")
        if not 0 <= self.refusal_max_age <= 0xFFFFFFFF:
            raise ValueError("refusal_max_age must be a Max-Age value (0 .. 2**32 - 1)")


def _reply_bytes(mtype: int, mid: int) -> bytes:
    """An empty ACK (mtype 2) or RST (mtype 3) for ``mid``."""
    return bytes((0x40 | (mtype << 4), 0, mid >> 8, mid & 0xFF))


class MessageLayer:
    """The RFC 7252 message layer of one endpoint.  See the module docstring."""

    #: a CON is delivered when its ACK comes (a :class:`~coapkit.reliability.ReliabilityLayer`)
    reliable = False

    def __init__(
        self,
        *,
        rng: RandomSource,
        params: TransmissionParameters = DEFAULT_PARAMETERS,
        config: MessagingConfig | None = None,
        peer_params: Mapping[Remote, TransmissionParameters] | None = None,
        is_multicast: Callable[[Remote], bool] = remote_is_multicast,
    ) -> None:
        self.rng = rng
        self.params = params
        self.config = config = config or MessagingConfig()
        self.peer_params: dict[Remote, TransmissionParameters] = dict(peer_params or {})
        self.is_multicast = is_multicast
        self.stats = MessagingStats()
        self._peers: dict[Remote, Peer] = {}
        self._dedup = DedupTable(
            cap_total=config.dedup_cap_total,
            cap_per_peer=config.dedup_cap_per_peer,
            tick=config.expiry_tick,
        )
        self._mids = MessageIdAllocator(rng.getrandbits(16), config.mid_hold_slices)
        #: peers holding no message ID, in the order they became so: those a new remote may
        #: replace when the table is full (see the module docstring)
        self._evictable: OrderedDict[Remote, Peer] = OrderedDict()
        self._refusal_options = Options.build(max_age=config.refusal_max_age)
        self._retransmissions: list[tuple[float, int, Outgoing]] = []
        #: the retransmission policy (docs/architecture.md rule 10: chosen by configuration)
        self._timers = config.congestion.policy(rng)
        #: peers whose backlog waits for their policy's release time (PROBING_RATE)
        self._held: list[tuple[float, int, Peer]] = []
        self._empty_acks: deque[tuple[float, Inbound]] = deque()
        #: CON requests received since the timers were last looked at; most are answered
        #: before that (piggybacked), and only those still unanswered then get an empty-ACK
        #: timer, so the common case leaves no long-lived object behind (less GC work).
        self._fresh: list[Inbound] = []
        self._delayed: list[tuple[float, int, bytes, Remote]] = []
        self._seq = 0
        self._closed = False

    # -- introspection ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def dedup_entries(self) -> int:
        return self._dedup.count

    @property
    def peer_count(self) -> int:
        return len(self._peers)

    def peer(self, remote: Remote) -> Peer | None:
        """The state kept about ``remote``, if any (for tests and diagnostics)."""
        return self._peers.get(remote)

    @property
    def remotes(self) -> list[Remote]:
        """The remotes the layer keeps state about now."""
        return list(self._peers)

    def peer_statistics(self, remote: Remote, now: float) -> PeerStatistics | None:
        """What the layer knows about ``remote`` at ``now`` (its round-trip estimates with
        :class:`~coapkit.messaging.congestion.CoCoA`), or None if nothing."""
        peer = self._peers.get(remote)
        if peer is None:
            return None
        if peer.timing is None:
            estimates: dict[str, Any] = {
                "congestion": self._timers.name,
                "rto": peer.params.ack_timeout,
                "blind": True,
            }
        else:
            estimates = peer.timing.statistics(now)
        return PeerStatistics(
            remote,
            outstanding=len(peer.outstanding),
            backlog=len(peer.backlog),
            dedup_entries=peer.dedup_entries,
            mids_in_use=peer.mids_in_use,
            **estimates,
        )

    def outstanding(self, remote: Remote) -> int:
        peer = self._peers.get(remote)
        return len(peer.outstanding) if peer else 0

    def backlog(self, remote: Remote) -> int:
        peer = self._peers.get(remote)
        return len(peer.backlog) if peer else 0

    def parameters_for(self, remote: Remote) -> TransmissionParameters:
        return self.peer_params.get(remote, self.params)

    def set_peer_parameters(self, remote: Remote, params: TransmissionParameters | None) -> None:
        """Override (or with ``None`` restore) the transmission parameters towards one peer."""
        if params is None:
            self.peer_params.pop(remote, None)
        else:
            self.peer_params[remote] = params
        peer = self._peers.get(remote)
        if peer is not None:
            peer.params = params or self.params

    @property
    def mid_hold_runs(self) -> int:
        """Runs of message-ID holds of all peers (at most ``(mid_hold_slices + 1) x peers``)."""
        return self._mids.runs

    @property
    def dedup_runs(self) -> int:
        """Expiry runs of the deduplication table (at most ``dedup_cap_total``)."""
        return self._dedup.runs

    def _admit(self, remote: Remote, may_evict: bool = True) -> Peer | None:
        """The peer for ``remote``, made if new; None if the table is full and no peer may
        make room (``may_evict`` is False, or every peer holds message IDs)."""
        peer = self._peers.get(remote)
        if peer is not None:
            return peer
        if len(self._peers) >= self.config.max_peers and not (may_evict and self._evict_one()):
            return None
        peer = self._peers[remote] = Peer(
            remote, self.peer_params.get(remote, self.params), self._mids.start_for_new_peer()
        )
        peer.timing = self._timers.new_peer(peer.params)
        self._evictable[remote] = peer
        return peer

    def _evict_one(self) -> bool:
        """Forget the peer that has been evictable longest, with its deduplication entries."""
        evictable = self._evictable
        while evictable:
            remote, peer = evictable.popitem(last=False)
            if peer.mids_in_use or peer.outstanding or peer.backlog:
                continue  # not evictable after all (re-listed when its holds are released)
            self._dedup.forget(peer)
            self.stats.dedup_evictions = self._dedup.evictions
            del self._peers[remote]
            peer.con_stream = peer.non_stream = None
            self.stats.peers_evicted += 1
            return True
        return False

    def _hold_mid(self, peer: Peer, now: float, lifetime: float) -> int:
        """The next message ID towards ``peer``; a peer holding IDs is no longer evictable."""
        if not peer.mids_in_use:
            self._evictable.pop(peer.remote, None)
        return self._mids.allocate(peer, now, lifetime)

    def _refuse(
        self, message: Message, remote: Remote, data: bytes, out: Datagrams
    ) -> list[MessagingEvent]:
        """A message from a new remote while the peer table is full: answered without state
        (a CON request with 5.03 and Max-Age unless No-Response says not to, another CON
        with an RST, a NON not at all)."""
        self.stats.peers_refused += 1
        if message.mtype is CON:
            if is_request(message.code):
                no_response = message.options.get(_NO_RESPONSE)
                if no_response is not None and int.from_bytes(no_response, "big") & 0x10:
                    return self._ignore(remote, "peer table full", data)
                reply = encode_parts(
                    2,
                    0xA3,  # 5.03 Service Unavailable
                    message.mid,
                    message.token,
                    self._refusal_options,
                    b"",
                )
            else:
                reply = _reply_bytes(3, message.mid)
                self.stats.resets_sent += 1
            out.append((reply, remote))
        return self._ignore(remote, "peer table full", data)

    # -- receiving ----------------------------------------------------------------

    def receive(
        self, data: bytes, remote: Remote, now: float, out: Datagrams, *, multicast: bool = False
    ) -> list[MessagingEvent]:
        """Process one datagram from ``remote``.  ``multicast``: it was sent to a group address."""
        if self._closed:
            return []
        stats = self.stats
        stats.received += 1
        try:
            message = decode(data)
        except DecodeError as exc:
            stats.malformed += 1
            if exc.mtype is CON and exc.mid is not None and not multicast:
                out.append((_reply_bytes(3, exc.mid), remote))
                stats.resets_sent += 1
            elif exc.mtype is ACK and exc.mid is not None and data[1] >> 5 in _RESERVED_CLASSES:
                failed = self._reserved_ack(remote, exc.mid, data[1], now, out)
                if failed:
                    return failed
            return [MessageIgnored(remote, f"malformed: {exc.reason}", data)]

        if now >= self._dedup.earliest:
            self._expire(now, out)

        mtype = message.mtype
        code = message.code
        if mtype is CON or mtype is NON:
            if code == 0:
                if mtype is CON and not multicast:  # CoAP ping (§4.3)
                    out.append((_reply_bytes(3, message.mid), remote))
                    stats.resets_sent += 1
                    return []
                return self._ignore(remote, f"empty {mtype.name} message", data)
            if mtype is CON and multicast:
                return self._ignore(remote, "CON request sent to a multicast address", data)
            peer = self._peers.get(remote) or self._admit(remote, mtype is CON)
            if peer is None:
                return self._refuse(message, remote, data, out)
            if peer.timing is not None:
                peer.timing.heard(now)
            mid = message.mid
            stream = peer.con_stream if mtype is CON else peer.non_stream
            if stream is not None and mid in stream.seen:
                stats.duplicates += 1
                reply = stream.seen[mid]
                if reply:
                    out.append((reply, remote))
                    stats.replays += 1
                return []
            params = peer.params
            lifetime = params.exchange_lifetime if mtype is CON else params.non_lifetime
            evicted = self._dedup.remember(peer, mid, mtype is CON, now, lifetime)
            stats.dedup_evictions = self._dedup.evictions
            if evicted is not None:  # the total cap took another peer's entry
                self._forget_if_idle(evicted)
            size = len(data)
            inbound = Inbound(message, peer, now, multicast, size)
            if size > self.config.max_message_size:
                return self._too_large(inbound, out)
            if code < 32:  # a request (0.01-0.31); 0.00 was handled above
                if mtype is CON:
                    fresh = self._fresh
                    fresh.append(inbound)
                    if len(fresh) > 256:
                        self._settle()
                return [RequestReceived(message, inbound)]
            return [ResponseReceived(message, remote, None, inbound)]

        if multicast:
            return self._ignore(remote, f"{mtype.name} sent to a multicast address", data)
        peer_or_none = self._peers.get(remote)
        if peer_or_none is not None and peer_or_none.timing is not None:
            peer_or_none.timing.heard(now)
        if mtype is ACK:
            if is_request(code):
                return self._ignore(remote, "request carried in an ACK", data)
            if len(data) > self.config.max_message_size:
                # Like any other oversized response (see _too_large); the CON it answers
                # stays outstanding: its retransmission may get an answer that fits.
                stats.oversized += 1
                return self._ignore(
                    remote,
                    f"ACK of {len(data)} bytes exceeds {self.config.max_message_size}",
                    b"",
                )
            outgoing = peer_or_none.outstanding.pop(message.mid, None) if peer_or_none else None
            if outgoing is None:
                return self._ignore(remote, "ACK matches no outstanding CON", data)
            outgoing.state = OutgoingState.ACKNOWLEDGED
            assert peer_or_none is not None
            if peer_or_none.timing is not None:
                self._timers.acknowledged(outgoing, now)
            if peer_or_none.backlog:
                self._drain(peer_or_none, now, out)
            if code == 0:
                return [EmptyAckReceived(outgoing)]
            return [ResponseReceived(message, remote, outgoing, None)]

        # RST
        if code != 0:
            return self._ignore(remote, "RST that is not empty", data)
        outgoing = None
        if peer_or_none is not None:
            outgoing = peer_or_none.outstanding.pop(message.mid, None)
            if outgoing is None:
                outgoing = peer_or_none.recent_non.pop(message.mid, None)
        if outgoing is None:
            return self._ignore(remote, "RST matches no message sent", data)
        if outgoing.state is _AWAITING and outgoing.peer.timing is not None:
            self._timers.acknowledged(outgoing, now)
        outgoing.state = OutgoingState.RESET
        stats.resets_received += 1
        assert peer_or_none is not None
        if peer_or_none.backlog:
            self._drain(peer_or_none, now, out)
        return [ResetReceived(outgoing)]

    def accept_request(
        self,
        data: bytes,
        remote: Remote,
        now: float,
        options: OptionBounds,
    ) -> Inbound | None:
        """:meth:`receive` for the common case, in fewer steps: a new unicast request (CON
        or NON) from a peer already known, every option in ``options`` (number -> (min
        length, max length, repeatable)) with a valid length.

        Returns the request's :class:`Inbound`, the layer's state exactly as
        :meth:`receive` would leave it (which would return ``RequestReceived``); for any
        other datagram, or when timers are due, returns None having changed nothing, and
        the caller hands the datagram to :meth:`receive`.
        """
        if self._closed or now >= self._dedup.earliest:
            return None
        peer = self._peers.get(remote)
        size = len(data)
        if peer is None or size < 4 or size > self.config.max_message_size:
            return None
        first = data[0]
        if first & 0xE0 != 0x40 or not 0 < data[1] < 32:  # version 1, CON or NON; a request
            return None
        confirmable = first < 0x50
        stream = peer.con_stream if confirmable else peer.non_stream
        mid = (data[2] << 8) | data[3]
        if stream is None or mid in stream.seen:  # a first message of its type, a duplicate
            return None
        try:
            message = decode(data)
        except DecodeError:
            return None
        if not within_bounds(message.options.items, options):
            return None
        self.stats.received += 1
        if peer.timing is not None:
            peer.timing.heard(now)
        params = peer.params
        lifetime = params.exchange_lifetime if confirmable else params.non_lifetime
        evicted = self._dedup.remember(peer, mid, confirmable, now, lifetime)
        self.stats.dedup_evictions = self._dedup.evictions
        if evicted is not None:
            self._forget_if_idle(evicted)
        inbound = Inbound(message, peer, now, False, size)
        if confirmable:
            fresh = self._fresh
            fresh.append(inbound)
            if len(fresh) > 256:
                self._settle()
        return inbound

    def _reserved_ack(
        self, remote: Remote, mid: int, code: int, now: float, out: Datagrams
    ) -> list[MessagingEvent]:
        """An ACK for an outstanding CON of ours with a code in a reserved class: the peer
        did receive it, and its answer, which nothing can read, would be the same on every
        retransmission (its deduplication replays it).  The CON fails at once, with
        ReservedCodeResponse, rather than after every retransmission."""
        peer = self._peers.get(remote)
        outgoing = peer.outstanding.pop(mid, None) if peer is not None else None
        if outgoing is None:
            return []
        assert peer is not None
        outgoing.state = OutgoingState.FAILED
        if peer.backlog:
            self._drain(peer, now, out)
        return [DeliveryFailed(outgoing, ReservedCodeResponse(code))]

    def _too_large(self, inbound: Inbound, out: Datagrams) -> list[MessagingEvent]:
        """A message above ``max_message_size`` (RFC 7252 §4.6): a CON request gets 4.13 with
        a Block1 option asking for blocks (RFC 7959 §2.9.3); anything else is dropped."""
        self.stats.oversized += 1
        message = inbound.message
        if inbound.mtype is CON and is_request(message.code):
            block1 = 0x06  # Block1 num 0, more 0, szx 6: 1024-byte blocks
            data = encode_parts(
                2,
                0x8D,  # 4.13 Request Entity Too Large
                inbound.mid,
                message.token,
                Options(((OptionNumber.BLOCK1, bytes((block1,))),)),
                b"",
            )
            self._store_reply(inbound, data)
            out.append((data, inbound.remote))
            inbound.state = _DONE
        return [
            MessageIgnored(
                inbound.remote,
                f"message of {inbound.size} bytes exceeds {self.config.max_message_size}",
                b"",
            )
        ]

    def _ignore(self, remote: Remote, reason: str, data: bytes) -> list[MessagingEvent]:
        self.stats.ignored += 1
        return [MessageIgnored(remote, reason, data)]

    # -- answering what was received ---------------------------------------------------

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
    ) -> Outgoing | None:
        """Send ``response`` (code, token, options, payload) for a received request.

        Piggybacked in the ACK when the request is a CON still unanswered and no
        other type is forced; otherwise a separate CON (for a CON request) or NON
        (for a NON request) with a new message ID, which is returned.  Honours
        No-Response (RFC 7967) and the multicast rules of §8.2.
        """
        if inbound.state is _DONE:
            raise ProtocolUsageError("this request has already been answered")
        code = response.code
        if self._suppressed(inbound, code):
            if inbound.state is _PENDING and inbound.mtype is CON:
                self._send_empty_ack(inbound, out)
            inbound.state = _DONE
            self.stats.suppressed += 1
            return None
        if inbound.multicast:
            inbound.state = _DONE
            return self._respond_to_multicast(inbound, response, now, out)
        if inbound.mtype is CON:
            if inbound.state is _PENDING:
                if mtype is None or mtype is ACK:
                    data = encode_parts(
                        2, code, inbound.mid, response.token, response.options, response.payload
                    )
                    self._check_size(data)
                    self._piggybacked(inbound, data)
                    out.append((data, inbound.remote))
                    return None
                self._send_empty_ack(inbound, out)
            inbound.state = _DONE
            return self.send(
                response, inbound.remote, now, out, mtype=mtype or CON, params=params, owner=owner
            )
        inbound.state = _DONE
        if mtype is ACK:
            raise ProtocolUsageError("a response to a NON request cannot be piggybacked")
        return self.send(
            response,
            inbound.remote,
            now,
            out,
            mtype=NON if mtype is None else mtype,  # not `mtype or NON`: CON == 0 is falsy
            params=params,
            owner=owner,
            track_reset=False,
        )

    def respond_now(self, inbound: Inbound, response: ResponseParts, now: float) -> bytes | None:
        """:meth:`respond` for the common case, in fewer steps: the answer to a unicast
        request not yet answered (nor acknowledged), which No-Response does not
        suppress, goes out at once: piggybacked on the ACK of a CON, or as a NON with a
        new message ID to a NON when nothing waits towards the peer (NSTART).

        Returns the datagram to send to ``inbound.remote``, the state as :meth:`respond`
        would leave it; or None, having changed nothing, when the response cannot go out
        this way (already answered or acknowledged, a NON that has to wait its turn, too
        large, not encodable): then :meth:`respond` decides.
        """
        if inbound.state is not _PENDING or inbound.multicast:
            return None
        message = inbound.message
        code = response.code
        if message.options.get(_NO_RESPONSE) is not None and self._suppressed(inbound, code):
            return None
        mtype = inbound.mtype
        if mtype is CON:
            mid = inbound.mid
        else:
            peer = inbound.peer
            if self._peers.get(inbound.remote) is not peer:
                return None  # forgotten since (idle): send() meets the peer anew
            params = peer.params
            if peer.backlog or len(peer.outstanding) >= params.nstart:
                return None
            if not self._mids.available(peer):
                return None
            mid = -1  # allocated once the message is known to be encodable
        try:
            data = encode_parts(
                2 if mtype is CON else 1,
                code,
                0 if mid < 0 else mid,
                message.token,
                response.options,
                response.payload,
            )
        except EncodeError:
            return None
        if len(data) > self.config.max_message_size:
            return None
        if mtype is CON:
            self._piggybacked(inbound, data)
            return data
        mid = self._hold_mid(peer, now, params.exchange_lifetime)
        inbound.state = _DONE
        self.stats.sent += 1
        return b"".join((data[:2], bytes((mid >> 8, mid & 0xFF)), data[4:]))

    def _piggybacked(self, inbound: Inbound, data: bytes) -> None:
        self._store_reply(inbound, data)
        inbound.state = _DONE
        self.stats.piggybacked += 1

    def _suppressed(self, inbound: Inbound, code: int) -> bool:
        raw = inbound.message.options.get(OptionNumber.NO_RESPONSE)
        if raw is None:
            return (
                inbound.multicast
                and self.config.suppress_multicast_errors
                and code >= 128  # 4.xx and 5.xx (§8.2)
            )
        bits = int.from_bytes(raw, "big")
        return bool(bits & _NO_RESPONSE_BITS.get(code >> 5, 0))

    def _respond_to_multicast(
        self, inbound: Inbound, response: Message, now: float, out: Datagrams
    ) -> Outgoing | None:
        """Unicast NON response, after a random leisure (§8.2); never CON, never RST."""
        # The table's peer: the one the request came with may have been evicted since.
        peer = self._admit(inbound.remote, False)
        if peer is None or not self._mids.available(peer):
            self.stats.suppressed += 1
            return None
        mid = self._hold_mid(peer, now, peer.params.exchange_lifetime)
        data = encode_parts(
            1, response.code, mid, response.token, response.options, response.payload
        )
        self.stats.sent += 1
        if not self.config.multicast_leisure or peer.params.default_leisure == 0:
            out.append((data, inbound.remote))
            return None
        self._seq += 1
        due = now + self.rng.random() * peer.params.default_leisure
        heapq.heappush(self._delayed, (due, self._seq, data, inbound.remote))
        return None

    def accept(self, inbound: Inbound, out: Datagrams) -> None:
        """The layer above recognised a received separate response: ACK it if it was a CON."""
        if inbound.state is _PENDING and inbound.mtype is CON:
            self._send_empty_ack(inbound, out)
        inbound.state = _DONE

    def reject(self, inbound: Inbound, out: Datagrams) -> None:
        """Answer a received message with an RST (not recognised, or to cancel an observation)."""
        if inbound.state is _DONE or inbound.multicast:
            inbound.state = _DONE
            return
        data = _reply_bytes(3, inbound.mid)
        if inbound.mtype is CON:
            self._store_reply(inbound, data)
        out.append((data, inbound.remote))
        self.stats.resets_sent += 1
        inbound.state = _DONE

    def _send_empty_ack(self, inbound: Inbound, out: Datagrams) -> None:
        data = _reply_bytes(2, inbound.mid)
        self._store_reply(inbound, data)
        out.append((data, inbound.remote))
        self.stats.empty_acks_sent += 1
        inbound.state = _ACKED

    def _check_size(self, data: bytes) -> None:
        if len(data) > self.config.max_message_size:
            raise EncodeError(
                f"a message of {len(data)} bytes exceeds max_message_size "
                f"({self.config.max_message_size}); send large bodies block-wise"
            )

    @staticmethod
    def _store_reply(inbound: Inbound, data: bytes) -> None:
        """Keep the reply for replay to duplicates, if the dedup entry still exists."""
        stream = inbound.peer.con_stream
        if stream is not None and inbound.mid in stream.seen:
            stream.seen[inbound.mid] = data

    # -- sending ------------------------------------------------------------------------

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
    ) -> Outgoing:
        """Send a CON or NON message; the layer assigns its message ID.

        A CON is retransmitted until acknowledged.  When NSTART CONs are already
        outstanding towards ``remote`` (or no message ID is free), the message waits
        in the peer's backlog and goes out in order later.  ``track_reset``: remember
        a NON so that an RST answering it is reported (default: for NON requests).
        Raises :class:`BacklogFull` (or its :class:`PeerTableFull` when ``remote`` is new
        and the peer table is full), :class:`ProtocolUsageError` (CON to multicast,
        ACK/RST) and :class:`EndpointClosed`; encoding errors surface here too.
        """
        if self._closed:
            raise EndpointClosed("the endpoint is shut down")
        if mtype is None:
            mtype = message.mtype
        if mtype is not CON and mtype is not NON:
            raise ProtocolUsageError(
                "send() takes CON or NON messages; ACKs and RSTs are automatic"
            )
        if mtype is CON and self.is_multicast(remote):
            raise ProtocolUsageError("a CON message must not be sent to a multicast address (§8.1)")
        # Encode now (with a placeholder MID) so that a bad message fails at the call,
        # before any state about the remote exists.
        data = encode_parts(mtype, message.code, 0, message.token, message.options, message.payload)
        self._check_size(data)
        peer = self._admit(remote)
        if peer is None:
            raise PeerTableFull(
                f"no room for {describe_remote(remote)}: {self.config.max_peers} peers, all "
                "holding message IDs within their lifetime"
            )
        if params is None:
            params = peer.params
        if track_reset is None:
            track_reset = mtype is NON and is_request(message.code)
        outgoing = Outgoing(message, peer, mtype, params, owner, track_reset)
        outgoing.data = data
        if (
            peer.backlog
            or len(peer.outstanding) >= params.nstart
            or not self._mids.available(peer)
            or (peer.timing is not None and self._must_wait(peer, outgoing, now))
        ):
            if len(peer.backlog) >= self.config.backlog_limit:
                raise BacklogFull(
                    f"{len(peer.backlog)} messages already wait for {remote!r} (NSTART="
                    f"{params.nstart}); the backlog is full"
                )
            peer.backlog.append(outgoing)
            self.stats.queued += 1
            return outgoing
        self._transmit(outgoing, now, out)
        return outgoing

    def _transmit(self, outgoing: Outgoing, now: float, out: Datagrams) -> None:
        peer = outgoing.peer
        params = outgoing.params
        mid = self._hold_mid(peer, now, params.exchange_lifetime)
        data = outgoing.data
        data = b"".join((data[:2], bytes((mid >> 8, mid & 0xFF)), data[4:]))
        message = outgoing.message
        outgoing.message = _make(
            outgoing.mtype, message.code, mid, message.token, message.options, message.payload
        )
        outgoing.mid = mid
        outgoing.data = data
        outgoing.attempts = 1
        outgoing.sent_at = now
        out.append((data, outgoing.remote))
        self.stats.sent += 1
        if peer.timing is not None:
            peer.timing.transmitted(outgoing, len(data), now)
        if outgoing.mtype is CON:
            timeout = self._timers.first_timeout(outgoing, now)
            outgoing.state = _AWAITING
            outgoing.timeout = timeout
            outgoing.due = due = now + timeout
            peer.outstanding[mid] = outgoing
            self._seq += 1
            heapq.heappush(self._retransmissions, (due, self._seq, outgoing))
        else:
            outgoing.state = OutgoingState.SENT
            if outgoing.track_reset and self.config.recent_non_limit:
                recent = peer.recent_non
                recent[mid] = outgoing
                if len(recent) > self.config.recent_non_limit:
                    del recent[next(iter(recent))]

    def _drain(self, peer: Peer, now: float, out: Datagrams) -> None:
        """Send what the peer's backlog may send now, in order."""
        backlog = peer.backlog
        while backlog:
            head = backlog[0]
            if len(peer.outstanding) >= head.params.nstart or not self._mids.available(peer):
                return
            if peer.timing is not None and self._must_wait(peer, head, now):
                return
            backlog.popleft()
            self._transmit(head, now, out)

    def _must_wait(self, peer: Peer, outgoing: Outgoing, now: float) -> bool:
        """Whether the policy holds ``outgoing`` back (PROBING_RATE); if so, the peer's
        backlog is looked at again when it may go."""
        assert peer.timing is not None
        due = peer.timing.release_time(outgoing, now)
        if due <= now:
            return False
        self.stats.probing_holds += 1
        self._seq += 1
        heapq.heappush(self._held, (due, self._seq, peer))
        return True

    def cancel(self, outgoing: Outgoing, now: float, out: Datagrams) -> None:
        """Stop retransmitting (or never send) a message; frees its NSTART slot."""
        peer = outgoing.peer
        if outgoing.state is OutgoingState.QUEUED:
            with suppress(ValueError):
                peer.backlog.remove(outgoing)
            outgoing.state = OutgoingState.FAILED
        elif outgoing.state is _AWAITING:
            peer.outstanding.pop(outgoing.mid, None)
            outgoing.state = OutgoingState.FAILED
            if peer.backlog:
                self._drain(peer, now, out)
        elif outgoing.track_reset:
            peer.recent_non.pop(outgoing.mid, None)

    def held_back(self, remote: Remote, now: float) -> None:
        """What was sent to ``remote`` so far never reached the network: a layer under this
        one held it back (DTLS, until its handshake was done) and sends it now.  Each CON
        awaiting its ACK counts as sent once, now, and its retransmission timer starts
        afresh (RFC 7252 §4.2 counts transmissions, not attempts to hand a message down)."""
        peer = self._peers.get(remote)
        if peer is None:
            return
        for outgoing in peer.outstanding.values():
            params = outgoing.params
            timeout = params.ack_timeout * (
                1.0 + self.rng.random() * (params.ack_random_factor - 1.0)
            )
            outgoing.attempts = 1
            outgoing.timeout = timeout
            outgoing.due = due = now + timeout
            self._seq += 1
            heapq.heappush(self._retransmissions, (due, self._seq, outgoing))

    # -- time ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`handle_timeout` has work to do."""
        if self._closed:  # handle_timeout does nothing any more: no deadline to arm
            return None
        if self._fresh:
            self._settle()
        deadline: float | None = None
        heap = self._retransmissions
        while heap:
            due, _, outgoing = heap[0]
            if outgoing.state is _AWAITING and outgoing.due == due:
                deadline = due
                break
            heapq.heappop(heap)
        acks = self._empty_acks
        while acks:
            due, inbound = acks[0]
            if inbound.state is _PENDING:
                if deadline is None or due < deadline:
                    deadline = due
                break
            acks.popleft()
        held = self._held
        while held and not held[0][2].backlog:
            heapq.heappop(held)  # that backlog went (or was cancelled) meanwhile
        for candidate in (
            held[0][0] if held else None,
            self._delayed[0][0] if self._delayed else None,
            self._dedup.next_expiry(),
            self._mids.next_expiry(),
        ):
            if candidate is not None and (deadline is None or candidate < deadline):
                deadline = candidate
        return deadline

    def _settle(self) -> None:
        """Give the requests received lately and still unanswered their empty-ACK timer."""
        delay = self.config.empty_ack_delay
        acks = self._empty_acks
        for inbound in self._fresh:
            if inbound.state is _PENDING:
                acks.append((inbound.received_at + delay, inbound))
        self._fresh = []

    def handle_timeout(self, now: float, out: Datagrams) -> list[MessagingEvent]:
        """Do everything that is due at ``now``: retransmit, give up, send empty ACKs, expire."""
        if self._closed:
            return []
        events: list[MessagingEvent] = []
        heap = self._retransmissions
        while heap and heap[0][0] <= now:
            due, _, outgoing = heapq.heappop(heap)
            if outgoing.state is not _AWAITING or outgoing.due != due:
                continue
            if outgoing.attempts > outgoing.params.max_retransmit:
                peer = outgoing.peer
                peer.outstanding.pop(outgoing.mid, None)
                outgoing.state = OutgoingState.FAILED
                self.stats.timeouts += 1
                events.append(
                    DeliveryFailed(
                        outgoing,
                        RetransmissionsExceeded(
                            f"no acknowledgement from {describe_remote(outgoing.remote)} after "
                            f"{outgoing.attempts} transmissions"
                        ),
                    )
                )
                if peer.backlog:
                    self._drain(peer, now, out)
                continue
            out.append((outgoing.data, outgoing.remote))
            self.stats.retransmissions += 1
            outgoing.attempts += 1
            outgoing.timeout = self._timers.next_timeout(outgoing)
            if outgoing.peer.timing is not None:
                outgoing.peer.timing.transmitted(outgoing, len(outgoing.data), now)
            outgoing.due = due = now + outgoing.timeout
            self._seq += 1
            heapq.heappush(heap, (due, self._seq, outgoing))

        if self._fresh:
            self._settle()
        acks = self._empty_acks
        while acks and acks[0][0] <= now:
            _, inbound = acks.popleft()
            if inbound.state is _PENDING:
                self._send_empty_ack(inbound, out)

        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, data, remote = heapq.heappop(delayed)
            out.append((data, remote))

        held = self._held
        while held and held[0][0] <= now:
            _, _, peer = heapq.heappop(held)
            if peer.backlog and self._peers.get(peer.remote) is peer:
                self._drain(peer, now, out)

        self._expire(now, out)
        return events

    def _expire(self, now: float, out: Datagrams) -> None:
        for peer in self._mids.expire(now):
            if peer.backlog:
                self._drain(peer, now, out)
            if not peer.mids_in_use and self._peers.get(peer.remote) is peer:
                if peer.idle():
                    self._forget(peer)
                else:  # only deduplication entries left: evictable again
                    self._evictable[peer.remote] = peer
        for peer in self._dedup.expire(now):
            self._forget_if_idle(peer)
        self.stats.dedup_evictions = self._dedup.evictions

    def _forget_if_idle(self, peer: Peer) -> None:
        if peer.idle() and self._peers.get(peer.remote) is peer:
            self._forget(peer)

    def _forget(self, peer: Peer) -> None:
        del self._peers[peer.remote]
        self._evictable.pop(peer.remote, None)
        # A peer and its dedup streams point at each other: break the cycle, so that
        # reference counting frees them now.  A server in steady state allocates
        # almost no tracked objects, so the cyclic collector may not run for hours
        # and every forgotten peer (with its dedup tables) would stay in memory.  The
        # streams may outlive the peer in the runs of entries the per-peer cap removed.
        for stream in (peer.con_stream, peer.non_stream):
            if stream is not None:
                stream.peer = None
        peer.con_stream = peer.non_stream = None

    # -- errors from below, and the end ----------------------------------------------------

    def network_error(
        self, remote: Remote, error: CoapError, now: float, out: Datagrams
    ) -> list[MessagingEvent]:
        """The network reported ``error`` for ``remote``: fail everything towards it at once."""
        events: list[MessagingEvent] = []
        peer = self._peers.get(remote)
        if peer is not None:
            failed = [*peer.outstanding.values(), *peer.backlog]
            peer.outstanding.clear()
            peer.backlog.clear()
            for outgoing in failed:
                outgoing.state = OutgoingState.FAILED
                events.append(DeliveryFailed(outgoing, error))
        events.append(PeerFailed(remote, error))
        return events

    def message_failed(
        self, remote: Remote, mid: int, error: CoapError, now: float, out: Datagrams
    ) -> list[MessagingEvent]:
        """The network refused one message (e.g. too large for the path): fail only it.

        ``mid`` comes from the start of the datagram the error quotes.  A CON
        awaiting its ACK or a tracked NON fails with ``error``; anything else
        (an ACK, an untracked NON) has nobody waiting for it and is only reported.
        """
        peer = self._peers.get(remote)
        outgoing = None
        if peer is not None:
            outgoing = peer.outstanding.pop(mid, None)
            if outgoing is None:
                outgoing = peer.recent_non.pop(mid, None)
        if outgoing is None:
            return [MessageIgnored(remote, f"a message could not be sent: {error}", b"")]
        outgoing.state = OutgoingState.FAILED
        if peer is not None and peer.backlog:
            self._drain(peer, now, out)
        return [DeliveryFailed(outgoing, error)]

    def shutdown(self, now: float) -> list[MessagingEvent]:
        """Cancel every retransmission and backlog entry; nothing is sent afterwards."""
        if self._closed:
            return []
        self._closed = True
        events: list[MessagingEvent] = []
        for peer in self._peers.values():
            for outgoing in [*peer.outstanding.values(), *peer.backlog]:
                outgoing.state = OutgoingState.FAILED
                events.append(DeliveryFailed(outgoing, RequestCancelled("endpoint shut down")))
            peer.outstanding.clear()
            peer.backlog.clear()
        self._retransmissions.clear()
        self._held.clear()
        self._empty_acks.clear()
        self._fresh = []
        self._delayed.clear()
        return events
