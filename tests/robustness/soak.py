"""A long run of mixed traffic on the simulated network, and what must be left afterwards.

:func:`run_soak` attaches one server endpoint and ``clients`` client endpoints
to a lossy network.  Each client acts at random (a Poisson process, one action
every ``mean_interval`` seconds on average), picking one of:

* a plain GET of ``/plain`` or a POST to ``/counter``;
* a block-wise download: GET ``/large`` (8,000 bytes, Block2);
* a block-wise upload: POST 3,000 bytes to ``/upload`` (Block1);
* an observation of ``/obs`` (``Endpoint.request`` with Observe=0 and
  ``keep_open=True``) that it cancels after 5 to 60 minutes (``Endpoint.cancel``
  sends the deregistration).

The server renders ``/obs`` anew every ``notify_interval`` seconds and notifies
its observers with ``Endpoint.notify`` (every fifth notification to an observer
is a CON, the others NON; every tenth state is 3,000 bytes, so its notification
carries the first block and the clients fetch the rest).  The endpoint's
:class:`~coapkit.observe.server.ObserveServer` does the bookkeeping, driven as
``coapkit.server`` drives it (``observe.on_response`` for registrations,
``observe.updated`` and ``Endpoint.notify`` for new states): an RST or a CON never
acknowledged removes the observer.

Every response is checked against what was asked (bodies intact, uploads
acknowledged with their length, notifications well-formed).  Clients stop
acting ``quiet_margin`` seconds before the end and every observation is
cancelled by then; the server keeps notifying until the end, so that observers
whose deregistration was lost are found out by the RST to a CON notification.
Then time runs on for EXCHANGE_LIFETIME + the transfer timeout + MAX_TRANSMIT_WAIT
and :class:`SoakResult` records what is left in every table.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from coapkit.blockwise.client import TransferProgress
from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.option_registry import OptionNumber
from coapkit.codec.options import Options
from coapkit.endpoint import Endpoint
from coapkit.errors import BacklogFull, RetransmissionsExceeded
from coapkit.exchanges.events import (
    Diagnostic,
    IncomingRequest,
    RequestAcknowledged,
    RequestFailed,
    ResponseEvent,
)
from coapkit.messaging.parameters import DEFAULT_PARAMETERS
from coapkit.messaging.records import Remote
from coapkit.observe.registry import ObserveConfig, ObserveRegistry
from coapkit.observe.server import ObserverRemoved
from coapkit.resources import Request, Response, Site
from coapkit.testing import EndpointNode, LinkConditions, SimulatedNetwork

SERVER = ("10.0.0.1", 5683)
PARAMS = DEFAULT_PARAMETERS
LARGE = bytes(random.Random(7959).randbytes(8000))
UPLOAD_SIZE = 3000
OBS_PATH = ("obs",)
#: After the last traffic, every lifetime and timeout has passed by then.
QUIET = PARAMS.exchange_lifetime + 247.0 + PARAMS.max_transmit_wait + 60.0


def state_payload(number: int) -> bytes:
    """The representation of /obs in its ``number``-th state."""
    size = 3000 if number % 10 == 0 else 200
    head = b"state %08d " % number
    filler = hashlib.sha256(head).digest() * (size // 32 + 1)
    return (head + filler)[:size]


def state_number(payload: bytes) -> int | None:
    """The state a notification says it carries, if it is exactly that state's body."""
    try:
        number = int(payload[6:14])
    except ValueError:
        return None
    return number if payload == state_payload(number) else None


# -- the server ------------------------------------------------------------------------------


