"""Properties over the seeded lossy simulator (docs/architecture.md).

Twenty clients send ten CON requests each to one server over links that lose
30 % and duplicate 10 % of the datagrams in both directions.  The server
answers piggybacked or, in the second variant, half a second later as a
separate CON response.  For every seed:

* every request that completes was handled by the server exactly once and
  was answered with its own response; no request was handled twice, no
  response reached the layer above a client twice;
* a CON that fails does so only with RetransmissionsExceeded, exactly 31 T
  after its first transmission, so within MAX_TRANSMIT_WAIT;
* after every step of the simulation: at most NSTART CONs outstanding per
  peer on every node, and the server's dedup table within its caps;
* in the trace, a message ID towards a peer is used again only after
  EXCHANGE_LIFETIME, and a retransmission is byte-identical and within
  MAX_TRANSMIT_SPAN of the first transmission;
* the same seed gives the same trace.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest

from coapkit.codec.message import Message
from coapkit.errors import RetransmissionsExceeded
from coapkit.messaging import (
    DEFAULT_PARAMETERS,
    DeliveryFailed,
    EmptyAckReceived,
    Inbound,
    MessageIgnored,
    MessageLayer,
    MessagingConfig,
    MessagingEvent,
    Outgoing,
    Remote,
    RequestReceived,
    ResponseReceived,
)
from coapkit.testing import LinkConditions, MessageLayerNode, SimulatedNetwork

from .helpers import ACK, CON, CONTENT, GET, SERVER

CLIENTS = 20
REQUESTS = 10
SEPARATE_DELAY = 0.5
PARAMS = DEFAULT_PARAMETERS
LOSSY = LinkConditions(latency=0.01, jitter=0.03, loss=0.3, duplicate=0.1)
SERVER_CONFIG = MessagingConfig(dedup_cap_total=CLIENTS * REQUESTS, dedup_cap_per_peer=REQUESTS)

Datagrams = list[tuple[bytes, Remote]]


def client_address(index: int) -> Remote:
    return (f"10.0.0.{index + 1}", 40_000 + index)


class Scenario:
    """One seeded run: the network, the nodes, and what each side handed up."""

    def __init__(self, seed: int, separate: bool) -> None:
        self.seed = seed
        self.separate = separate
        self.net = SimulatedNetwork(seed=seed, conditions=LOSSY)
        self.handled: Counter[tuple[Remote, bytes]] = Counter()  # (client, request payload)
        self.delivered: Counter[tuple[Remote, bytes]] = Counter()  # (client, token)
        self.responses: list[Outgoing] = []  # the server's separate responses
        self.server = MessageLayerNode(
            MessageLayer(rng=random.Random(seed * 1000 + 999), config=SERVER_CONFIG), self.serve
        )
        self.net.attach(SERVER, self.server)
        self.clients: dict[Remote, MessageLayerNode] = {}
        self.requests: dict[Remote, list[Outgoing]] = {}
        starts = random.Random(seed)
        for index in range(CLIENTS):
            address = client_address(index)
            node = MessageLayerNode(
                MessageLayer(rng=random.Random(seed * 1000 + index)), self.client_event
            )
            self.clients[address] = node
            self.requests[address] = []
            self.net.attach(address, node)
            self.net.call_at(starts.random(), address, self.starter(address, node, index))

    # -- the server ------------------------------------------------------------------------

    def serve(
        self, node: MessageLayerNode, event: MessagingEvent, now: float, out: Datagrams
    ) -> None:
        if not isinstance(event, RequestReceived):
            return
        request = event.message
        self.handled[(event.inbound.remote, request.payload)] += 1
        answer = Message(ACK, CONTENT, 0, request.token, payload=b"re:" + request.payload)
        if not self.separate:
            node.layer.respond(event.inbound, answer, now, out)
            return
        self.net.call_at(now + SEPARATE_DELAY, SERVER, self.later(event.inbound, answer))

    def later(self, inbound: Inbound, answer: Message) -> Callable[[float], Datagrams]:
        def respond(now: float) -> Datagrams:
            out: Datagrams = []
            outgoing = self.server.layer.respond(inbound, answer, now, out)
            assert outgoing is not None and outgoing.mtype is CON
            self.responses.append(outgoing)
            return out

        return respond

    # -- the clients -----------------------------------------------------------------------

    def client_event(
        self, node: MessageLayerNode, event: MessagingEvent, now: float, out: Datagrams
    ) -> None:
        if isinstance(event, ResponseReceived):
            assert event.remote == SERVER
            self.delivered[(node_address(self, node), event.message.token)] += 1
            if event.inbound is not None:
                node.layer.accept(event.inbound, out)

    def starter(
        self, address: Remote, node: MessageLayerNode, index: int
    ) -> Callable[[float], Datagrams]:
        def start(now: float) -> Datagrams:
            out: Datagrams = []
            for number in range(REQUESTS):
                payload = f"{index}:{number}".encode()
                message = Message(CON, GET, 0, bytes((index, number)), payload=payload)
                self.requests[address].append(node.layer.send(message, SERVER, now, out))
            return out

        return start

    # -- running -----------------------------------------------------------------------------

    def run(self) -> None:
        """Step to the end, checking the per-step invariants."""
        net = self.net
        server_layer = self.server.layer
        steps = 0
        while net.step():
            steps += 1
            for address, node in self.clients.items():
                assert node.layer.outstanding(SERVER) <= PARAMS.nstart
                assert server_layer.outstanding(address) <= PARAMS.nstart
                peer = server_layer.peer(address)
                assert peer is None or peer.dedup_entries <= SERVER_CONFIG.dedup_cap_per_peer
            assert server_layer.dedup_entries <= SERVER_CONFIG.dedup_cap_total
        assert steps > 1000
        assert net.now > PARAMS.exchange_lifetime  # everything expired in the end
        for layer in (server_layer, *(node.layer for node in self.clients.values())):
            assert (layer.peer_count, layer.dedup_entries, layer.next_deadline()) == (0, 0, None)


def node_address(s: Scenario, node: MessageLayerNode) -> Remote:
    for address, candidate in s.clients.items():
        if candidate is node:
            return address
    raise AssertionError("not a client")


SEEDS = range(12)


@pytest.fixture(
    scope="module",
    params=[(seed, separate) for separate in (False, True) for seed in SEEDS],
    ids=lambda p: f"{'separate' if p[1] else 'piggybacked'}-seed{p[0]}",
)
def scenario(request: pytest.FixtureRequest) -> Scenario:
    s = Scenario(*request.param)
    s.run()
    return s


def outcomes_of(node: MessageLayerNode) -> dict[int, list[MessagingEvent]]:
    """The events that end each of a node's outgoing messages, by id(outgoing)."""
    outcomes: dict[int, list[MessagingEvent]] = defaultdict(list)
    for _, event in node.events:
        if isinstance(event, ResponseReceived) and event.acknowledged is not None:
            outcomes[id(event.acknowledged)].append(event)
        elif isinstance(event, EmptyAckReceived | DeliveryFailed):
            outcomes[id(event.outgoing)].append(event)
    return outcomes


