"""Cross-transport proxying over loopback: a UDP client reaching a coap+tcp:// (and
coap+ws://) server through the proxy, a TCP client reaching a UDP one; Observe across."""

from __future__ import annotations

import asyncio

import pytest

from coapkit import Client, Code, Options, Request, Server
from coapkit.proxy import ProxySite
from tests.proxy_live.helpers import BODY_SIZE, live, origin_site


@pytest.mark.parametrize("upstream", ["coap+tcp", "coap"])
@pytest.mark.parametrize("downstream", ["coap", "coap+tcp"])
async def test_each_transport_through_the_proxy(downstream: str, upstream: str) -> None:
    async with live() as s, Client() as client:
        proxy = next(item.uri for item in s.proxy_server.listeners if item.scheme == downstream)
        origin = next(item.uri for item in s.origin.listeners if item.scheme == upstream)
        response = await client.get(proxy, options=Options.build(proxy_uri=f"{origin}/hello"))
        assert (response.code, response.text) == (Code.CONTENT, "hello")
        posted = await client.post(proxy, "x", options=Options.build(proxy_uri=f"{origin}/items"))
        assert posted.code == Code.CREATED and posted.text == "got x"


async def test_a_udp_client_observes_a_tcp_server_through_the_proxy() -> None:
    async with live() as s, Client() as client:
        origin = next(item.uri for item in s.origin.listeners if item.scheme == "coap+tcp")
        options = Options.build(proxy_uri=f"{origin}/counter")
        async with client.observe(s.proxy_server.listeners[0].uri, options=options) as seen:
            assert (await anext(seen)).text == "value 0"
            s.counter.tick()
            assert (await anext(seen)).text == "value 1"
        for _ in range(100):
            if s.counter.counts[-1:] == [0]:
                break
            await asyncio.sleep(0.05)
        assert s.counter.counts == [1, 0]


async def test_large_bodies_across_transports() -> None:
    site, _ = origin_site()

    @site.route("/large", methods=["GET", "PUT"])
    def large(request: Request) -> bytes:
        if request.method == Code.GET:
            return bytes(BODY_SIZE)
        return f"stored {len(request.payload)}".encode()

    async with Server(site, listen=["coap+tcp://127.0.0.1:0"]) as origin:
        proxy = ProxySite(reverse={"/tcp": origin.listeners[0].uri})
        async with Server(proxy, listen=["coap://127.0.0.1:0"]) as front, proxy, Client() as c:
            response = await c.get(f"{front.listeners[0].uri}/tcp/large")
            assert response.payload == bytes(BODY_SIZE)
            stored = await c.put(f"{front.listeners[0].uri}/tcp/large", bytes(BODY_SIZE))
            assert stored.text == f"stored {BODY_SIZE}"


async def test_a_udp_client_reaches_a_websocket_server() -> None:
    pytest.importorskip("websockets")
    site, _ = origin_site()
    async with Server(site, listen=["coap+ws://127.0.0.1:0"]) as origin:
        proxy = ProxySite(forward=True)
        async with Server(proxy, listen=["coap://127.0.0.1:0"]) as front, proxy, Client() as c:
            options = Options.build(proxy_uri=f"{origin.listeners[0].uri}/hello")
            response = await c.get(front.listeners[0].uri, options=options)
            assert response.text == "hello"


async def test_a_tcp_client_observes_a_udp_server_through_the_proxy() -> None:
    async with live() as s, Client() as client:
        proxy = next(item.uri for item in s.proxy_server.listeners if item.scheme == "coap+tcp")
        options = Options.build(proxy_uri=f"{s.origin_uri}/counter")
        async with client.observe(proxy, options=options) as seen:
            assert (await anext(seen)).text == "value 0"
            for value in (1, 2):
                s.counter.tick()
                assert (await anext(seen)).text == f"value {value}"
        for _ in range(100):
            if s.counter.counts[-1:] == [0]:
                break
            await asyncio.sleep(0.05)
        assert s.counter.counts == [1, 0]