class SoakServer(EndpointNode):
    """An endpoint serving the soak site, with Observe driven as coapkit.server drives it:
    the endpoint's ObserveServer registers, numbers, sends and forgets the observers."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self.site = self._site()
        self.observers = endpoint.observe.registry
        self.state = 0
        self.counter = 0
        self.problems: list[str] = []
        self.notifications_sent = 0  #: notify() calls, one per observer and state
        self.observers_removed = 0  #: by the server itself (RST, no ACK, send failure)
        self.deregistrations = 0  #: by the clients (GET with Observe=1)

    def _site(self) -> Site:
        site = Site()

        @site.route("/plain")
        def plain(request: Request) -> Response:
            return Response(payload=b"plain")

        @site.route("/counter", methods=("POST",))
        def counter(request: Request) -> Response:
            self.counter += 1
            return Response(Code.CHANGED, request.payload)

        @site.route("/large")
        def large(request: Request) -> Response:
            return Response(payload=LARGE)

        @site.route("/upload", methods=("POST",))
        def upload(request: Request) -> Response:
            if request.payload != upload_body(request.payload[:16]):
                self.problems.append(f"upload arrived damaged: {request.payload[:16]!r}")
            return Response(Code.CHANGED, b"%d" % len(request.payload))

        @site.route("/obs", observable=True)
        def obs(request: Request) -> Response:
            return Response(payload=state_payload(self.state), max_age=90)

        return site

    def _consume(self, output: Any, now: float) -> list[tuple[bytes, Remote]]:
        datagrams: list[tuple[bytes, Remote]] = list(output.datagrams)
        for event in output.events:
            cls = event.__class__
            if cls is IncomingRequest:
                datagrams.extend(self._request(event, now))
            elif cls is ObserverRemoved:
                self.observers_removed += 1
            elif cls is not Diagnostic:
                self.problems.append(f"server event {event!r}")
        return datagrams

    def _request(self, event: IncomingRequest, now: float) -> list[tuple[bytes, Remote]]:
        request = Request(event.request, event.remote, event.handle)
        response = self.site.dispatch(request)
        assert isinstance(response, Response)
        message = response.to_message()
        if OptionNumber.OBSERVE in event.request.options:
            key = OBS_PATH if request.path == OBS_PATH else None
            before = len(self.observers)
            message = self.endpoint.observe.on_response(
                key, event.request, event.remote, message, now
            )
            if len(self.observers) < before:
                self.deregistrations += 1
        try:
            return list(self.endpoint.respond(event.handle, message, now).datagrams)
        except BacklogFull as exc:
            self.problems.append(f"response not sent: {exc}")
            return []

    def notify(self, now: float) -> list[tuple[bytes, Remote]]:
        """A new state of /obs: render it for every observer and let the endpoint send it."""
        self.state += 1
        sequence, observers = self.endpoint.observe.updated(OBS_PATH)
        datagrams: list[tuple[bytes, Remote]] = []
        for observer in observers:
            rendering = Response(payload=state_payload(self.state), max_age=90).to_message()
            output = self.endpoint.notify(observer, rendering, now, sequence=sequence)
            self.notifications_sent += 1
            datagrams.extend(self._consume(output, now))
        return datagrams


def upload_body(head: bytes) -> bytes:
    return (head * (UPLOAD_SIZE // 16 + 1))[:UPLOAD_SIZE]


# -- the clients -----------------------------------------------------------------------------


@dataclass
class Tally:
    started: dict[str, int] = field(default_factory=dict)
    succeeded: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    notifications: int = 0
    observations_cancelled: int = 0
    problems: list[str] = field(default_factory=list)

    def count(self, table: dict[str, int], kind: str) -> None:
        table[kind] = table.get(kind, 0) + 1


class SoakClient(EndpointNode):
    """A client endpoint that checks every answer against what it asked."""

    def __init__(self, endpoint: Endpoint, address: Remote, tally: Tally) -> None:
        super().__init__(endpoint)
        self.address = address
        self.tally = tally
        self.pending: dict[Any, tuple[str, bytes]] = {}  # handle -> (kind, expectation)
        self.observation: Any = None

    def _consume(self, output: Any, now: float) -> list[tuple[bytes, Remote]]:
        tally = self.tally
        for event in output.events:
            cls = event.__class__
            if cls is ResponseEvent:
                kind, expected = self.pending.get(event.handle, ("?", b""))
                if kind == "observe" and not event.final:
                    if state_number(event.response.payload) is None:
                        tally.problems.append(f"bad notification {event.response.payload[:20]!r}")
                    tally.notifications += 1
                    continue
                self.pending.pop(event.handle, None)
                if kind == "observe":
                    # The server ended the observation (no Observe in the answer).
                    tally.problems.append(f"observation ended by {event.response!r}")
                    self.observation = None
                elif event.response.payload != expected:
                    tally.problems.append(
                        f"{kind}: {event.response.payload[:20]!r} for {expected[:20]!r}"
                    )
                else:
                    tally.count(tally.succeeded, kind)
            elif cls is RequestFailed:
                kind, _ = self.pending.pop(event.handle, ("?", b""))
                if kind == "observe":
                    self.observation = None
                tally.count(tally.failed, kind)
                if not isinstance(event.error, RetransmissionsExceeded):
                    tally.problems.append(f"{kind} failed: {event.error!r}")
            elif cls not in (TransferProgress, RequestAcknowledged, Diagnostic):
                tally.problems.append(f"client event {event!r}")
        return list(output.datagrams)

    def start(self, kind: str, now: float, rng: random.Random) -> list[tuple[bytes, Remote]]:
        endpoint = self.endpoint
        keep_open = False
        if kind == "plain":
            message = Message(code=Code.GET, options=Options.build(uri_path=["plain"]))
            expected = b"plain"
        elif kind == "post":
            body = b"%s %d" % (str(self.address).encode(), rng.randrange(1 << 30))
            message = Message(
                code=Code.POST, options=Options.build(uri_path=["counter"]), payload=body
            )
            expected = body
        elif kind == "download":
            message = Message(code=Code.GET, options=Options.build(uri_path=["large"]))
            expected = LARGE
        elif kind == "upload":
            head = b"%015d|" % rng.randrange(10**15)
            message = Message(
                code=Code.POST,
                options=Options.build(uri_path=["upload"]),
                payload=upload_body(head),
            )
            expected = b"%d" % UPLOAD_SIZE
        else:
            message = Message(code=Code.GET, options=Options.build(uri_path=["obs"], observe=0))
            expected = b""
            keep_open = True
        handle, output = endpoint.request(message, SERVER, now, keep_open=keep_open)
        self.pending[handle] = (kind, expected)
        self.tally.count(self.tally.started, kind)
        if keep_open:
            self.observation = handle
        return self._consume(output, now)

    def stop_observing(self, now: float) -> list[tuple[bytes, Remote]]:
        handle, self.observation = self.observation, None
        if handle is None:
            return []
        self.pending.pop(handle, None)
        self.tally.observations_cancelled += 1
        return self._consume(self.endpoint.cancel(handle, now), now)


# -- the run ---------------------------------------------------------------------------------

KINDS = ("plain", "post", "download", "upload", "observe")
WEIGHTS = (35, 25, 15, 10, 15)


@dataclass
class SoakResult:
    clients: int
    hours: float
    loss: float
    tally: Tally
    server_problems: list[str]
    samples: list[dict[str, int]]  #: the server's tables, sampled every ``sample_every`` s
    left_server: dict[str, int]
    left_clients: dict[str, int]
    datagrams: int
    lost: int
    notifications_sent: int
    observers_removed: int
    deregistrations: int
    end_time: float


def server_tables(server: SoakServer) -> dict[str, int]:
    endpoint = server.endpoint
    messaging = endpoint.messaging
    return {
        "dedup": messaging.dedup_entries,
        "peers": messaging.peer_count,
        "open requests": endpoint.client.open_count,
        "bodies": endpoint.blockwise.bodies_in_progress,
        "cached": endpoint.blockwise.cached_representations,
        "finished bodies": endpoint.blockwise.finished_bodies,
        "buffered bytes": endpoint.blockwise.buffered_bytes,
        "observers": len(server.observers),
        "deadline set": int(endpoint.next_deadline() is not None),
    }


def client_tables(endpoint: Endpoint) -> dict[str, int]:
    messaging = endpoint.messaging
    return {
        "dedup": messaging.dedup_entries,
        "peers": messaging.peer_count,
        "open requests": endpoint.client.open_count,
        "uploads": len(endpoint.transfers._uploads),
        "bodies": endpoint.blockwise.bodies_in_progress,
        "cached": endpoint.blockwise.cached_representations,
        "deadline set": int(endpoint.next_deadline() is not None),
    }


def run_soak(
    *,
    clients: int,
    hours: float,
    loss: float = 0.3,
    seed: int = 1,
    mean_interval: float = 600.0,
    notify_interval: float = 60.0,
    quiet_margin: float = 900.0,
    sample_every: float = 3600.0,
) -> SoakResult:
    net = SimulatedNetwork(
        seed=seed,
        conditions=LinkConditions(latency=0.01, jitter=0.02, loss=loss, duplicate=0.01),
        keep_trace=False,
    )
    registry = ObserveRegistry(ObserveConfig(con_every=5))
    server = SoakServer(Endpoint(rng=random.Random(seed), observers=registry))
    net.attach(SERVER, server)
    end = hours * 3600.0
    stop_acting = end - quiet_margin
    tally = Tally()
    nodes: list[SoakClient] = []

    def actor(node: SoakClient, rng: random.Random) -> Any:
        def act(now: float) -> Any:
            if now >= stop_acting:
                return None
            net.call_at(now + rng.expovariate(1 / mean_interval), node.address, act)
            kind = rng.choices(KINDS, WEIGHTS)[0]
            if kind == "observe":
                if node.observation is not None:
                    return None
                stop = min(now + rng.uniform(300, 3600), stop_acting)
                net.call_at(stop, node.address, node.stop_observing)
            return node.start(kind, now, rng)

        return act

    for index in range(clients):
        address = (f"10.1.{index // 250}.{1 + index % 250}", 5683)
        node = SoakClient(Endpoint(rng=random.Random(seed * 1_000_003 + index)), address, tally)
        net.attach(address, node)
        nodes.append(node)
        rng = random.Random(seed * 7919 + index)
        net.call_at(rng.uniform(0, mean_interval), address, actor(node, rng))

    def notify(now: float) -> Any:
        if now + notify_interval <= end:
            net.call_at(now + notify_interval, SERVER, notify)
        return server.notify(now)

    net.call_at(notify_interval, SERVER, notify)

    samples: list[dict[str, int]] = []

    def sample(now: float) -> None:
        samples.append({"time": int(now), **server_tables(server)})
        if now + sample_every <= end:
            net.call_at(now + sample_every, SERVER, sample)

    net.call_at(sample_every, SERVER, sample)

    net.run_until(end + QUIET)

    left_clients: dict[str, int] = {}
    for node in nodes:
        for name, count in client_tables(node.endpoint).items():
            left_clients[name] = left_clients.get(name, 0) + count
        if node.pending:
            left_clients["pending handles"] = left_clients.get("pending handles", 0) + len(
                node.pending
            )
    return SoakResult(
        clients=clients,
        hours=hours,
        loss=loss,
        tally=tally,
        server_problems=server.problems,
        samples=samples,
        left_server=server_tables(server),
        left_clients=left_clients,
        datagrams=net.delivered + net.lost,
        lost=net.lost,
        notifications_sent=server.notifications_sent,
        observers_removed=server.observers_removed,
        deregistrations=server.deregistrations,
        end_time=net.now,
    )
