"""The sans-I/O simulator: ICMP errors, groups, and async handlers behind serve_site."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Generator
from typing import Any

import pytest

from coapkit import Code, Message, Options, Request, Response, Site
from coapkit.codec.types import MessageType
from coapkit.endpoint import Endpoint
from coapkit.errors import NetworkError, RetransmissionsExceeded
from coapkit.exchanges.events import RequestFailed, ResponseEvent
from coapkit.testing import EndpointNode, LinkConditions, SimulatedNetwork, serve_site

ACK = MessageType.ACK

SERVER = ("192.0.2.1", 5683)
CLIENT = ("192.0.2.2", 40000)
NOBODY = ("192.0.2.9", 5683)


def get(path: str) -> Message:
    return Message(code=Code.GET, options=Options.build(uri_path=[path]))


def client_on(network: SimulatedNetwork) -> EndpointNode:
    node = EndpointNode(Endpoint(rng=random.Random(1)))
    network.attach(CLIENT, node)
    return node


def ask(network: SimulatedNetwork, client: EndpointNode, path: str, to: Any = SERVER) -> None:
    network.call_at(network.now, CLIENT, lambda now: client.request(get(path), to, now)[1])


# -- port unreachable ------------------------------------------------------------------------------


def test_port_unreachable_fails_the_exchange_after_one_round_trip() -> None:
    network = SimulatedNetwork(
        seed=1, conditions=LinkConditions(latency=0.02), port_unreachable=True
    )
    client = client_on(network)
    ask(network, client, "x", to=NOBODY)
    network.run_until_quiet(limit=300.0)
    [failed] = client.events_of(RequestFailed)
    assert isinstance(failed.error, NetworkError)
    assert (
        str(failed.error)
        == "192.0.2.9:5683: port unreachable (simulated ICMP): nothing listens there"
    )
    assert [(e.time, e.event, e.src, e.dst) for e in network.trace] == [
        (0.0, "sent", CLIENT, NOBODY),
        (0.02, "unroutable", CLIENT, NOBODY),
        (0.04, "unreachable", NOBODY, CLIENT),
    ]
    assert network.trace[-1].data == network.trace[0].data  # the quoted head of a short datagram


def test_without_port_unreachable_the_sender_retransmits_into_the_void() -> None:
    network = SimulatedNetwork(seed=1)
    client = client_on(network)
    ask(network, client, "x", to=NOBODY)
    network.run_until_quiet(limit=300.0)
    [failed] = client.events_of(RequestFailed)
    assert isinstance(failed.error, RetransmissionsExceeded)
    assert [e.event for e in network.trace] == ["sent", "unroutable"] * 5


def test_a_node_without_error_received_is_not_told() -> None:
    class Mute:
        def __init__(self) -> None:
            self.sent = False

        def datagram_received(self, *args: Any) -> list[tuple[bytes, Any]]:
            return []

        def handle_timeout(self, now: float) -> list[tuple[bytes, Any]]:
            if self.sent:
                return []
            self.sent = True
            return [(b"\x50\x01\x00\x01", NOBODY)]

        def next_deadline(self) -> float | None:
            return None if self.sent else 0.0

    network = SimulatedNetwork(port_unreachable=True)
    network.attach(CLIENT, Mute())
    network.run_until_quiet(limit=10.0)
    assert [e.event for e in network.trace] == ["sent", "unroutable"]


def test_detach_leaves_the_groups_too() -> None:
    network = SimulatedNetwork(port_unreachable=True)
    group = ("224.0.1.187", 5683)
    members = [EndpointNode(Endpoint(rng=random.Random(n))) for n in range(2)]
    network.attach(SERVER, members[0])
    network.attach(NOBODY, members[1])
    network.join(SERVER, group)
    network.join(NOBODY, group)
    network.detach(NOBODY)
    network.transmit(CLIENT, [(get("x").encode(), group)])
    network.run_until_quiet(limit=1.0)
    # Delivered to the member left, never to the detached one; no error for multicast.
    assert [(e.event, e.dst) for e in network.trace] == [("sent", SERVER), ("delivered", SERVER)]


# -- serve_site with async def handlers (issue 16: it raised TypeError) ----------------------------


def site_with_async_handlers() -> Site:
    site = Site()

    @site.route("/at-once")
    async def at_once(request: Request) -> Response:
        return Response(payload="no waiting")

    @site.route("/nested")
    async def nested(request: Request) -> Response:
        async def look_up() -> str:
            return "looked up"

        return Response(payload=await look_up())

    @site.route("/sleeps")
    async def sleeps(request: Request) -> Response:
        await asyncio.sleep(1)
        return Response(payload="slept")

    @site.route("/yields")
    async def yields(request: Request) -> Response:
        await Suspend()
        return Response(payload="never")

    return site


class Suspend:
    """An awaitable that suspends its coroutine without asyncio."""

    def __await__(self) -> Generator[None, None, None]:
        yield None


def test_async_handlers_that_do_not_wait_are_answered_at_once_without_a_loop() -> None:
    network = SimulatedNetwork(seed=2)
    network.attach(
        SERVER,
        EndpointNode(Endpoint(rng=random.Random(2)), app=serve_site(site_with_async_handlers())),
    )
    client = client_on(network)
    ask(network, client, "at-once")
    ask(network, client, "nested")
    network.run_until(1.0)
    answers = [e.response for e in client.events_of(ResponseEvent)]
    assert [(m.mtype, m.payload) for m in answers] == [
        (ACK, b"no waiting"),
        (ACK, b"looked up"),
    ]


def test_an_async_handler_needing_the_loop_fails_without_one() -> None:
    """asyncio.sleep needs a running loop: the handler raises, the site answers 5.00."""
    network = SimulatedNetwork(seed=2)
    network.attach(
        SERVER,
        EndpointNode(Endpoint(rng=random.Random(2)), app=serve_site(site_with_async_handlers())),
    )
    client = client_on(network)
    ask(network, client, "sleeps")
    network.run_until(1.0)
    [answer] = client.events_of(ResponseEvent)
    assert answer.response.code == Code.INTERNAL_SERVER_ERROR


def test_an_async_handler_that_suspends_without_a_loop_raises_type_error() -> None:
    network = SimulatedNetwork(seed=2)
    network.attach(
        SERVER,
        EndpointNode(Endpoint(rng=random.Random(2)), app=serve_site(site_with_async_handlers())),
    )
    client = client_on(network)
    ask(network, client, "yields")
    with pytest.raises(TypeError, match="no event loop runs this network"):
        network.run_until(1.0)


def test_a_coroutine_given_up_on_is_closed(recwarn: pytest.WarningsRecorder) -> None:
    """A coroutine given up on is closed: no 'coroutine was never awaited' warning."""
    network = SimulatedNetwork(seed=2)
    network.attach(
        SERVER,
        EndpointNode(Endpoint(rng=random.Random(2)), app=serve_site(site_with_async_handlers())),
    )
    client = client_on(network)
    ask(network, client, "yields")
    with pytest.raises(TypeError):
        network.run_until(1.0)
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_sync_handlers_are_answered_as_before() -> None:
    site = Site()

    @site.route("/plain")
    def plain(request: Request) -> Response:
        return Response(payload="plain")

    network = SimulatedNetwork(seed=2)
    network.attach(SERVER, EndpointNode(Endpoint(rng=random.Random(2)), app=serve_site(site)))
    client = client_on(network)
    ask(network, client, "plain")
    network.run_until(1.0)
    [answer] = client.events_of(ResponseEvent)
    assert (answer.response.mtype, answer.response.payload) == (ACK, b"plain")


# -- the trace for people --------------------------------------------------------------------------


def test_trace_lines_mark_losses_repeats_and_unreachable_ports() -> None:
    network = SimulatedNetwork(seed=3, port_unreachable=True)
    network.attach(SERVER, EndpointNode(Endpoint(rng=random.Random(2)), app=serve_site(Site())))
    client = client_on(network)
    network.set_link(CLIENT, SERVER, LinkConditions(latency=0.05, drop=frozenset({1})))
    ask(network, client, "x")
    network.run_until(10.0)
    ask(network, client, "y", to=NOBODY)
    network.run_until(20.0)
    lines = network.trace_lines()
    assert [line.split("  MID")[0] for line in lines] == [
        "> CON GET",
        "> CON GET",
        "> ACK 4.04 Not Found",
        "> CON GET",
        "! port unreachable  from 192.0.2.9:5683  to 192.0.2.2:40000  (+10.010 s)",
    ]
    assert lines[0].endswith("to 192.0.2.1:5683  (14 bytes, +0.000 s)  LOST")
    assert lines[1].endswith("(14 bytes, +2.802 s)  [retransmission 1]")
    assert lines[2].endswith("to 192.0.2.2:40000  (22 bytes, +2.852 s)")
    assert lines[3].endswith("to 192.0.2.9:5683  (14 bytes, +10.000 s)")
    detailed = network.trace_lines(details=True)
    assert ">   Uri-Path: 'x'" in detailed
