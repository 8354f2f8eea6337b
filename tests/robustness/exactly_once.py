"""Non-idempotent POSTs over a lossy, duplicating, reordering simulated network.

:func:`run_cell` runs one cell of the matrix: ``clients`` client endpoints, each
sending ``posts`` POSTs at once (they wait in the client's backlog for NSTART=1),
to one server endpoint whose handler counts and numbers every request it runs.
It checks, and returns for the caller to assert on:

* every request ends exactly once, with its own response (the payload names the
  request) or with RetransmissionsExceeded, at most MAX_TRANSMIT_WAIT after its
  first transmission (and not before the sum of the shortest timeouts);
* the handler ran at most once per request: once for every success, and for a
  failure only if one of its copies reached the server (its answers were lost);
* every copy of a request the server received got an answer, and all answers to
  one message ID are the same bytes: duplicates get byte-identical replays.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from coapkit.codec.codes import Code
from coapkit.codec.message import Message, decode
from coapkit.codec.types import MessageType
from coapkit.endpoint import Endpoint
from coapkit.errors import RetransmissionsExceeded
from coapkit.exchanges.events import IncomingRequest, RequestFailed, ResponseEvent
from coapkit.messaging.parameters import DEFAULT_PARAMETERS
from coapkit.testing import EndpointNode, LinkConditions, SimulatedNetwork

SERVER = ("10.0.0.1", 5683)
PARAMS = DEFAULT_PARAMETERS
#: The earliest a CON can be given up: every timeout at its minimum, ACK_TIMEOUT.
MIN_GIVE_UP = PARAMS.ack_timeout * ((1 << (PARAMS.max_retransmit + 1)) - 1)


def model_failure_rate(loss: float) -> float:
    """A CON exchange fails when all MAX_RETRANSMIT + 1 transmissions lose the CON or its ACK."""
    return (1 - (1 - loss) ** 2) ** (PARAMS.max_retransmit + 1)


@dataclass
class CellResult:
    loss: float
    duplicate: float
    jitter: float
    seed: int
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    handler_runs: int = 0
    failed_but_executed: int = 0
    server_copies: int = 0  #: request datagrams the server received, duplicates included
    replays: int = 0  #: answers to copies after the first (byte-identical by the checks)
    datagrams: int = 0
    end_time: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def failure_rate(self) -> float:
        return self.failed / self.requests


def client_address(index: int) -> tuple[str, int]:
    return (f"10.0.{1 + index // 250}.{1 + index % 250}", 5683)


def run_cell(
    loss: float,
    duplicate: float,
    jitter: float,
    seed: int,
    *,
    clients: int = 100,
    posts: int = 100,
) -> CellResult:
    result = CellResult(loss, duplicate, jitter, seed)
    conditions = LinkConditions(latency=0.005, jitter=jitter, loss=loss, duplicate=duplicate)
    net = SimulatedNetwork(seed=seed, conditions=conditions)

    executed: list[bytes] = []  # request ids in the order the handler ran them

    def app(node: EndpointNode, event: IncomingRequest, now: float) -> Message:
        executed.append(event.request.payload)
        return Message(code=Code.CHANGED, payload=event.request.payload + b" #%d" % len(executed))

    server = EndpointNode(Endpoint(rng=random.Random(seed)), app)
    net.attach(SERVER, server)

    handles: dict[object, tuple[tuple[str, int], bytes]] = {}  # handle -> (client, request id)
    by_token: dict[tuple[tuple[str, int], bytes], bytes] = {}  # (client, token) -> request id
    nodes: list[tuple[tuple[str, int], EndpointNode]] = []
    for index in range(clients):
        address = client_address(index)
        node = EndpointNode(Endpoint(rng=random.Random(seed * 100_003 + index + 1)))
        net.attach(address, node)
        nodes.append((address, node))

        def start(now: float, address: tuple[str, int] = address, node: EndpointNode = node):
            out = []
            for number in range(posts):
                rid = b"%s:%d/%d" % (address[0].encode(), address[1], number)
                message = Message(code=Code.POST, payload=rid)
                handle, datagrams = node.request(message, SERVER, now)
                handles[handle] = (address, rid)
                by_token[(address, handle.token)] = rid
                out.extend(datagrams)
            return out

        net.call_at(index * 0.01, address, start)
    result.requests = clients * posts

    net.run_until_quiet(1e9)
    result.end_time = net.now

    # -- outcomes at the clients --
    first_sent: dict[bytes, float] = {}
    copies: Counter[tuple[object, int]] = Counter()  # (client, MID) -> copies the server got
    answers: dict[tuple[object, int], list[bytes]] = defaultdict(list)
    for entry in net.trace:
        if entry.event == "sent" and entry.dst == SERVER:
            message = decode(entry.data)
            rid = by_token.get((entry.src, message.token))  # type: ignore[arg-type]
            if rid is not None and rid not in first_sent:
                first_sent[rid] = entry.time
        elif entry.event == "delivered" and entry.dst == SERVER:
            message = decode(entry.data)
            if message.mtype is MessageType.CON:
                copies[(entry.src, message.mid)] += 1
                result.server_copies += 1
        elif entry.event == "sent" and entry.src == SERVER:
            result.datagrams += 1
            message = decode(entry.data)
            if message.mtype is MessageType.ACK:
                answers[(entry.dst, message.mid)].append(entry.data)
    result.datagrams += sum(1 for e in net.trace if e.event == "sent" and e.dst == SERVER)

    outcomes: dict[bytes, str] = {}
    for _, node in nodes:
        for time, event in node.events:
            if isinstance(event, ResponseEvent):
                _, rid = handles[event.handle]
                if not event.final:
                    result.problems.append(f"{rid!r}: a non-final response")
                if rid in outcomes:
                    result.problems.append(f"{rid!r}: a second outcome")
                outcomes[rid] = "ok"
                if not event.response.payload.startswith(rid + b" #"):
                    result.problems.append(f"{rid!r} got {event.response.payload!r}")
                if event.response.code != Code.CHANGED:
                    result.problems.append(f"{rid!r} got code {event.response.code}")
            elif isinstance(event, RequestFailed):
                _, rid = handles[event.handle]
                if rid in outcomes:
                    result.problems.append(f"{rid!r}: a second outcome")
                outcomes[rid] = "failed"
                if not isinstance(event.error, RetransmissionsExceeded):
                    result.problems.append(f"{rid!r} failed with {event.error!r}")
                waited = time - first_sent[rid]
                if not MIN_GIVE_UP <= waited <= PARAMS.max_transmit_wait:
                    result.problems.append(f"{rid!r} failed {waited:.3f} s after its first send")
    if len(outcomes) != result.requests:
        result.problems.append(f"{result.requests - len(outcomes)} requests never ended")
    result.succeeded = sum(1 for o in outcomes.values() if o == "ok")
    result.failed = sum(1 for o in outcomes.values() if o == "failed")

    # -- the server: each request at most once, every success exactly once --
    result.handler_runs = len(executed)
    runs = Counter(executed)
    twice = [rid for rid, count in runs.items() if count > 1]
    if twice:
        result.problems.append(f"{len(twice)} requests ran twice, e.g. {twice[0]!r}")
    for rid, outcome in outcomes.items():
        if outcome == "ok" and rid not in runs:
            result.problems.append(f"{rid!r} succeeded but never ran")
    result.failed_but_executed = sum(
        1 for rid, outcome in outcomes.items() if outcome == "failed" and rid in runs
    )
    if result.handler_runs != result.succeeded + result.failed_but_executed:
        result.problems.append(
            f"{result.handler_runs} handler runs for {result.succeeded} successes and "
            f"{result.failed_but_executed} failures that reached the server"
        )

    # -- replays: every copy answered, with the same bytes --
    for key, count in copies.items():
        sent = answers.get(key, [])
        if len(sent) != count:
            result.problems.append(f"{key}: {count} copies received, {len(sent)} answers")
        if any(data != sent[0] for data in sent):
            result.problems.append(f"{key}: answers differ: {[d.hex() for d in sent]}")
        result.replays += max(0, len(sent) - 1)
    return result
