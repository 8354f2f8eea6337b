"""Sans-I/O nodes and the real client and server on one network, in one virtual time."""

from __future__ import annotations

import asyncio
import random

import pytest

from coapkit import Code, Message, Options
from coapkit.endpoint import Endpoint
from coapkit.exchanges.events import IncomingRequest, ResponseEvent
from coapkit.testing import EndpointNode, SimulatedNetwork, VirtualNetwork, serve_site
from tests.testing.helpers import ACK, CON, App, sent


async def test_the_real_client_asks_a_sans_io_node_serving_the_site() -> None:
    app = App()
    net = VirtualNetwork(seed=1)
    node = EndpointNode(Endpoint(rng=net.random_source()), app=serve_site(app.site))
    sensor = net.add_node(node, address="sensor")
    async with net.client() as client:
        hello = await client.get("coap://sensor/hello?name=node")
        slow = await client.get("coap://sensor/slow?s=4")  # an async handler, on the loop
        posted = await client.post("coap://sensor/log", "x")
        answers = sent(net, sensor, client.local_address)
    assert (hello.text, slow.text, posted.code) == ("Hello, node!", "done", Code.CREATED)
    assert app.posts == [b"x"]
    assert len(node.events_of(IncomingRequest)) == 3
    # The async handler's request got an empty ACK, then the response 4 s later.
    assert [(m.mtype, m.code) for _, m in answers] == [
        (ACK, Code.CONTENT),
        (ACK, 0),
        (CON, Code.CONTENT),
        (ACK, Code.CREATED),
    ]
    assert answers[2][0] - answers[1][0] == pytest.approx(3.9, abs=0.01)
    assert not node.pending


async def test_a_failing_async_handler_on_a_node_is_answered_5_00() -> None:
    app = App()
    net = VirtualNetwork(seed=2)
    node = EndpointNode(Endpoint(rng=net.random_source()), app=serve_site(app.site))
    net.add_node(node, address="sensor")
    async with net.client() as client:
        response = await client.get("coap://sensor/fails")
    assert response.code == Code.INTERNAL_SERVER_ERROR


async def test_a_sans_io_client_asks_the_real_server() -> None:
    app = App()
    net = VirtualNetwork(seed=3, loss=0.2)
    node = EndpointNode(Endpoint(rng=net.random_source()))
    me = net.add_node(node, address="gateway", port=40000)
    async with net.server(app.site) as server:
        for n in range(5):
            request = Message(
                code=Code.POST, options=Options.build(uri_path=["log"]), payload=b"%d" % n
            )
            net.simulated.call_at(
                net.now + n,
                me,
                lambda now, r=request: node.request(r, server.address, now)[1],
            )
        await asyncio.sleep(120)  # virtual time passes for both kinds of node alike
    answers = [e.response for e in node.events_of(ResponseEvent)]
    assert sorted(m.payload for m in answers) == [b"1", b"2", b"3", b"4", b"5"]
    assert sorted(app.posts) == [b"0", b"1", b"2", b"3", b"4"]


async def test_the_loop_drives_a_plain_simulated_network() -> None:
    app = App()
    network = SimulatedNetwork(seed=4)
    server = ("192.0.2.1", 5683)
    client = EndpointNode(Endpoint(rng=random.Random(4)))
    network.attach(server, EndpointNode(Endpoint(rng=random.Random(5)), app=serve_site(app.site)))
    network.attach(("192.0.2.2", 40000), client)
    loop = asyncio.get_running_loop()
    loop.drive(network)  # type: ignore[attr-defined]
    assert network.clock is loop.clock  # type: ignore[attr-defined]
    get = Message(code=Code.GET, options=Options.build(uri_path=["slow"]))
    network.call_at(0.0, ("192.0.2.2", 40000), lambda now: client.request(get, server, now)[1])
    await asyncio.sleep(10)
    [event] = client.events_of(ResponseEvent)
    assert event.response.payload == b"done"
    assert loop.time() == 10.0
