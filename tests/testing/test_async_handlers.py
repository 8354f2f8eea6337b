"""async def handlers on the real server: separate responses (RFC 7252 §5.2.2) in virtual time."""

from __future__ import annotations

import asyncio

import pytest

from coapkit import Code
from coapkit.testing import VirtualNetwork
from tests.testing.helpers import ACK, CON, App, sent


async def test_a_slow_handler_gets_an_empty_ack_then_a_separate_response() -> None:
    app = App()
    net = VirtualNetwork(seed=3)
    async with net.server(app.site) as server, net.client() as client:
        response = await client.get("coap://server/slow?s=5")
        client_address = client.local_address

    assert (response.code, response.text) == (Code.CONTENT, "done")
    to_client = sent(net, server.address, client_address)
    to_server = sent(net, client_address, server.address)
    [(t_request, request)] = [(t, m) for t, m in to_server if m.code == Code.GET]
    [(t_empty, empty), (t_response, separate)] = to_client
    # The empty ACK after the server's empty-ACK delay (0.1 s), so that the client
    # stops retransmitting; the response 5 s later as a CON of its own, which the
    # client acknowledges.
    assert (empty.mtype, empty.code, empty.mid) == (ACK, 0, request.mid)
    assert t_empty - t_request == pytest.approx(0.105)
    assert (separate.mtype, separate.code, separate.token) == (CON, Code.CONTENT, request.token)
    assert t_response - t_request == pytest.approx(5.005)
    [(_, ack)] = [(t, m) for t, m in to_server if m.mtype == ACK]
    assert (ack.mid, ack.code) == (separate.mid, 0)


async def test_a_quick_async_handler_is_piggybacked() -> None:
    """Answered within the empty-ACK delay: the response rides in the ACK."""
    app = App()
    net = VirtualNetwork()
    async with net.server(app.site) as server, net.client() as client:
        await client.get("coap://server/slow?s=0.05")
        [(_, answer)] = sent(net, server.address, client.local_address)
    assert (answer.mtype, answer.payload) == (ACK, b"done")


async def test_a_failing_async_handler_is_answered_5_00() -> None:
    app = App()
    net = VirtualNetwork()
    async with net.server(app.site), net.client() as client:
        response = await client.get("coap://server/fails")
    assert response.code == Code.INTERNAL_SERVER_ERROR
    assert net.now == pytest.approx(1.01)


async def test_a_handler_outliving_handler_timeout_is_cancelled_in_virtual_time() -> None:
    app = App()
    net = VirtualNetwork()
    async with net.server(app.site, handler_timeout=30.0), net.client() as client:
        response = await client.get("coap://server/slow?s=3600")
    assert response.code == Code.INTERNAL_SERVER_ERROR
    assert net.now == pytest.approx(30.01)


async def test_concurrent_requests_from_many_clients() -> None:
    app = App()
    net = VirtualNetwork(seed=11, jitter=0.01)
    async with net.server(app.site):
        clients = [net.client() for _ in range(10)]
        for client in clients:
            await client.start()
        try:
            responses = await asyncio.gather(
                *(c.get(f"coap://server/slow?s={n}") for n, c in enumerate(clients))
            )
        finally:
            for client in clients:
                await client.close()
    assert [r.text for r in responses] == ["done"] * 10
    assert 9.0 < net.now < 9.1  # they waited side by side, not one after another