def test_each_request_is_handled_at_most_once_and_answered_with_its_own_response(
    scenario: Scenario,
) -> None:
    s = scenario
    completed = 0
    for address, node in s.clients.items():
        outcomes = outcomes_of(node)
        for outgoing in s.requests[address]:
            (outcome,) = outcomes[id(outgoing)]  # every request ends exactly once
            times_handled = s.handled[(address, outgoing.message.payload)]
            assert times_handled <= 1
            if isinstance(outcome, DeliveryFailed):
                continue
            completed += 1
            assert times_handled == 1
            if s.separate:
                assert isinstance(outcome, EmptyAckReceived)
            else:
                assert isinstance(outcome, ResponseReceived)
                assert outcome.message.payload == b"re:" + outgoing.message.payload
                assert outcome.message.token == outgoing.message.token
                assert outcome.message.mid == outgoing.mid
        for _, event in node.events:
            if isinstance(event, ResponseReceived):  # its own response: payload matches token
                index, number = event.message.token
                assert event.message.payload == f"re:{index}:{number}".encode()
    # An attempt gets through both ways with p = 0.7 ** 2; a CON fails with
    # p = 0.51 ** 5, about 3.5 %.
    assert completed >= 0.9 * CLIENTS * REQUESTS
    assert all(count == 1 for count in s.delivered.values())


