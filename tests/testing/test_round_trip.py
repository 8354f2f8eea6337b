"""The real Client and Server on a VirtualNetwork: requests as an application makes them."""

from __future__ import annotations

import asyncio
import time

import pytest

from coapkit import Client, Code, Server
from coapkit.errors import NetworkError, ProtocolUsageError, RetransmissionsExceeded
from coapkit.testing import VirtualNetwork, VirtualTransport
from tests.testing.helpers import ACK, CON, App, sent


async def test_get_and_post_round_trips() -> None:
    app = App()
    net = VirtualNetwork(seed=1)
    async with net.server(app.site, address="server") as server, net.client() as client:
        hello = await client.get("coap://server/hello?name=virtual")
        created = await client.post("coap://server/log", "first")
        again = await client.post("coap://server/log", b"second")

    assert (hello.code, hello.text) == (Code.CONTENT, "Hello, virtual!")
    assert (created.code, created.text) == (Code.CREATED, "1")
    assert (again.code, again.text) == (Code.CREATED, "2")
    assert app.posts == [b"first", b"second"]
    # The server is at the name's address; the client at a host of its own, port 49152.
    assert server.address == ("192.0.2.1", 5683) == hello.remote
    assert net.lookup("server") == net.lookup("SERVER") == "192.0.2.1"
    requests = sent(net, ("192.0.2.2", 49152), server.address)
    answers = sent(net, server.address, ("192.0.2.2", 49152))
    assert [m.mtype for _, m in requests] == [CON, CON, CON]
    assert [(m.mtype, m.code) for _, m in answers] == [
        (ACK, Code.CONTENT),
        (ACK, Code.CREATED),
        (ACK, Code.CREATED),
    ]
    # Three round trips over links of 5 ms: 30 ms of virtual time.
    assert net.now == pytest.approx(0.03)


async def test_the_clock_is_the_loops_and_waiting_costs_no_real_time() -> None:
    app = App()
    net = VirtualNetwork()
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    async with net.server(app.site), net.client() as client:
        await asyncio.sleep(3600)  # an hour of virtual time
        response = await client.get("coap://server/slow?s=200")  # and 200 s more
    assert response.text == "done"
    assert loop.time() == net.now == pytest.approx(3800.01, abs=0.01)
    assert time.perf_counter() - started < 2.0


async def test_server_and_client_accept_a_network_directly() -> None:
    """``network=`` is the seam: the very classes an application uses, on the simulator."""
    app = App()
    net = VirtualNetwork()
    host = net.add_host("coap.example", "2001:db8::5")
    async with (
        Server(app.site, bind=(host, 5683), network=net) as server,
        Client(network=net) as client,
    ):
        by_name = await client.get("coap://coap.example/hello")
        by_address = await client.get("coap://[2001:db8::5]/hello")
        assert isinstance(client.driver.transport, VirtualTransport)
    assert server.address == ("2001:db8::5", 5683)
    assert by_name.text == by_address.text == "Hello, world!"


async def test_a_client_made_without_network_uses_the_loops() -> None:
    """Application code that makes its own Client() runs in virtual time unchanged."""
    app = App()
    net = VirtualNetwork(seed=5)
    async with net.server(app.site, address="server"), Client() as client:
        response = await client.get("coap://server/hello")
        assert client.local_address[0] != "::"
    assert asyncio.get_running_loop().datagram_network is net  # type: ignore[attr-defined]
    assert response.text == "Hello, world!"
    assert len(net.trace) == 4  # request and ACK, each sent and delivered


async def test_unknown_names_and_taken_addresses() -> None:
    net = VirtualNetwork()
    async with net.server(App().site, address="server"), net.client() as client:
        with pytest.raises(NetworkError, match="cannot resolve host 'elsewhere'"):
            await client.get("coap://elsewhere/hello")
        with pytest.raises(OSError, match="in use"):
            await net.server(address="server").start()
    with pytest.raises(ValueError, match="already"):
        net.add_host("server", "192.0.2.99")


async def test_sending_to_nobody_fails_at_once_with_a_port_unreachable() -> None:
    net = VirtualNetwork()
    async with net.client() as client:
        with pytest.raises(NetworkError, match="port unreachable") as raised:
            await client.get("coap://192.0.2.77/hello")
    assert net.now == pytest.approx(0.01)  # one round trip, not 93 s of retransmissions
    assert [e.event for e in net.trace] == ["sent", "unroutable", "unreachable"]
    assert raised.value.errno == 111


async def test_without_unreachable_a_missing_server_is_silent() -> None:
    net = VirtualNetwork(unreachable=False)
    async with net.client() as client:
        with pytest.raises(RetransmissionsExceeded):
            await client.get("coap://192.0.2.77/hello")
    # Five transmissions, the last timeout ends the exchange: ACK_TIMEOUT (2 s) times a
    # random factor in [1, 1.5] times 1 + 2 + 4 + 8 + 16 (RFC 7252 §4.8.2).
    assert 62.0 <= net.now <= 93.0
    assert [e.event for e in net.trace] == ["sent", "unroutable"] * 5


def test_a_virtual_network_needs_virtual_time() -> None:
    async def main() -> None:
        async with VirtualNetwork().client():
            pass

    with pytest.raises(ProtocolUsageError, match="virtual time"):
        asyncio.run(main())


async def test_a_multicast_request_reaches_every_server_in_the_group() -> None:
    """RFC 7252 §8: one NON to All-CoAP-Nodes, answered by each member after its leisure."""
    app = App()
    net = VirtualNetwork(seed=6)
    async with (
        net.server(app.site, address="kitchen", multicast=True),
        net.server(app.site, address="hall", multicast=True),
        net.server(app.site, address="deaf"),
        net.client() as client,
    ):
        answers = [
            (response.remote, response.text)
            async for response in client.multicast("GET", "coap://224.0.1.187/hello", timeout=10)
        ]
    assert sorted(answers) == [
        ((net.lookup("kitchen"), 5683), "Hello, world!"),
        ((net.lookup("hall"), 5683), "Hello, world!"),
    ]
    assert net.now == pytest.approx(10.0, abs=0.01)
