#!/usr/bin/env python3
"""Coverage-guided fuzzing of a whole sans-I/O server endpoint (coapkit.endpoint.Endpoint).

One input is a *script*: a sequence of records, each starting with an op byte
``kind | remote << 3 | flags << 5`` (four remotes, IPv4 and IPv6):

====  ==================================================================================
kind  record
====  ==================================================================================
0     a raw datagram from the remote: length byte, bytes (flag 1: sent to a group)
1     a datagram from a template (below): template, MID, p, q bytes, then ``flags``
      (byte position, value) patches of the encoded template
2     time passes: one byte picks 0 s .. 300 s
3     a datagram received earlier again (byte: how far back), now from this remote
4     the application answers the deferred requests (``/slow``), separately
5     the application notifies the observers of ``/obs`` (flag 1: CON, flag 2: large)
6     the remote answers a CON the endpoint sent it: ACK (flag 1 clear) or RST
7     a raw datagram with a two-byte length
====  ==================================================================================

Templates are valid CoAP built with coapkit's encoder (GET of a small and a large
resource with any Block2, Block1 uploads of any num/more/szx/Size1/Request-Tag,
Observe registrations and deregistrations, FETCH, pings, ACKs and RSTs with the
MIDs the endpoint used, stray responses, unknown and repeated options, No-Response,
Proxy-Uri...), so most inputs are valid-ish CoAP and libFuzzer's byte mutations of
the seeds (fuzz/seeds/endpoint, made by ``--write-seeds``) stay near the protocol.
Time only moves forward; whenever the endpoint's deadline comes, ``handle_timeout``
runs at that deadline, as the runtime's single timer would.

The endpoint serves a Site (``/small``, a 5,000-byte ``/large``, ``/upload``
taking POST and PUT bodies block-wise, observable ``/obs``, ``/slow`` answered
later, ``/.well-known/core``) with small caps, so that every cap is hit.
After every step:

1. nothing escapes the endpoint (``datagram_received``, ``handle_timeout``,
   ``respond`` and ``notify``; the application's ``respond``/``notify`` may only
   meet :class:`~coapkit.errors.BacklogFull`);
2. every datagram it emits decodes with coapkit's decoder;
3. every table is within its cap: deduplication entries and their expiry runs
   in total and per peer, peers (``max_peers``, set below the number of
   remotes so that peers are evicted and remotes refused), the message-ID hold
   runs per peer (a slice of the lifetime each) and their count, the backlog
   and NSTART per peer, block-wise bodies (bytes in total and per body, bodies
   per remote, bodies in total, also below what the remotes could open; the
   index of bodies by remote agrees with the table) and cache (entries,
   bytes), observers;
4. after ``handle_timeout(t)`` the next deadline is later than ``t`` (a deadline
   that does not move would spin the runtime's timer).

Every script runs twice, once through the general path (``datagram_received``,
``respond``) and once through the runtime's fast path (``accept_request`` first,
``respond_now`` first, the general path when they decline): the two runs must emit
the same datagrams at the same times and leave the same state (statistics,
deduplication entries, peers, next deadline) after every step.

At the end the deferred requests are answered, and time runs past
backlog_limit x MAX_TRANSMIT_WAIT (what waits in a backlog towards a silent peer
leaves one message at a time) + EXCHANGE_LIFETIME (or the block-wise transfer
timeout, if longer): then every table is empty (deduplication, peers, message-ID
holds, retransmissions, open requests, block-wise bodies and cache) and there is
no deadline at all.

    python fuzz/fuzz_endpoint.py -atheris_runs=1000000 fuzz/corpus-endpoint fuzz/seeds/endpoint
    python fuzz/fuzz_endpoint.py --no-atheris -runs=100000 fuzz/seeds/endpoint
    python fuzz/fuzz_endpoint.py --write-seeds fuzz/seeds/endpoint
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzzlib

COVERAGE_GUIDED = fuzzlib.atheris_wanted(__name__)
if COVERAGE_GUIDED:
    with fuzzlib.atheris.instrument_imports(include=["coapkit"]):
        import coapkit.endpoint
        import coapkit.observe.registry
        import coapkit.resources  # noqa: F401

from coapkit.blockwise.server import BlockwiseConfig  # noqa: E402
from coapkit.codec.codes import Code  # noqa: E402
from coapkit.codec.message import Message, decode, encode  # noqa: E402
from coapkit.codec.option_registry import OptionNumber, encode_uint  # noqa: E402
from coapkit.codec.options import Options  # noqa: E402
from coapkit.codec.types import MessageType  # noqa: E402
from coapkit.endpoint import Endpoint, Output  # noqa: E402
from coapkit.errors import BacklogFull, CoapError, DecodeError  # noqa: E402
from coapkit.exchanges.amplification import AmplificationConfig  # noqa: E402
from coapkit.exchanges.events import IncomingRequest  # noqa: E402
from coapkit.messaging.layer import MessagingConfig  # noqa: E402
from coapkit.messaging.parameters import DEFAULT_PARAMETERS  # noqa: E402
from coapkit.messaging.records import Inbound, Remote  # noqa: E402
from coapkit.observe.registry import ObserveConfig, ObserveRegistry  # noqa: E402
from coapkit.resources import Request, Response, Site  # noqa: E402

N = OptionNumber
CON, NON, ACK, RST = MessageType.CON, MessageType.NON, MessageType.ACK, MessageType.RST

REMOTES: tuple[Remote, ...] = (
    ("192.0.2.1", 5683),
    ("192.0.2.2", 40000),
    ("2001:db8::1", 5683, 0, 0),
    ("192.0.2.1", 5684),
)
MESSAGING = MessagingConfig(
    dedup_cap_total=24, dedup_cap_per_peer=8, backlog_limit=4, max_peers=len(REMOTES) - 1
)
BLOCKWISE = BlockwiseConfig(
    max_body=4096,
    max_body_total=6144,
    max_bodies_per_remote=2,
    max_bodies=3,
    cache_entries=3,
    cache_bytes=12_000,
    transfer_timeout=247.0,
)
OBSERVE = ObserveConfig(max_observers=4, max_per_remote=2)
PARAMS = DEFAULT_PARAMETERS
#: Time after the last input by which every table must be empty.
#: Messages queued towards a silent peer go out one at a time (NSTART = 1), each after the
#: CON before it has used up its retransmissions: the last one leaves up to backlog_limit x
#: MAX_TRANSMIT_WAIT after the last input, and its message ID is held EXCHANGE_LIFETIME more
#: (rounded up to the end of its slice of the lifetime).
HOLD = PARAMS.exchange_lifetime * (MESSAGING.mid_hold_slices + 1) / MESSAGING.mid_hold_slices
QUIET_AFTER = (
    MESSAGING.backlog_limit * PARAMS.max_transmit_wait
    + max(HOLD, BLOCKWISE.transfer_timeout)
    + PARAMS.default_leisure
    + 10.0
)
TIME_STEPS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 93.0, 145.0)
TIME_STEPS += (247.0, 300.0)
LARGE = bytes(range(256)) * 19 + b"end of the large resource"  # 4,890 bytes
MAX_TIMEOUT_CALLS = 100_000


class InvariantError(AssertionError):
    """The endpoint broke one of the invariants in the module docstring."""


# -- the site ----------------------------------------------------------------------------


def make_site() -> Site:
    site = Site()

    @site.route("/small", rt="small")
    def small(request: Request) -> Response:
        return Response(payload="small")

    @site.route("/large", methods=("GET", "FETCH"), sz=len(LARGE))
    def large(request: Request) -> Response:
        return Response(payload=LARGE, content_format=42)

    @site.route("/upload", methods=("POST", "PUT"))
    def upload(request: Request) -> Response:
        digest = hashlib.sha256(request.payload).hexdigest()[:16]
        return Response(Code.CHANGED, f"{len(request.payload)} {digest}")

    @site.route("/obs", observable=True)
    def obs(request: Request) -> Response:
        return Response(payload="state", max_age=30)

    @site.route("/slow")
    def slow(request: Request) -> Response:
        return Response(payload="late")

    return site


SITE = make_site()
OBS_PATH = ("obs",)


# -- one run -----------------------------------------------------------------------------------


class Harness:
    """One endpoint, its application, and the checks.

    ``fast``: try the endpoint's fast path first, as the asyncio driver does
    (:meth:`Endpoint.accept_request`, :meth:`Endpoint.respond_now`).
    """

    def __init__(self, fast: bool = False, amplification: bool = False) -> None:
        self.fast = fast
        #: what an observer of the endpoint sees: datagrams with their times, and the
        #: state after every step; the same for both paths
        self.transcript: list[tuple[Any, ...]] = []
        #: requests taken by accept_request, responses by respond_now
        self.fast_taken = [0, 0]
        self.observers = ObserveRegistry(OBSERVE)
        self.endpoint = Endpoint(
            rng=random.Random(7252),
            transmission=PARAMS,
            messaging=MESSAGING,
            blockwise=BLOCKWISE,
            observers=self.observers,
            amplification=AmplificationConfig() if amplification else None,
        )
        self.now = 0.0
        self.deferred: list[tuple[Inbound, Request]] = []
        self.received: list[bytes] = []
        #: message IDs of the CONs the endpoint sent, per remote, newest last
        self.sent_cons: dict[Remote, list[int]] = {}
        self.emitted = 0

    # -- inputs --

    def deliver(self, data: bytes, remote: Remote, multicast: bool = False) -> None:
        self.run_timers(self.now)
        self.received.append(data)
        if len(self.received) > 64:
            del self.received[:32]
        inbound = None
        if self.fast and not multicast:
            inbound = self.endpoint.accept_request(data, remote, self.now)
        if inbound is not None:
            self.fast_taken[0] += 1
            self.on_request(IncomingRequest(inbound.message, remote, inbound), self.now)
        else:
            output = self.endpoint.datagram_received(data, remote, self.now, multicast=multicast)
            self.process(output, self.now)
        self.check_caps()
        self.snapshot()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.run_timers(self.now)
        self.check_caps()
        self.snapshot()

    def snapshot(self) -> None:
        endpoint = self.endpoint
        messaging = endpoint.messaging
        self.transcript.append(
            (
                "state",
                self.now,
                asdict(messaging.stats),
                messaging.dedup_entries,
                messaging.peer_count,
                endpoint.next_deadline(),
            )
        )

    def run_timers(self, until: float) -> None:
        endpoint = self.endpoint
        for _ in range(MAX_TIMEOUT_CALLS):
            deadline = endpoint.next_deadline()
            if deadline is None or deadline > until:
                return
            self.process(endpoint.handle_timeout(deadline), deadline)
            after = endpoint.next_deadline()
            if after is not None and after <= deadline:
                raise InvariantError(
                    f"after handle_timeout({deadline}) the next deadline is {after}: "
                    "the runtime's timer would spin"
                )
        raise InvariantError(f"more than {MAX_TIMEOUT_CALLS} deadlines before {until}")

    # -- outputs --

    def process(self, output: Output, now: float) -> None:
        for data, remote in output.datagrams:
            self.emitted += 1
            self.transcript.append(("sent", now, data, remote))
            if remote not in REMOTES:
                raise InvariantError(f"datagram sent to {remote!r}, which sent nothing")
            try:
                message = decode(data)
            except DecodeError as exc:
                raise InvariantError(f"emitted datagram does not decode: {data.hex()}") from exc
            if message.mtype is CON:
                mids = self.sent_cons.setdefault(remote, [])
                mids.append(message.mid)
                if len(mids) > 16:
                    del mids[:8]
        for event in output.events:
            if event.__class__ is IncomingRequest:
                self.on_request(event, now)

    # -- the application --

    def on_request(self, event: IncomingRequest, now: float) -> None:
        request = Request(event.request, event.remote, event.handle)
        try:
            path = request.path
        except CoapError:  # not UTF-8: the site answers 4.00
            path = None
        if path == ("slow",):
            self.deferred.append((event.handle, request))
            return
        response = SITE.dispatch(request)
        assert isinstance(response, Response)
        message = response.to_message()
        if N.OBSERVE in event.request.options:  # as coapkit.server does
            key = OBS_PATH if path == OBS_PATH else None
            message = self.endpoint.observe.on_response(
                key, event.request, event.remote, message, now
            )
        self.respond(event.handle, message, now)

    def respond(self, handle: Inbound, message: Message, now: float) -> None:
        if self.fast:
            data = self.endpoint.respond_now(handle, message, now)
            if data is not None:
                self.fast_taken[1] += 1
                self.process(Output([(data, handle.remote)], [], self.endpoint), now)
                return
        try:
            output = self.endpoint.respond(handle, message, now)
        except BacklogFull:
            return
        self.process(output, now)

    def answer_deferred(self, large: bool) -> None:
        self.run_timers(self.now)
        deferred, self.deferred = self.deferred, []
        for handle, _request in deferred:
            payload = LARGE if large else b"late"
            self.respond(handle, Response(payload=payload).to_message(), self.now)
        self.check_caps()

    def notify(self, confirmable: bool, large: bool) -> None:
        """A new state of /obs, rendered for and sent to every observer (as coapkit.server)."""
        self.run_timers(self.now)
        sequence, observers = self.endpoint.observe.updated(OBS_PATH)
        for observer in observers:
            payload = LARGE if large else b"state %d" % sequence
            output = self.endpoint.notify(
                observer,
                Response(payload=payload).to_message(),
                self.now,
                sequence=sequence,
                mtype=CON if confirmable else None,
            )
            self.process(output, self.now)
        self.check_caps()

    # -- the checks --

    def check_caps(self) -> None:
        messaging = self.endpoint.messaging
        if messaging.dedup_entries > MESSAGING.dedup_cap_total:
            raise InvariantError(f"{messaging.dedup_entries} deduplication entries")
        if messaging.dedup_runs > MESSAGING.dedup_cap_total:
            raise InvariantError(f"{messaging.dedup_runs} deduplication runs")
        if messaging.peer_count > MESSAGING.max_peers:
            raise InvariantError(f"{messaging.peer_count} peers, max_peers {MESSAGING.max_peers}")
        hold_runs = 0
        for remote in REMOTES:
            peer = messaging.peer(remote)
            if peer is None:
                continue
            runs = len(peer.hold_expiries)
            hold_runs += runs
            if runs > MESSAGING.mid_hold_slices + 1 or runs != len(peer.hold_counts):
                raise InvariantError(f"{runs} message-ID hold runs for {remote}")
            if sum(peer.hold_counts) != peer.mids_in_use:
                raise InvariantError(f"hold runs of {remote} do not add up to its IDs in use")
            if peer.dedup_entries > MESSAGING.dedup_cap_per_peer:
                raise InvariantError(f"{peer.dedup_entries} deduplication entries for {remote}")
            if len(peer.backlog) > MESSAGING.backlog_limit:
                raise InvariantError(f"backlog of {len(peer.backlog)} for {remote}")
            if len(peer.outstanding) > peer.params.nstart:
                raise InvariantError(f"{len(peer.outstanding)} CONs outstanding to {remote}")
        if hold_runs != messaging.mid_hold_runs:
            raise InvariantError(f"{messaging.mid_hold_runs} hold runs counted, {hold_runs} held")
        blockwise = self.endpoint.blockwise
        bodies = blockwise._bodies
        if len(bodies) > BLOCKWISE.max_bodies:
            raise InvariantError(f"{len(bodies)} bodies, max_bodies {BLOCKWISE.max_bodies}")
        by_remote: dict[Remote, list[tuple[object, ...]]] = {}
        for key, body in bodies.items():
            by_remote.setdefault(body.remote, []).append(key)
        if {remote: list(keys) for remote, keys in blockwise._by_remote.items()} != by_remote:
            raise InvariantError("the index of bodies by remote disagrees with the bodies")
        body_bytes = sum(len(body.data) for body in bodies.values())
        if body_bytes != blockwise._body_bytes or body_bytes > BLOCKWISE.max_body_total:
            raise InvariantError(f"{body_bytes} bytes of bodies ({blockwise._body_bytes} counted)")
        if any(len(body.data) > BLOCKWISE.max_body for body in bodies.values()):
            raise InvariantError("a body over max_body")
        for remote in REMOTES:
            if sum(body.remote == remote for body in bodies.values()) > (
                BLOCKWISE.max_bodies_per_remote
            ):
                raise InvariantError(f"too many bodies from {remote}")
        cache = blockwise._cache
        cache_bytes = sum(len(entry.payload) for entry in cache.values())
        if cache_bytes != blockwise._cache_bytes or cache_bytes > BLOCKWISE.cache_bytes:
            raise InvariantError(f"{cache_bytes} bytes cached ({blockwise._cache_bytes} counted)")
        if len(cache) > BLOCKWISE.cache_entries:
            raise InvariantError(f"{len(cache)} representations cached")
        if blockwise.finished_bodies > BLOCKWISE.cache_entries:
            raise InvariantError(f"{blockwise.finished_bodies} finished bodies remembered")
        if len(self.observers) > OBSERVE.max_observers:
            raise InvariantError(f"{len(self.observers)} observers")

    def finish(self) -> None:
        """Answer what is pending, let every lifetime pass, and check that all is gone."""
        self.answer_deferred(large=False)
        self.now += QUIET_AFTER
        self.run_timers(self.now)
        self.check_caps()
        endpoint = self.endpoint
        messaging = endpoint.messaging
        left = {
            "dedup entries": messaging.dedup_entries,
            "peers": messaging.peer_count,
            "open client requests": endpoint.client.open_count,
            "block-wise bodies": endpoint.blockwise.bodies_in_progress,
            "cached representations": endpoint.blockwise.cached_representations,
            "finished bodies": endpoint.blockwise.finished_bodies,
            "buffered bytes": endpoint.blockwise.buffered_bytes,
        }
        leftovers = {name: count for name, count in left.items() if count}
        if leftovers:
            raise InvariantError(f"{QUIET_AFTER} s after the last input, still: {leftovers}")
        deadline = endpoint.next_deadline()
        if deadline is not None:
            raise InvariantError(f"nothing is left, but a deadline remains at {deadline}")


# -- templates -------------------------------------------------------------------------------


def _block(num: int, more: int, szx: int) -> bytes:
    return encode_uint((num << 4) | (8 if more else 0) | (szx & 7))


def _message(
    mtype: MessageType,
    code: int,
    mid: int,
    token: bytes,
    path: tuple[str, ...] = (),
    payload: bytes = b"",
    raw: tuple[tuple[int, bytes], ...] = (),
    **options: Any,
) -> bytes:
    built = Options.build(uri_path=list(path), **options) if path or options else Options()
    for number, value in raw:
        built = built.add(number, value)
    return encode(Message(mtype, code, mid, token, built, payload))


def _upload(mtype: MessageType, mid: int, token: bytes, p: int, q: int) -> bytes:
    szx, more = q & 7, q & 8
    size = 16 << min(szx, 6)
    length = size if more else (p * 13) % (size + 1)
    raw = [(int(N.BLOCK1), _block(p & 0x7F, more, szx))]
    if q & 0x40:
        raw.append((int(N.SIZE1), encode_uint(p * 64)))
    if q & 0x80:
        raw.append((int(N.REQUEST_TAG), bytes((p & 3,))))
    code = Code.PUT if q & 0x20 else Code.POST
    return _message(mtype, code, mid, token, ("upload",), bytes([p]) * length, tuple(raw))


def _block2_option(p: int, q: int) -> tuple[tuple[int, bytes], ...]:
    return ((int(N.BLOCK2), _block(p, 0, q)),) if q & 0x20 else ()


Template = Callable[[int, bytes, int, int], bytes]

TEMPLATES: tuple[Template, ...] = (
    lambda mid, tok, p, q: _message(CON, Code.GET, mid, tok, ("small",)),
    lambda mid, tok, p, q: _message(NON, Code.GET, mid, tok, ("small",)),
    lambda mid, tok, p, q: _message(CON, Code.GET, mid, tok, ("large",), raw=_block2_option(p, q)),
    lambda mid, tok, p, q: _upload(CON, mid, tok, p, q),
    lambda mid, tok, p, q: _message(CON, Code.PUT, mid, tok, ("upload",), b"x" * (p * 12)),
    lambda mid, tok, p, q: _message(CON if q & 1 else NON, Code.GET, mid, tok, ("slow",)),
    lambda mid, tok, p, q: _message(
        NON if q & 2 else CON,
        Code.GET,
        mid,
        tok,
        OBS_PATH,
        raw=((int(N.OBSERVE), encode_uint(q & 1)), *_block2_option(p, q)),
    ),
    lambda mid, tok, p, q: _message(
        CON,
        Code.GET,
        mid,
        tok,
        (".well-known", "core"),
        raw=((int(N.URI_QUERY), b"rt=small"),) * (q & 1)
        + (((int(N.BLOCK2), _block(p & 3, 0, q >> 1)),) if q & 0x10 else ()),
    ),
    lambda mid, tok, p, q: _message(CON, Code.DELETE, mid, tok, ("small",)),
    lambda mid, tok, p, q: _message(CON, Code.GET, mid, tok, ("missing", str(p))),
    lambda mid, tok, p, q: _message(CON, 0, mid, b""),  # a ping
    lambda mid, tok, p, q: _message(ACK, 0, mid, b""),
    lambda mid, tok, p, q: _message(RST, 0, mid, b""),
    lambda mid, tok, p, q: _message(ACK, Code.CONTENT, mid, tok, payload=b"stray"),
    lambda mid, tok, p, q: _message(CON, Code.CONTENT, mid, tok, payload=b"stray"),
    lambda mid, tok, p, q: _message(NON, Code.CONTENT, mid, tok, payload=b"stray"),
    lambda mid, tok, p, q: _message(
        CON,
        Code.GET,
        mid,
        tok,
        ("small",),
        raw=(((p * 257 + q) & 0xFFFF, bytes(q & 15)),),
    ),
    lambda mid, tok, p, q: _message(
        CON if q & 1 else NON,
        Code.GET,
        mid,
        tok,
        ("large",),
        raw=((int(N.NO_RESPONSE), bytes((p,))),),
    ),
    lambda mid, tok, p, q: _message(
        CON, Code.FETCH, mid, tok, ("large",), bytes((p,)) * (q & 31), raw=_block2_option(p, q)
    ),
    lambda mid, tok, p, q: _upload(NON, mid, tok, p, q),
    lambda mid, tok, p, q: _message(
        CON,
        Code.GET,
        mid,
        tok,
        ("large",),
        raw=((int(N.ETAG), bytes((p,))), (int(N.BLOCK2), _block(p, 0, q)), (int(N.SIZE2), b"")),
    ),
    lambda mid, tok, p, q: _message(CON, Code.GET, mid, tok, proxy_uri="coap://h/x"),
    lambda mid, tok, p, q: _message(
        CON,
        Code.POST,
        mid,
        tok,
        ("upload",),
        bytes(16 << (q & 3)),
        raw=((int(N.BLOCK2), _block(p, 0, q)), (int(N.BLOCK1), _block(p & 3, q & 8, q & 3))),
    ),
    lambda mid, tok, p, q: _message(
        CON, Code.GET, mid, tok, ("large",), raw=((int(N.OBSERVE), b""),)
    ),
)
#: Templates whose MID should be one the endpoint used (ACK, RST, piggybacked response).
ANSWERS = frozenset({11, 12, 13})


def _token(q: int) -> bytes:
    if q & 0x10:
        return b""
    return bytes((q & 0x0F,)) * (1 + (q >> 6))


# -- reading a script ---------------------------------------------------------------------------


def run_script(data: bytes, fast: bool = False, amplification: bool = False) -> Harness:
    """Play one input against a fresh endpoint, checking as it goes; returns the harness.
    ``amplification``: with the amplification defence on (as in ``coapkit server``)."""
    harness = Harness(fast, amplification)
    pos, length = 0, len(data)
    while pos < length:
        op = data[pos]
        pos += 1
        kind, remote, flags = op & 7, REMOTES[(op >> 3) & 3], op >> 5
        if kind in (0, 7):
            if kind == 0:
                size = data[pos] if pos < length else 0
                pos += 1
            else:
                size = int.from_bytes(data[pos : pos + 2], "big") & 0x7FF
                pos += 2
            datagram = data[pos : pos + size]
            pos += size
            harness.deliver(datagram, remote, multicast=bool(flags & 1))
        elif kind == 1:
            record = data[pos : pos + 4].ljust(4, b"\0")
            pos += 4
            index, mid, p, q = record
            index %= len(TEMPLATES)
            if index in ANSWERS:
                used = harness.sent_cons.get(remote)
                if used:
                    mid = used[-1 - (mid % len(used))]
            else:
                mid |= (q & 0xC0) << 2
            datagram = bytearray(TEMPLATES[index](mid, _token(q), p, q))
            for _ in range(flags):
                if pos + 1 < length and datagram:
                    datagram[data[pos] % len(datagram)] = data[pos + 1]
                pos += 2
            harness.deliver(bytes(datagram), remote, multicast=flags == 7)
        elif kind == 2:
            step = data[pos] if pos < length else 0
            pos += 1
            harness.advance(TIME_STEPS[step % len(TIME_STEPS)])
        elif kind == 3:
            back = data[pos] if pos < length else 0
            pos += 1
            if harness.received:
                earlier = harness.received[-1 - (back % len(harness.received))]
                harness.deliver(earlier, remote, multicast=bool(flags & 1))
        elif kind == 4:
            harness.answer_deferred(large=bool(flags & 1))
        elif kind == 5:
            harness.notify(confirmable=bool(flags & 1), large=bool(flags & 2))
        else:  # 6
            used = harness.sent_cons.get(remote)
            if used:
                mid = used[-1 - (flags % len(used))]
                harness.deliver(_message(RST if flags & 1 else ACK, 0, mid, b""), remote)
    harness.finish()
    return harness


def run_both(data: bytes, amplification: bool = False) -> tuple[Harness, Harness]:
    """Play one input through the general and the fast path; the transcripts must match."""
    general = run_script(data, amplification=amplification)
    fast = run_script(data, fast=True, amplification=amplification)
    if general.transcript != fast.transcript:
        for index, (seen, expected) in enumerate(
            zip(fast.transcript, general.transcript, strict=False)
        ):
            if seen != expected:
                raise InvariantError(
                    f"the fast path differs at step {index}: {seen!r}, not {expected!r}"
                )
        raise InvariantError(
            f"the fast path gives {len(fast.transcript)} steps, not {len(general.transcript)}"
        )
    return general, fast


def check(data: bytes) -> bool:
    """Check the invariants for one script; True if the endpoint sent anything."""
    return run_both(data)[0].emitted > 0


def TestOneInput(data: bytes) -> None:
    run_both(data)


# -- scripts for the seeds and the pure-Python mode ------------------------------------------


def op(kind: int, remote: int = 0, flags: int = 0) -> int:
    return kind | (remote << 3) | (flags << 5)


def template(index: int, mid: int, p: int = 0, q: int = 0, remote: int = 0) -> bytes:
    return bytes((op(1, remote), index, mid & 0xFF, p, q))


def wait(step: int) -> bytes:
    """Time passes: ``step`` indexes TIME_STEPS."""
    return bytes((op(2), step))


def raw(datagram: bytes, remote: int = 0, multicast: bool = False) -> bytes:
    return bytes((op(0, remote, int(multicast)), len(datagram))) + datagram


def seed_scripts() -> dict[str, bytes]:
    """Named scripts of ordinary traffic; libFuzzer mutates these."""
    get_small = _message(CON, Code.GET, 0x1234, b"\x01", ("small",))
    block2 = b"".join(template(2, 10 + n, n, 0x26) for n in range(5))  # szx 6, num 0..4
    upload = b"".join(
        template(3, 40 + n, n, 0x0E if n < 2 else 0x06) for n in range(3)
    )  # Block1 szx 6
    return {
        "get-small.bin": raw(get_small) + wait(4) + raw(get_small) + wait(8),
        "get-large-block2.bin": template(2, 9, 0, 0) + block2 + wait(7),
        "upload-block1.bin": upload + template(3, 42, 2, 0x06) + wait(9),
        "observe-notify.bin": template(6, 70, 0, 0x00)
        + bytes((op(5, 0, 1),))
        + bytes((op(6, 0, 0),))
        + bytes((op(5, 0, 2),))
        + wait(13)
        + template(6, 71, 0, 0x01),
        "slow-separate.bin": template(5, 80, 0, 0x01)
        + wait(6)
        + bytes((op(4, 0, 0),))
        + bytes((op(6, 0, 0),))
        + wait(10),
        "duplicates-and-replays.bin": template(0, 5, 0, 3)
        + bytes((op(3, 0), 0, op(3, 1), 0))
        + template(19, 6, 0, 0x0E)
        + bytes((op(3, 2), 0)),
        "ping-rst-multicast.bin": template(10, 1)
        + template(12, 2)
        + raw(_message(NON, Code.GET, 3, b"\x07", (".well-known", "core")), 1, True)
        + wait(10),
        "many-peers.bin": b"".join(template(1, n, 0, n, remote=n % 4) for n in range(40)),
        # Block 0 of a POST and of a PUT body from each remote (16-byte blocks, more=1):
        # eight bodies for room for three, four remotes for room for three peers; then the
        # last body's final block.
        "many-uploads.bin": b"".join(
            template(3, 90 + n, 0, 0x08 | (0x20 if n >= 4 else 0), remote=n % 4) for n in range(8)
        )
        + template(3, 98, 1, 0x20, remote=3),
        "malformed.bin": raw(bytes.fromhex("49010001"))
        + raw(bytes.fromhex("40010001ff"))
        + raw(bytes.fromhex("4001000173010203")),
    }


_KIND_WEIGHTS = (0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6, 7)


def generate(rng: random.Random) -> bytes:
    """A random script, mostly templates, with time steps, replays and application actions."""
    out = bytearray()
    for _ in range(rng.randrange(1, 40)):
        kind = rng.choice(_KIND_WEIGHTS)
        remote = rng.randrange(4) if rng.random() < 0.5 else 0
        if kind == 1:
            flags = rng.randrange(8) if rng.random() < 0.1 else 0
            out += bytes((op(1, remote, flags), rng.randrange(len(TEMPLATES))))
            out += bytes((rng.randrange(24), rng.randrange(256), rng.randrange(256)))
            out += rng.randbytes(2 * flags)
        elif kind in (0, 7):
            datagram = TEMPLATES[rng.randrange(len(TEMPLATES))](
                rng.randrange(65536), b"\x01", rng.randrange(256), rng.randrange(256)
            )
            if rng.random() < 0.7:
                datagram = fuzzlib.mutate(datagram, [], rng, 255)
            out += raw(datagram[:255], remote, rng.random() < 0.1)
        elif kind == 2:
            out += bytes((op(2), rng.randrange(len(TIME_STEPS))))
        elif kind == 3:
            out += bytes((op(3, remote, rng.randrange(2)), rng.randrange(8)))
        else:
            out += bytes((op(kind, remote, rng.randrange(8)),))
    return bytes(out)


def write_seeds(directory: str) -> None:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for name, script in seed_scripts().items():
        (path / name).write_bytes(script)
        print(f"{path / name}: {len(script)} bytes")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write-seeds"]:
        write_seeds(argv[1] if len(argv) > 1 else str(Path(__file__).parent / "seeds/endpoint"))
        return 0
    return fuzzlib.main(
        argv,
        name="fuzz_endpoint",
        test_one_input=TestOneInput,
        check=check,
        generate=generate,
        coverage_guided=COVERAGE_GUIDED,
        max_len=2048,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