def test_each_separate_response_reaches_the_client_once_if_acknowledged(
    scenario: Scenario,
) -> None:
    s = scenario
    if not s.separate:
        assert s.responses == []
        return
    assert len(s.responses) == sum(s.handled.values())
    outcomes = outcomes_of(s.server)
    for outgoing in s.responses:
        (outcome,) = outcomes[id(outgoing)]
        count = s.delivered[(outgoing.remote, outgoing.message.token)]
        if isinstance(outcome, EmptyAckReceived):
            assert count == 1
        else:
            assert isinstance(outcome, DeliveryFailed) and count <= 1


def test_failures_are_retransmissions_exceeded_within_max_transmit_wait(
    scenario: Scenario,
) -> None:
    s = scenario
    first: dict[tuple[Remote, Remote, int], float] = {}
    for entry in s.net.trace:
        if entry.event == "sent":
            key = (entry.src, entry.dst, int.from_bytes(entry.data[2:4], "big"))
            first.setdefault(key, entry.time)
    failures = 0
    for address, node in (*s.clients.items(), (SERVER, s.server)):
        for when, event in node.events:
            if isinstance(event, DeliveryFailed):
                failures += 1
                outgoing = event.outgoing
                assert isinstance(event.error, RetransmissionsExceeded)
                assert outgoing.attempts == PARAMS.max_retransmit + 1
                elapsed = when - first[(address, outgoing.remote, outgoing.mid)]
                assert elapsed <= PARAMS.max_transmit_wait
                initial = outgoing.timeout / 2**PARAMS.max_retransmit
                assert PARAMS.ack_timeout <= initial <= PARAMS.ack_timeout * 1.5
                assert elapsed == pytest.approx(31 * initial)
    assert failures > 0


def test_no_mid_reused_within_exchange_lifetime_and_retransmissions_identical(
    scenario: Scenario,
) -> None:
    s = scenario
    seen: dict[tuple[Remote, Remote, int], tuple[float, bytes]] = {}
    retransmissions = 0
    for entry in s.net.trace:
        if entry.event != "sent" or (entry.data[0] >> 4) & 3 > 1:  # CON and NON only
            continue
        key = (entry.src, entry.dst, int.from_bytes(entry.data[2:4], "big"))
        previous = seen.get(key)
        if previous is None:
            seen[key] = (entry.time, entry.data)
        elif previous[1] == entry.data and entry.time - previous[0] <= PARAMS.max_transmit_span:
            retransmissions += 1
        else:
            assert entry.time - previous[0] >= PARAMS.exchange_lifetime, key
            seen[key] = (entry.time, entry.data)
    assert len(seen) == CLIENTS * REQUESTS + len(s.responses)
    assert retransmissions > 0


def test_duplicates_were_answered_from_the_dedup_table(scenario: Scenario) -> None:
    stats = scenario.server.layer.stats
    assert stats.duplicates > 0
    if scenario.separate:
        assert stats.empty_acks_sent == sum(scenario.handled.values())
    else:
        assert stats.replays == stats.duplicates  # each duplicate got the stored reply
    ignored = [e for _, e in scenario.server.events if isinstance(e, MessageIgnored)]
    assert all(e.reason == "ACK matches no outstanding CON" for e in ignored)


def test_the_same_seed_gives_the_same_trace(scenario: Scenario) -> None:
    again = Scenario(scenario.seed, scenario.separate)
    again.run()
    assert again.net.trace == scenario.net.trace
